// Reasoning sent inline in the answer text, as some servers do ("<think>…</think>" before the
// answer: DeepSeek-R1 and QwQ behind a server with no reasoning parser), routed to the thinking
// section. Fed the answer's deltas as they arrive, it holds back only what might still be the
// start of a tag, so a tag split across deltas ("<th", "ink>") is still recognised. No DOM.
//
// A "<think>" counts only where the answer has had nothing but whitespace so far (at the start,
// or right after a "</think>"): an answer that talks about the tag, in prose or in a code block,
// keeps it as text.

const OPEN = "<think>";
const CLOSE = "</think>";

/** @typedef {{answer: string, thinking: string}} Routed */

export class ThinkSplitter {
  /** Inside a <think> block. */
  #thinking = false;
  /** Nothing but whitespace routed to the answer since the start or the last </think>. */
  #atStart = true;
  /** Text not routed yet: a possible partial tag, or leading whitespace before a possible "<think>". */
  #held = "";

  /**
   * Route one delta of the answer text.
   * @param {string} delta
   * @returns {Routed} the text that now belongs to the answer and to the thinking section
   */
  push(delta) {
    /** @type {Routed} */
    const out = { answer: "", thinking: "" };
    let text = this.#held + delta;
    this.#held = "";
    while (text) {
      if (this.#thinking) {
        const end = text.indexOf(CLOSE);
        if (end >= 0) {
          out.thinking += text.slice(0, end);
          text = text.slice(end + CLOSE.length);
          this.#thinking = false;
          this.#atStart = true;
          continue;
        }
        const keep = partialTagLength(text, CLOSE);
        out.thinking += text.slice(0, text.length - keep);
        this.#held = text.slice(text.length - keep);
        break;
      }
      if (this.#atStart) {
        const lead = text.length - text.trimStart().length;
        const rest = text.slice(lead);
        if (rest.startsWith(OPEN)) {
          // Whitespace around the tag is layout, not part of either text.
          text = rest.slice(OPEN.length);
          this.#thinking = true;
          continue;
        }
        if (rest === "" || OPEN.startsWith(rest)) {
          this.#held = text;
          break;
        }
        this.#atStart = false;
      }
      out.answer += text;
      break;
    }
    return out;
  }

  /**
   * The text still held back, once the answer has ended: a tag that never completed is text.
   * @returns {Routed}
   */
  flush() {
    const held = this.#held;
    this.#held = "";
    return this.#thinking ? { answer: "", thinking: held } : { answer: held, thinking: "" };
  }
}

/**
 * How many characters at the end of `text` could be the beginning of `tag`.
 * @param {string} text
 * @param {string} tag
 */
function partialTagLength(text, tag) {
  for (let n = Math.min(tag.length - 1, text.length); n > 0; n--) {
    if (text.endsWith(tag.slice(0, n))) return n;
  }
  return 0;
}
