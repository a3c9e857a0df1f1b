// @ts-check
/**
 * One answer at a time, streamed into a message of the page: a new one from a conversation
 * endpoint, or one the server is already writing (the page was reloaded, another tab started
 * it), reattached to and replayed from its start. The server writes an answer whatever
 * happens to the page's connection, so a lost connection shows "Reconnecting…" and the
 * answer goes on where it was (answer-follower.js); only Stop, which calls the stop endpoint,
 * ends it. `done` comes after the server saved the answer, so what arrived is what is stored;
 * an answer followed to no `done` (stopped while disconnected, its stream gone) is read back
 * from the server and shown as stored: that is what the model is told next time.
 */
import { AnswerFollower } from "./answer-follower.js";
import { requestError } from "./request-error.js";
import { OUTCOMES } from "./message-view.js";

/**
 * @typedef {import("./sse-reader.js").FinishReason} FinishReason
 * @typedef {import("./api.js").MessageBody} MessageBody
 * @typedef {import("./answer-follower.js").Outcome} Outcome
 * @typedef {import("./answer-follower.js").FollowHandlers} FollowHandlers
 * @typedef {import("./message-view.js").MessageView} MessageView
 * @typedef {import("./api.js").ConversationsApi} ConversationsApi
 * @typedef {{
 *   user: MessageView | null,
 *   userParent: string | null,
 *   userAlternatives: string[],
 *   answerAlternatives: string[],
 *   notSent: (error: unknown) => void,
 * }} Job the stored tree around a new answer (and the message sent with it), and what to
 *   do when the server took nothing
 * @typedef {"" | "wanted" | "sending" | "stopped" | "ended"} StopState Stop was not pressed;
 *   pressed before `start` named the stream (sent when it does); the stop request is on its
 *   way; the server stopped the answer (202); or it was not running any more (404)
 * @typedef {{
 *   answer: MessageView,
 *   controller: AbortController,
 *   follower: AnswerFollower,
 *   streamId: string,
 *   started: boolean,
 *   finished: boolean,
 *   stop: StopState,
 *   usage: string,
 * }} Turn `controller`: aborted, the page stops reading (never the model)
 * @typedef {{
 *   api: ConversationsApi,
 *   chatUrl: string,
 *   streamsUrl: string,
 *   stallMs: number,
 *   network: EventTarget | null,
 *   currentId: () => string | null,
 *   onBusy: (busy: boolean) => void,
 *   onAnswered: (conversationId: string) => void,
 *   onUnseen: () => void,
 *   onStopFailed: (error: unknown) => void,
 *   announce: (message: string) => void,
 * }} AnswersOptions `stallMs`: no bytes for this long is a dead connection (two heartbeats);
 *   `network`: where `online` and `offline` fire; `onUnseen`: the answer's connection ended
 *   before it said what it stored (show the conversation as stored); `onStopFailed`: the stop
 *   endpoint could not stop it (the answer goes on, and Stop can be pressed again)
 */

/** After the server stopped an answer, its stream's `done` is waited for this long, then reading stops anyway. */
const STOP_GRACE_MS = 2_000;
/** A stored answer still being written is read again after this long at first, then less often. */
const POLL_MS = 700;
const POLL_MAX_MS = 5_000;
/** How long the page reads it again before it leaves it as shown (CHATAPP_MAX_STREAM_S's default). */
const POLL_FOR_MS = 600_000;

/** What is said when an answer read back has ended. @type {Record<string, string>} */
const SPOKEN = {
  complete: OUTCOMES.stop.spoken,
  stopped: OUTCOMES.cancelled.spoken,
  error: OUTCOMES.error.spoken,
  interrupted: "The answer was interrupted",
};

export class Answers {
  /** @param {AnswersOptions} options */
  constructor(options) {
    this.options = options;
    /** @type {Turn | null} */
    this.active = null;
  }

  /**
   * Stream an answer into `answer`, a new message at the end of the conversation.
   * @param {() => Promise<string>} url the streaming endpoint (it may create the conversation)
   * @param {MessageBody | {}} body
   * @param {MessageView} answer
   * @param {Job} job
   */
  async run(url, body, answer, job) {
    const turn = this.begin(answer, job);
    this.options.announce("Generating…");
    /** @type {Outcome} */
    let outcome;
    try {
      outcome = await turn.follower.post(await url(), body);
    } catch (error) {
      // Refused, or the server was never reached: nothing was stored.
      turn.finished = true;
      this.end(turn);
      job.notSent(error);
      return;
    }
    this.end(turn);
    this.settle(turn, outcome);
    const id = this.options.currentId();
    if (turn.started && id) this.options.onAnswered(id);
  }

