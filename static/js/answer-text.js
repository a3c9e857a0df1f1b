// @ts-check
/**
 * An answer's text on the page, as Markdown: rendered while it streams at most once per
 * animation frame (only the block still growing is rendered again), and in one piece once it
 * is stored; a streamed answer settles to exactly the DOM that the same answer gets when the
 * page is loaded again. Reasoning, from `reasoning` events or sent inline as
 * `<think>…</think>` at the start of the text, goes to the collapsed "Thinking" section,
 * rendered the same way. While the answer streams, a cursor (hidden from screen readers)
 * follows its last line.
 *
 * The renderer (markdown.js) is handed in: message-view.js, which uses this module, is also
 * loaded by the unit tests under Node, where markdown.js cannot run.
 */
import { ThinkSplitter } from "./think-splitter.js";

/**
 * @typedef {{
 *   renderMarkdown: (text: string) => DocumentFragment,
 *   StreamingMarkdown: typeof import("./markdown.js").StreamingMarkdown,
 * }} Markdown what markdown.js exports for the page
 * @typedef {import("./markdown.js").StreamingMarkdown} StreamingMarkdown
 */

/**
 * Where the cursor goes: down through the blocks that hold other blocks to the last one that
 * holds text (a paragraph, a list item, a table cell, a code block's code).
 */
const HOLDS_BLOCKS = ".md-chunk, .md-code-block, .md-table, ul, ol, li, blockquote, table, thead, tbody, tr, pre";
const HOLDS_TEXT = "p, h1, h2, h3, h4, h5, h6, li, td, th, pre > code";

/**
 * The reasoning shown in the Thinking section: the `reasoning` field, then what was inline.
 * @param {string} reasoning
 * @param {string} inline
 */
function thinkingOf(reasoning, inline) {
  return reasoning && inline ? `${reasoning}\n\n${inline}` : reasoning + inline;
}

/**
 * The answer and the inline reasoning of a whole text, split as a stream would split it.
 * @param {string} text
 */
export function splitThinking(text) {
  const splitter = new ThinkSplitter();
  const first = splitter.push(text);
  const rest = splitter.flush();
  return { answer: first.answer + rest.answer, thinking: first.thinking + rest.thinking };
}

export class AnswerText {
  /**
   * @param {HTMLElement} bubble the message's bubble, where the Thinking section goes
   * @param {HTMLElement} text its `.message-text`, which this renders into
   * @param {Markdown} markdown
   */
  constructor(bubble, text, markdown) {
    this.bubble = bubble;
    this.text = text;
    this.markdown = markdown;
    /** @type {HTMLDetailsElement | null} */
    this.thinking = bubble.querySelector("details.thinking");
    /** The text as the server has it (`content`): the answer, with any inline reasoning. */
    this.source = text.textContent ?? "";
    this.reasoning = this.thinking?.querySelector(".thinking-text")?.textContent ?? "";
    this.answer = "";
    this.inlineThinking = "";
    /** @type {ThinkSplitter | null} while the text streams */
    this.splitter = null;
    /** @type {StreamingMarkdown | null} */
    this.answerView = null;
    /** @type {StreamingMarkdown | null} */
    this.thinkingView = null;
    this.answerChanged = false;
    this.thinkingChanged = false;
    /** @type {HTMLElement | null} */
    this.cursor = null;
  }

  /** The text that was rendered by the server as it is: render it as Markdown. */
  upgrade() {
    this.show(this.source, this.reasoning);
  }

  /**
   * Show a stored text in one piece (what was streaming here so far is dropped).
   * @param {string} content
   * @param {string} reasoning
   */
  show(content, reasoning) {
    this.splitter = this.answerView = this.thinkingView = null;
    this.source = content;
    this.reasoning = reasoning;
    const split = splitThinking(content);
    this.answer = split.answer;
    this.inlineThinking = split.thinking;
    const thinking = thinkingOf(this.reasoning, this.inlineThinking);
    if (thinking) {
      this.thinkingBody().replaceChildren(this.markdown.renderMarkdown(thinking));
    } else {
      this.thinking?.remove();
      this.thinking = null;
    }
    this.text.classList.add("markdown");
    this.text.replaceChildren(this.markdown.renderMarkdown(this.answer));
  }

