// @ts-check
/**
 * One message on the page: cloned from the page's <template> (the markup the server renders
 * for a stored message, so both look the same) or adopted from the server's HTML; filled
 * from a stored message, or grown by a streaming answer, painted at most once per
 * animation frame. Your own text stays plain text; an answer is Markdown (answer-text.js),
 * which markdown.js renders and sanitises: model output never reaches the page as HTML of
 * its own. The server renders answers as plain text (readable without scripts); adopted,
 * they are rendered as Markdown.
 */
import { AnswerText } from "./answer-text.js";

/**
 * @typedef {import("./api.js").StoredMessage} StoredMessage
 * @typedef {import("./sse-reader.js").FinishReason} FinishReason
 * @typedef {import("./api.js").MessageStatus} MessageState
 * @typedef {import("./answer-text.js").Markdown} Markdown
 * @typedef {{ onPaint: () => void, markdown: Markdown }} ViewOptions `onPaint`: called after each
 *   paint (the view follows the stream); `markdown`: the renderer, from markdown.js
 * @typedef {{ state: MessageState, label: string, emptyLabel?: string, spoken: string }} Outcome
 */

/**
 * How a live answer ended, as the page shows it; `emptyLabel` replaces `label` when no text
 * came. The labels of a stored answer (`storedLabel`) and the server's template say the same.
 * @type {Record<FinishReason | "interrupted", Outcome>}
 */
export const OUTCOMES = {
  stop: { state: "complete", label: "", emptyLabel: "No answer", spoken: "Response complete" },
  length: { state: "complete", label: "Cut off at the length limit", spoken: "Response complete" },
  cancelled: { state: "stopped", label: "Stopped", emptyLabel: "Stopped before any answer", spoken: "Stopped" },
  error: { state: "error", label: "Failed", spoken: "The answer failed" },
  interrupted: { state: "interrupted", label: "Interrupted: the connection was lost", spoken: "Connection lost" },
};

/**
 * The label under a stored answer (templates/_macros.html, `outcome_label`, says the same).
 * @param {StoredMessage} m
 */
export function storedLabel(m) {
  if (m.role !== "assistant") return "";
  const empty = !m.content;
  /** @type {Record<StoredMessage["status"], string>} */
  const labels = {
    complete: m.finish_reason === "length" ? "Cut off at the length limit" : empty ? "No answer" : "",
    stopped: empty ? "Stopped before any answer" : "Stopped",
    interrupted: "Interrupted: the answer was cut off before it ended",
    error: "Failed",
    streaming: "Still being written…",
  };
  const tokens = m.usage && !m.usage.estimated ? `${m.usage.completion_tokens} tokens` : "";
  return [labels[m.status], tokens].filter(Boolean).join(" · ");
}

/**
 * @param {Element} root
 * @param {string} selector
 */
function part(root, selector) {
  const element = root.querySelector(selector);
  if (!(element instanceof HTMLElement)) throw new Error(`${selector} is missing from a message`);
  return element;
}

export class MessageView {
  /**
   * A new, empty message from the page's template.
   * @param {"user" | "assistant"} role
   * @param {ViewOptions} options
   */
  static create(role, options) {
    const template = document.getElementById(`${role}-message-template`);
    if (!(template instanceof HTMLTemplateElement)) throw new Error(`#${role}-message-template is missing`);
    const root = template.content.firstElementChild?.cloneNode(true);
    if (!(root instanceof HTMLElement)) throw new Error(`#${role}-message-template is empty`);
    return new MessageView(root, options);
  }

  /**
   * Wraps a message element, the server's or a template's clone.
   * @param {HTMLElement} root an `article.message`
   * @param {ViewOptions} options
   */
  constructor(root, options) {
    this.root = root;
    this.onPaint = options.onPaint;
    this.bubble = part(root, ".bubble");
    this.text = part(root, ".message-text");
    this.meta = part(root, ".meta");
    this.versions = part(root, ".versions");
    /** An answer's text; null for your messages, which are plain text. */
    this.answer = this.role === "assistant" ? new AnswerText(this.bubble, this.text, options.markdown) : null;
    this.frame = 0;
  }

  /** @returns {"user" | "assistant"} */
  get role() {
    return this.root.classList.contains("user") ? "user" : "assistant";
  }

  /** The stored message's id; "" until the server named it. */
  get id() {
    return this.root.dataset.id ?? "";
  }

  /** @returns {string | null} the id of the message it follows; null for the first */
  get parentId() {
    return this.root.dataset.parentId || null;
  }

  /** @returns {string[]} the ids of its versions, oldest first (this one included) */
  get alternatives() {
    return (this.root.dataset.alternatives ?? "").split(" ").filter(Boolean);
  }

  get state() {
    return this.root.dataset.state ?? "";
  }

  /** The id of the stream writing it (an answer being written); "" when none is known. */
  get streamId() {
    return this.root.dataset.streamId ?? "";
  }