  /**
   * Follow an answer the server is writing (found streaming on a page loaded mid-answer, or in
   * a version shown): reattach to its stream, replayed from its start in place of what the page
   * shows, with Stop. Without a stream id, or while another answer streams here, it is read
   * back until final instead.
   * @param {MessageView} message
   */
  async follow(message) {
    const streamId = message.streamId;
    if (!streamId || this.active) return this.watch(message, { progressive: true });
    const turn = this.begin(message, null);
    turn.started = true;
    turn.streamId = streamId;
    const outcome = await turn.follower.follow(streamId, 0);
    this.end(turn);
    this.settle(turn, outcome);
  }

  /**
   * @param {MessageView} answer
   * @param {Job | null} job
   * @returns {Turn}
   */
  begin(answer, job) {
    const controller = new AbortController();
    const turn = /** @type {Turn} */ ({
      answer,
      controller,
      streamId: "",
      started: false,
      finished: false,
      stop: "",
      usage: "",
    });
    const { streamsUrl, stallMs, network } = this.options;
    const signal = controller.signal;
    turn.follower = new AnswerFollower(this.handlers(turn, job), { streamsUrl, stallMs, network, signal });
    this.active = turn;
    answer.setState("streaming");
    this.options.onBusy(true);
    return turn;
  }

  /** @param {Turn} turn its stream was followed to an end (or the page stopped reading) */
  end(turn) {
    if (this.active === turn) this.active = null;
    this.options.onBusy(false);
  }

  /**
   * @param {Turn} turn
   * @param {Job | null} job
   * @returns {FollowHandlers}
   */
  handlers(turn, job) {
    const answer = turn.answer;
    return {
      onStart: (start) => {
        turn.started = true;
        turn.streamId = start.stream_id;
        answer.root.dataset.streamId = start.stream_id;
        // A replay from the start (a reattach after a reload) replaces what the page showed.
        answer.restart();
        answer.setModel(start.model);
        const question = start.user_message_id ?? null;
        if (job?.user && question) job.user.setIds(question, job.userParent, [...job.userAlternatives, question]);
        const id = start.message_id;
        if (job && id) answer.setIds(id, question, [...job.answerAlternatives, id]);
        if (turn.stop === "wanted") this.sendStop(turn);
      },
      onReasoning: (delta) => answer.appendReasoning(delta),
      onToken: (delta) => answer.appendText(delta),
      onUsage(usage) {
        turn.usage = `${usage.completion_tokens} tokens`;
        answer.meta.title = `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`;
      },
      onError: (error) => answer.showError(error.message),
      onDone: (reason) => this.finish(turn, reason),
      onReconnecting: () => {
        answer.setReconnecting(true);
        this.options.announce("Reconnecting…");
      },
      onReconnected: () => {
        answer.setReconnecting(false);
        this.options.announce("Reconnected");
      },
    };
  }

  /**
   * What the page shows once the answer's stream was followed to its end.
   * @param {Turn} turn
   * @param {Outcome} outcome
   */
  settle(turn, outcome) {
    if (turn.finished) return; // `done` came
    const stopped = turn.stop === "stopped";
    if (outcome === "unseen") {
      // Cut off before `start`: the server may have stored the question and (part of) an answer
      // that this page has no ids for. Show the conversation as stored.
      turn.finished = true;
      this.options.onUnseen();
    } else if (outcome === "lost" || (outcome === "detached" && stopped)) {
      this.finish(turn, stopped ? "cancelled" : "interrupted");
      this.watch(turn.answer, { progressive: false });
    } else if (outcome === "gone" || (outcome === "detached" && turn.stop === "ended")) {
      this.readBack(turn);
    }
    // Otherwise detached: the page is going away, and the answer goes on on the server.
  }

  /**
   * The answer's stream runs nowhere any more and its `done` was missed: show the answer as stored.
   * Stored as still being written, its worker went away: the server marks it interrupted soon.
   * @param {Turn} turn
   */
  async readBack(turn) {
    const answer = turn.answer;
    answer.root.toggleAttribute("data-syncing", true);
    const stored = await this.stored(answer);
    answer.root.removeAttribute("data-syncing");
    if (stored && stored !== "gone" && stored.status !== "streaming") {
      turn.finished = true;
      answer.fill(stored);
      answer.onPaint();
      this.options.announce(SPOKEN[stored.status] ?? "");
    } else {
      this.finish(turn, "interrupted");
      this.watch(answer, { progressive: false });
    }
  }

