// @ts-check
/**
 * One message on the page: cloned from the page's <template> (the markup the server renders
 * for a stored message, so both look the same) or adopted from the server's HTML; filled
 * from a stored message, or grown by a streaming answer, painted at most once per
 * animation frame. Model text only ever reaches the page as text (Text nodes,
 * textContent), never as HTML.
 */

/**
 * @typedef {import("./api.js").StoredMessage} StoredMessage
 * @typedef {import("./chat-stream.js").FinishReason} FinishReason
 * @typedef {import("./api.js").MessageStatus | "failed"} MessageState "failed": a message the server never got
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
   * @param {() => void} onPaint called after each paint (the view follows the stream)
   */
  static create(role, onPaint) {
    const template = document.getElementById(`${role}-message-template`);
    if (!(template instanceof HTMLTemplateElement)) throw new Error(`#${role}-message-template is missing`);
    const root = template.content.firstElementChild?.cloneNode(true);
    if (!(root instanceof HTMLElement)) throw new Error(`#${role}-message-template is empty`);
    return new MessageView(root, onPaint);
  }

  /**
   * Wraps a message element, the server's or a template's clone.
   * @param {HTMLElement} root an `article.message`
   * @param {() => void} onPaint
   */
  constructor(root, onPaint) {
    this.root = root;
    this.onPaint = onPaint;
    this.bubble = part(root, ".bubble");
    this.text = part(root, ".message-text");
    this.text.normalize();
    /** @type {Text} */
    this.textNode = this.text.firstChild instanceof Text ? this.text.firstChild : this.text.appendChild(new Text(""));
    this.meta = part(root, ".meta");
    this.versions = part(root, ".versions");
    /** @type {HTMLDetailsElement | null} */
    this.thinking = root.querySelector("details.thinking");
    /** @type {Text | null} */
    this.thinkingNode = null;
    this.pendingText = "";
    this.pendingReasoning = "";
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

  /** All of its text, painted or not. */
  get content() {
    return this.textNode.data + this.pendingText;
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
  }

  /** @param {string} text */
  appendText(text) {
    this.pendingText += text;
    this.schedulePaint();
  }

  /** @param {string} text */
  appendReasoning(text) {
    this.pendingReasoning += text;
    this.schedulePaint();
  }

  schedulePaint() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.paint());
  }

  /** Put buffered text on the page now (also called when the stream ends). */
  paint() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    if (this.pendingReasoning) {
      this.thinkingSection().appendData(this.pendingReasoning);
      this.pendingReasoning = "";
    }
    if (this.pendingText) {
      this.textNode.appendData(this.pendingText);
      this.pendingText = "";
    }
    this.onPaint();
  }

  /** The collapsed "Thinking" section above the answer, made on the first reasoning event. */
  thinkingSection() {
    if (!this.thinkingNode) {
      if (!this.thinking) {
        this.thinking = document.createElement("details");
        this.thinking.className = "thinking";
        const summary = document.createElement("summary");
        summary.textContent = "Thinking";
        const body = document.createElement("div");
        body.className = "thinking-text";
        this.thinking.append(summary, body);
        this.bubble.prepend(this.thinking);
      }
      const body = part(this.thinking, ".thinking-text");
      body.normalize();
      this.thinkingNode = body.firstChild instanceof Text ? body.firstChild : body.appendChild(new Text(""));
    }
    return this.thinkingNode;
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
   * The answer ended without text: drop the "…" placeholder, which reads as still typing,
   * and the bubble too when nothing else (thinking, an error) is in it; the meta line says why.
   */
  hideEmptyText() {
    this.text.hidden = true;
    this.bubble.hidden = this.bubble.childElementCount === 1;
  }

  /**
   * Show the stored message as it is now (a poll's answer, a reconciled stop).
   * @param {StoredMessage} m
   */
  fill(m) {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.pendingText = this.pendingReasoning = "";
    this.setIds(m.id, m.parent_id, m.alternatives);
    if (m.model) this.setModel(m.model);
    this.textNode.data = m.content;
    if (m.reasoning) this.thinkingSection().data = m.reasoning;
    for (const notice of this.bubble.querySelectorAll(".notice.error")) notice.remove();
    this.text.hidden = false;
    this.bubble.hidden = false;
    if (m.error) this.showError(m.error.message);
    this.setState(m.status);
    this.setMeta(storedLabel(m));
    if (m.role === "assistant" && m.status !== "streaming" && !m.content) this.hideEmptyText();
  }
}