  /** All of its text as the server has it, painted or not (an answer's inline reasoning included). */
  get content() {
    return this.answer ? this.answer.source : (this.text.textContent ?? "");
  }

  /** What Copy puts on the clipboard: an answer's Markdown without its reasoning; your text as typed. */
  get copyText() {
    return this.answer ? this.answer.answer : this.content;
  }

  /** An answer with no text of its own (none yet, or only reasoning). */
  get hasNoAnswer() {
    return !this.answer?.answer.trim();
  }

  /**
   * Your message's text, as plain text.
   * @param {string} text
   */
  setText(text) {
    this.text.textContent = text;
  }

  /** A stored answer the server rendered as plain text: render it as Markdown. */
  upgrade() {
    if (!this.answer) return;
    this.answer.upgrade();
    if (this.state === "streaming") this.answer.placeCursor();
    else if (this.hasNoAnswer) this.hideEmptyText();
  }

  /**
   * Who it is in the stored tree: its id, the message it follows, and its versions.
   * @param {string} id
   * @param {string | null} parentId
   * @param {string[]} alternatives
   */
  setIds(id, parentId, alternatives) {
    this.root.dataset.id = id;
    this.root.dataset.parentId = parentId ?? "";
    this.root.dataset.alternatives = alternatives.join(" ");
    const position = alternatives.indexOf(id);
    this.versions.hidden = alternatives.length < 2;
    part(this.versions, ".versions-position").textContent = `${position + 1}/${alternatives.length}`;
    part(this.versions, '[data-action="previous"]').toggleAttribute("disabled", position <= 0);
    part(this.versions, '[data-action="next"]').toggleAttribute("disabled", position + 1 >= alternatives.length);
  }

  /** @param {string} model the model that answers */
  setModel(model) {
    this.root.dataset.model = model;
    this.meta.title = `Answered by ${model}`;
  }

  /** @param {MessageState} state */
  setState(state) {
    this.root.dataset.state = state;
    this.root.setAttribute("aria-busy", String(state === "streaming"));
    if (state === "streaming") this.answer?.placeCursor();
    else this.answer?.removeCursor();
    if (state !== "streaming") this.root.removeAttribute("data-reconnecting");
  }

  /**
   * The answer's connection was lost and the page is getting it back (or it is back): said
   * on its status line, which the answer's end replaces.
   * @param {boolean} reconnecting
   */
  setReconnecting(reconnecting) {
    this.root.toggleAttribute("data-reconnecting", reconnecting);
    this.setMeta(reconnecting ? "Reconnecting…" : "");
  }

  /** The answer is replayed from its start: what was shown of it goes (a reload's partial text). */
  restart() {
    if (!this.answer) return;
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    for (const notice of this.bubble.querySelectorAll(".notice.error")) notice.remove();
    if (this.answer.source || this.answer.reasoning) this.answer.show("", "");
    this.text.hidden = false;
    this.bubble.hidden = false;
    this.setMeta(""); // the server's "Still being written…": it is, before the reader's eyes
    this.answer.placeCursor();
  }

  /** @param {string} text */
  appendText(text) {
    this.answer?.append(text);
    this.schedulePaint();
  }

  /** @param {string} text */
  appendReasoning(text) {
    this.answer?.appendReasoning(text);
    this.schedulePaint();
  }

  schedulePaint() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.paint());
  }

  /** Put what arrived on the page now. */
  paint() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.answer?.paint();
    this.onPaint();
  }

  /** The answer's text is complete: rendered as it will be when stored. */
  finish() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.answer?.finish();
    this.onPaint();
  }

  /** @param {string} message */
  showError(message) {
    const notice = document.createElement("p");
    notice.className = "notice error";
    notice.textContent = message;
    this.bubble.append(notice);
    this.bubble.hidden = false;
  }

  /** @param {string} label */
  setMeta(label) {
    this.meta.textContent = label;
  }

  /**
   * The answer ended without text: drop the empty text, which would read as still typing,
   * and the bubble too when nothing else (thinking, an error) is in it; the meta line says why.
   */
  hideEmptyText() {
    this.text.hidden = true;
    this.bubble.hidden = this.bubble.childElementCount === 1;
  }

  /**
   * Show the stored message as it is now (a read-back's answer, a reconciled stop).
   * @param {StoredMessage} m
   */
  fill(m) {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.setIds(m.id, m.parent_id, m.alternatives);
    if (m.model) this.setModel(m.model);
    if (m.status === "streaming" && m.stream_id) this.root.dataset.streamId = m.stream_id;
    else delete this.root.dataset.streamId;
    if (this.answer) this.answer.show(m.content, m.reasoning ?? "");
    else this.setText(m.content);
    for (const notice of this.bubble.querySelectorAll(".notice.error")) notice.remove();
    this.text.hidden = false;
    this.bubble.hidden = false;
    if (m.error) this.showError(m.error.message);
    this.setState(m.status);
    this.setMeta(storedLabel(m));
    if (m.role === "assistant" && m.status !== "streaming" && this.hasNoAnswer) this.hideEmptyText();
  }
}
