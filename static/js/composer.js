// @ts-check
/**
 * The composer: the message field, which grows with its text; the Send button, which becomes
 * Stop while an answer streams and keeps its size, so nothing beside it moves; and a character
 * counter that shows as CHATAPP_MAX_MESSAGE_CHARS nears. Enter sends and Shift+Enter makes a
 * new line; on touch screens Enter makes a new line and the button sends, as in messaging apps.
 */

/** The counter shows from this share of the limit on. */
const COUNT_FROM = 0.9;
/** The field grows up to this height, then scrolls. */
const MAX_HEIGHT_PX = 240;

/**
 * @typedef {{
 *   form: HTMLFormElement,
 *   field: HTMLTextAreaElement,
 *   button: HTMLButtonElement,
 *   counter: HTMLElement,
 *   maxChars: number,
 *   onSend: () => void,
 *   onStop: () => void,
 *   onInput: () => void,
 *   announce: (message: string) => void,
 * }} ComposerParts
 */

export class Composer {
  /** @param {ComposerParts} parts */
  constructor(parts) {
    this.parts = parts;
    this.field = parts.field;
    this.busy = false;
    this.wasOver = false;
    /** On touch screens Enter makes a new line and the button sends. */
    this.touch = window.matchMedia("(pointer: coarse)");

    parts.form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (this.busy) parts.onStop();
      else parts.onSend();
    });
    this.field.addEventListener("keydown", (event) => {
      // keyCode 229: some browsers report IME keystrokes this way without isComposing.
      if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
      if (this.touch.matches) return;
      event.preventDefault();
      if (!this.busy) parts.onSend();
    });
    this.field.addEventListener("input", () => {
      this.changed();
      parts.onInput();
    });
  }

  get value() {
    return this.field.value;
  }

  /** @param {string} text */
  set value(text) {
    this.field.value = text;
    this.changed();
  }

  /** How many characters the text is over the limit (0 when it fits). */
  get over() {
    return Math.max(0, this.field.value.length - this.parts.maxChars);
  }

  get maxChars() {
    return this.parts.maxChars;
  }

  /** The field does not scroll its own text: PageUp and PageDown may scroll the conversation. */
  get fits() {
    return this.field.scrollHeight <= this.field.clientHeight;
  }

  focus() {
    this.field.focus();
  }

  /** @param {boolean} busy an answer streams: the button stops it */
  setBusy(busy) {
    this.busy = busy;
    const button = this.parts.button;
    button.dataset.mode = busy ? "stop" : "send";
    button.setAttribute("aria-label", busy ? "Stop generating" : "Send message");
    button.setAttribute("aria-keyshortcuts", busy ? "Escape" : "Enter");
    /** @type {HTMLElement} */ (button.querySelector(".send-label")).textContent = busy ? "Stop" : "Send";
  }

  changed() {
    this.fit();
    this.count();
  }

  fit() {
    this.field.style.height = "auto";
    this.field.style.height = `${Math.min(this.field.scrollHeight, MAX_HEIGHT_PX)}px`;
  }

  /** Show the count near the limit; over it, say so once (the counter itself is not a live region). */
  count() {
    const { counter, maxChars } = this.parts;
    const length = this.field.value.length;
    const over = length > maxChars;
    counter.hidden = length < maxChars * COUNT_FROM;
    counter.textContent = `${length.toLocaleString("en")} / ${maxChars.toLocaleString("en")}`;
    counter.classList.toggle("over", over);
    this.field.toggleAttribute("aria-invalid", over);
    if (over && !this.wasOver) this.parts.announce(`Over the limit of ${maxChars.toLocaleString("en")} characters`);
    this.wasOver = over;
  }
}
