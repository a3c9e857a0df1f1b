// @ts-check
/**
 * A request the server refused, or never got, told once and in plain words on the line above
 * the composer, with a Retry where trying again can help; when the server said how long to
 * wait (Retry-After: a rate limit, a busy server), Retry counts that down first. An answer
 * that failed after it began says so in its own message instead (message-view.js).
 */
import { RequestError } from "./request-error.js";

/**
 * @typedef {{ text: string, retry: boolean, waitS: number }} Problem what to say, whether
 *   trying again can help, and how long to wait before it does
 */

/** Refusals that the same request, sent again later, may get past. */
const PASSING = new Set([
  "rate_limited",
  "too_many_streams",
  "server_busy",
  "shutting_down",
  "internal_error",
  "shared_state_unavailable",
]);

/** @type {Record<string, string>} */
const PLAIN = {
  rate_limited: "You are sending messages faster than this server allows.",
  too_many_streams: "Too many answers are being written for you at once. Wait for one to finish.",
  server_busy: "The server is busy right now.",
  shutting_down: "The server is restarting.",
  internal_error: "Something went wrong on the server.",
  shared_state_unavailable: "The server cannot reach the machine that writes this answer right now.",
  conversation_too_long: "This conversation is too long to send more to the model. Start a new chat to go on.",
  message_too_long: "This message is too long to send. Shorten it, then send it again.",
  unauthorized: "You are signed out. Reload the page to sign in again.",
  unknown_model: "The chosen model is not offered here any more. Pick another in the model menu.",
  conversation_not_found: "This conversation has been deleted, maybe in another tab. Start a new chat.",
};

/**
 * What to tell a person about a failed request.
 * @param {unknown} error
 * @returns {Problem}
 */
export function describeProblem(error) {
  if (!(error instanceof RequestError)) {
    return { text: "chatapp could not be reached. Check your connection.", retry: true, waitS: 0 };
  }
  const retry = PASSING.has(error.code) || error.status >= 500;
  const text = PLAIN[error.code] ?? error.message;
  return { text, retry, waitS: retry ? (error.retryAfterS ?? 0) : 0 };
}

export class ProblemLine {
  /**
   * @param {HTMLElement} root shown while there is a problem
   * @param {HTMLElement} text where it is said (role="alert": read out once when it changes)
   * @param {HTMLButtonElement} retry the Retry button, outside the alert so that its countdown is not read out
   */
  constructor(root, text, retry) {
    this.root = root;
    this.text = text;
    this.retry = retry;
    /** @type {(() => void) | null} */
    this.action = null;
    this.timer = 0;
    retry.addEventListener("click", () => {
      const action = this.action;
      this.clear();
      action?.();
    });
  }

  /**
   * Say what went wrong with a request; `again` repeats it, offered when that can help.
   * @param {unknown} error
   * @param {(() => void) | null} [again]
   */
  show(error, again = null) {
    const problem = describeProblem(error);
    this.say(problem.text, problem.retry ? again : null, problem.waitS);
  }

  /**
   * @param {string} text
   * @param {(() => void) | null} [again]
   * @param {number} [waitS] seconds Retry counts down before it can be pressed
   */
  say(text, again = null, waitS = 0) {
    this.clear();
    this.text.textContent = text;
    this.root.hidden = false;
    this.action = again;
    this.retry.hidden = !again;
    if (again) this.countDown(Date.now() + waitS * 1000);
  }

  /** @param {number} until when Retry can be pressed */
  countDown(until) {
    const left = Math.ceil((until - Date.now()) / 1000);
    this.retry.disabled = left > 0;
    this.retry.textContent = left > 0 ? `Retry in ${left} s` : "Retry";
    // Next when the whole number of seconds left changes.
    if (left > 0) this.timer = window.setTimeout(() => this.countDown(until), (until - Date.now()) % 1000 || 1000);
  }

  clear() {
    clearTimeout(this.timer);
    this.action = null;
    this.root.hidden = true;
    this.text.textContent = "";
    this.retry.hidden = true;
  }

  get shown() {
    return !this.root.hidden;
  }
}
