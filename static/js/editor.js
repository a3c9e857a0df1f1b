// @ts-check
/**
 * Editing one of your messages in place: its bubble gives way to a text field with Send and
 * Cancel; Enter sends (Shift+Enter: a new line), Escape cancels.
 */

/** On touch screens Enter makes a new line and the button sends, as in the composer. */
const touch = window.matchMedia("(pointer: coarse)");

/**
 * An input method is composing (keyCode 229: some browsers report IME keystrokes so, without isComposing).
 * @param {KeyboardEvent} event
 */
const composing = (event) => event.isComposing || event.keyCode === 229;

/**
 * @param {import("./message-view.js").MessageView} message
 * @param {(text: string) => boolean} onSend false keeps the editor open
 */
export function editInPlace(message, onSend) {
  if (message.root.querySelector(".edit-form")) return;
  const footer = /** @type {HTMLElement} */ (message.root.querySelector(".message-footer"));
  const form = document.createElement("form");
  form.className = "edit-form";
  const field = document.createElement("textarea");
  field.className = "edit-text";
  field.value = message.content;
  field.rows = Math.min(10, field.value.split("\n").length + 1);
  field.setAttribute("aria-label", "Edit your message");
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "button secondary small";
  cancel.textContent = "Cancel";
  const send = document.createElement("button");
  send.type = "submit";
  send.className = "button primary small";
  send.textContent = "Send";
  const buttons = document.createElement("div");
  buttons.className = "edit-buttons";
  buttons.append(cancel, send);
  form.append(field, buttons);

  message.bubble.hidden = footer.hidden = true;
  message.bubble.after(form);
  field.focus();
  field.setSelectionRange(field.value.length, field.value.length);

  const close = () => {
    form.remove();
    message.bubble.hidden = footer.hidden = false;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!field.value.trim()) return field.focus();
    if (onSend(field.value)) close();
  });
  cancel.addEventListener("click", () => {
    close();
    /** @type {HTMLElement | null} */ (message.root.querySelector('[data-action="edit"]'))?.focus();
  });
  field.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault(); // Escape here closes the editor, and stops nothing else
      cancel.click();
    } else if (event.key === "Enter" && !event.shiftKey && !composing(event) && !touch.matches) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}