  /**
   * @param {Turn} turn
   * @param {FinishReason | "interrupted"} reason a `done` finish_reason, or "interrupted"
   */
  finish(turn, reason) {
    if (turn.finished) return;
    turn.finished = true;
    // A finish_reason this page does not know yet (the server may add one) reads as finished.
    const outcome = OUTCOMES[reason] ?? OUTCOMES.stop;
    const answer = turn.answer;
    answer.finish();
    answer.setState(outcome.state);
    const label = answer.content ? outcome.label : (outcome.emptyLabel ?? outcome.label);
    answer.setMeta([label, turn.usage].filter(Boolean).join(" · "));
    if (answer.hasNoAnswer) answer.hideEmptyText();
    // The status line came last: scroll it into view too, when the view follows the answer.
    answer.onPaint();
    this.options.announce(outcome.spoken);
  }

  /**
   * Stop the answer: the stop endpoint ends it on the server, wherever it runs. Pressed before
   * the stream said its id, the request goes when it does (closing the connection would not
   * stop the model). A failed stop is said (`onStopFailed`) and Stop can be pressed again.
   */
  stop() {
    const turn = this.active;
    if (!turn || turn.finished || turn.stop) return;
    this.options.announce("Stopping…");
    if (turn.streamId) this.sendStop(turn);
    else turn.stop = "wanted";
  }

  /**
   * The page goes away: stop reading, and leave the answer to the server (a reload reattaches).
   * @returns {boolean} whether an answer was being read
   */
  detach() {
    const turn = this.active;
    if (!turn) return false;
    turn.controller.abort();
    return true;
  }

  /** @param {Turn} turn */
  async sendStop(turn) {
    turn.stop = "sending";
    /** @type {unknown} */
    let failure = null;
    try {
      const response = await fetch(`${this.options.chatUrl}/${encodeURIComponent(turn.streamId)}/stop`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: "{}",
      });
      // 404: it runs nowhere any more; it ended (its `done` is on the way, or was missed).
      if (response.status === 202) turn.stop = "stopped";
      else if (response.status === 404) turn.stop = "ended";
      else failure = await requestError(response);
    } catch (error) {
      failure = error; // the server was not reached
    }
    if (turn.finished) return;
    if (failure) {
      turn.stop = "";
      this.options.announce("Could not stop the answer");
      this.options.onStopFailed(failure);
      return;
    }
    // Its stream ends with `done` (`cancelled`) in a moment, after the server saved it: wait for
    // that (a reattach waiting for its next try goes now), then stop reading anyway.
    turn.follower.retryNow();
    setTimeout(() => turn.controller.abort(), STOP_GRACE_MS);
  }

  /**
   * Read a stored answer again until it is final, and show it; `progressive`: show its
   * text as it grows too (an answer that cannot be reattached to). The message carries
   * `data-syncing` meanwhile.
   * @param {MessageView} message
   * @param {{ progressive: boolean }} how
   */
  async watch(message, { progressive }) {
    if (!this.options.currentId() || !message.id) return;
    message.root.toggleAttribute("data-syncing", true);
    const until = Date.now() + POLL_FOR_MS;
    let wait = POLL_MS;
    try {
      while (Date.now() < until && message.root.isConnected) {
        const stored = await this.stored(message);
        if (stored === "gone") return; // another branch is on display now
        if (stored && stored.status !== "streaming") return message.fill(stored);
        if (stored && progressive) message.fill(stored);
        await new Promise((resolve) => setTimeout(resolve, wait));
        wait = Math.min(wait * 1.25, POLL_MAX_MS);
      }
    } finally {
      message.root.removeAttribute("data-syncing");
      message.onPaint();
    }
  }

  /**
   * The message as the server stored it; "gone" when the branch on display no longer has it,
   * null when the server could not be reached.
   * @param {MessageView} message
   * @returns {Promise<import("./api.js").StoredMessage | "gone" | null>}
   */
  async stored(message) {
    const id = this.options.currentId();
    if (!id || !message.id) return null;
    return this.options.api.get(id).then(
      (conversation) => conversation.messages.find((m) => m.id === message.id) ?? "gone",
      () => null,
    );
  }
}