  /**
   * A piece of the streaming text.
   * @param {string} delta
   */
  append(delta) {
    this.source += delta;
    this.splitter ??= new ThinkSplitter();
    this.route(this.splitter.push(delta));
  }

  /**
   * A piece of the streaming reasoning.
   * @param {string} delta
   */
  appendReasoning(delta) {
    this.reasoning += delta;
    this.thinkingChanged = true;
  }

  /** @param {{answer: string, thinking: string}} routed */
  route(routed) {
    if (routed.answer) {
      this.answer += routed.answer;
      this.answerChanged = true;
    }
    if (routed.thinking) {
      this.inlineThinking += routed.thinking;
      this.thinkingChanged = true;
    }
  }

  /** Render what arrived since the last paint, and put the cursor after it. */
  paint() {
    if (this.thinkingChanged) {
      this.thinkingView ??= new this.markdown.StreamingMarkdown(this.thinkingBody());
      this.thinkingView.update(thinkingOf(this.reasoning, this.inlineThinking));
      this.thinkingView.flush();
      this.thinkingChanged = false;
    }
    if (this.answerChanged) {
      if (!this.answerView) {
        this.text.classList.add("markdown");
        this.answerView = new this.markdown.StreamingMarkdown(this.text);
      }
      this.answerView.update(this.answer);
      this.answerView.flush();
      this.answerChanged = false;
    }
    this.placeCursor();
  }

  /** The text is complete: render it exactly as a stored one, without the cursor. */
  finish() {
    if (this.splitter) this.route(this.splitter.flush());
    this.splitter = null;
    this.cursor?.remove();
    this.thinkingChanged = this.answerChanged = false;
    const thinking = thinkingOf(this.reasoning, this.inlineThinking);
    if (this.thinkingView) this.thinkingView.finish(thinking);
    else if (thinking) this.thinkingBody().replaceChildren(this.markdown.renderMarkdown(thinking));
    this.text.classList.add("markdown");
    if (this.answerView) this.answerView.finish(this.answer);
    else this.text.replaceChildren(this.markdown.renderMarkdown(this.answer));
    this.thinkingView = this.answerView = null;
  }

  /** The cursor after the last text, while the answer streams (aria-hidden: not read out). */
  placeCursor() {
    if (!this.cursor) {
      this.cursor = document.createElement("span");
      this.cursor.className = "cursor";
      this.cursor.setAttribute("aria-hidden", "true");
    }
    /** @type {Element} */
    let at = this.text;
    for (let last = at.lastElementChild; last && last !== this.cursor; last = at.lastElementChild) {
      if (last.matches(HOLDS_TEXT)) at = last;
      if (!last.matches(HOLDS_BLOCKS)) break;
      at = last;
    }
    if (this.cursor.parentNode !== at || this.cursor.nextSibling) at.append(this.cursor);
  }

  removeCursor() {
    this.cursor?.remove();
  }

  /** The Thinking section's body, made (collapsed, above the answer) the first time it is needed. */
  thinkingBody() {
    if (!this.thinking) {
      this.thinking = document.createElement("details");
      this.thinking.className = "thinking";
      const summary = document.createElement("summary");
      summary.textContent = "Thinking";
      const body = document.createElement("div");
      body.className = "thinking-text";
      body.dir = "auto";
      this.thinking.append(summary, body);
      this.bubble.prepend(this.thinking);
    }
    const body = /** @type {HTMLElement} */ (this.thinking.querySelector(".thinking-text"));
    body.classList.add("markdown");
    return body;
  }
}
