// @ts-check
/**
 * The page's keyboard shortcuts, the ones people know from ChatGPT where they fit: Esc stops
 * the answer, Shift+Esc puts the cursor in the message field, Ctrl+Shift+C copies the last
 * answer, Ctrl+Shift+; the last code block, Ctrl+Shift+O starts a new chat, Ctrl+/ lists them
 * (⌘ for Ctrl on a Mac), as does the "Keyboard shortcuts" button under the composer.
 */

/**
 * @typedef {{
 *   stop: () => boolean,
 *   focusInput: () => void,
 *   copyLastAnswer: () => void,
 *   copyLastCode: () => void,
 *   newChat: () => void,
 * }} ShortcutActions `stop` says whether there was an answer to stop
 */

const MAC = /Mac|iPhone|iPad/.test(navigator.userAgent);

/**
 * @param {ShortcutActions} actions
 * @param {HTMLDialogElement} list the dialog that lists them
 * @param {HTMLElement} opener the button that opens it
 */
export function installShortcuts(actions, list, opener) {
  if (MAC) for (const key of document.querySelectorAll("kbd.mod")) key.textContent = "⌘";
  const showList = () => list.open || list.showModal();
  opener.addEventListener("click", showList);
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing) return; // an editor, a dialog or the drawer had it
    const modifier = MAC ? event.metaKey : event.ctrlKey;
    if (event.key === "Escape" && !modifier && !event.altKey) {
      if (document.querySelector("dialog[open]")) return; // Escape closes the dialog
      if (event.shiftKey) {
        event.preventDefault();
        actions.focusInput();
      } else if (actions.stop()) {
        event.preventDefault();
      }
      return;
    }
    if (modifier && !event.shiftKey && !event.altKey && event.key === "/") {
      event.preventDefault();
      showList();
      return;
    }
    if (!modifier || !event.shiftKey || event.altKey) return;
    // By the key's place, not its character: Shift changes "c" to "C" and ";" to ":".
    /** @type {Record<string, () => void>} */
    const byKey = { KeyC: actions.copyLastAnswer, Semicolon: actions.copyLastCode, KeyO: actions.newChat };
    const action = byKey[event.code];
    if (!action) return;
    event.preventDefault();
    action();
  });
}
