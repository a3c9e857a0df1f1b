// @ts-check
/**
 * One answer at a time, streamed into a message of the page from a conversation endpoint,
 * with Stop (the fetch aborted and the stop endpoint called), and what the page shows when
 * it ends. `done` comes after the server saved the answer, so what arrived is what is
 * stored; an answer that ended without it (stopped, cut off) is read back from the server
 * until it is final, and shown as stored: that is what the model is told next time.
 */
import { streamAnswer } from "./chat-stream.js";
import { OUTCOMES } from "./message-view.js";

/**
 * @typedef {import("./chat-stream.js").FinishReason} FinishReason
 * @typedef {import("./chat-stream.js").MessageBody} MessageBody
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
 * @typedef {{
 *   answer: MessageView,
 *   controller: AbortController,
 *   streamId: string,
 *   started: boolean,
 *   finished: boolean,
 *   stopped: boolean,
 *   usage: string,
 * }} Turn
 * @typedef {{
 *   api: ConversationsApi,
 *   chatUrl: string,
 *   currentId: () => string | null,
 *   onBusy: (busy: boolean) => void,
 *   onAnswered: (conversationId: string) => void,
 *   onStoppedUnseen: () => void,
 *   announce: (message: string) => void,
 * }} AnswersOptions
 */

/** A stored answer still being written is read again after this long at first, then less often. */
const POLL_MS = 700;
const POLL_MAX_MS = 5_000;
/** How long the page reads it again before it leaves it as shown (CHATAPP_MAX_STREAM_S's default). */
const POLL_FOR_MS = 600_000;

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
    /** @type {Turn} */
    const turn = {
      answer,
      controller: new AbortController(),
      streamId: "",
      started: false,
      finished: false,
      stopped: false,
      usage: "",
    };
    this.active = turn;
    answer.setState("streaming");
    this.options.onBusy(true);
    this.options.announce("Generating…");
    try {
      const outcome = await streamAnswer(await url(), body, turn.controller.signal, {
        onStart(start) {
          turn.started = true;
          turn.streamId = start.stream_id;
          answer.root.dataset.streamId = start.stream_id;
          answer.setModel(start.model);
          const question = start.user_message_id ?? null;
          if (job.user && question) job.user.setIds(question, job.userParent, [...job.userAlternatives, question]);
          const id = start.message_id;
          if (id) answer.setIds(id, question, [...job.answerAlternatives, id]);
        },
        onReasoning: (delta) => answer.appendReasoning(delta),
        onToken: (delta) => answer.appendText(delta),
        onUsage(usage) {
          turn.usage = `${usage.completion_tokens} tokens`;
          answer.meta.title = `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`;
        },
        onError: (error) => answer.showError(error.message),
        onDone: (reason) => this.finish(turn, reason),
      });
      if (outcome === "interrupted") this.finish(turn, "interrupted");
    } catch (error) {
      if (turn.stopped) {
        this.finish(turn, "cancelled");
        // Stopped before the `start` event: the server may have stored the question and a
        // stopped answer that this page has no ids for. Show the conversation as stored.
        if (!turn.started) this.options.onStoppedUnseen();
      } else if (!turn.started) {
        turn.finished = true;
        job.notSent(error);
      } else {
        this.finish(turn, "interrupted");
      }
    } finally {
      this.active = null;
      this.options.onBusy(false);
    }
    const id = this.options.currentId();
    if (turn.started && id) this.options.onAnswered(id);
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
    if (reason === "cancelled" || reason === "interrupted") this.watch(answer, { progressive: false });
  }

  /** Stop the answer: abort its fetch, and tell the server too. */
  stop() {
    const turn = this.active;
    if (!turn) return;
    turn.stopped = true;
    if (turn.streamId) {
      // Besides the abort: a proxy may keep the upstream connection open after the browser
      // closes its own, and then only this request tells the server to stop the model.
      // keepalive lets it outlive the page; a 404 (already finished) is no error.
      fetch(`${this.options.chatUrl}/${encodeURIComponent(turn.streamId)}/stop`, {
        method: "POST",
        keepalive: true,
        headers: { "Content-Type": "application/json" },
        body: "{}",
      }).catch(() => {});
    }
    turn.controller.abort();
  }

  /**
   * Read a stored answer again until it is final, and show it; `progressive`: show its
   * text as it grows too (an answer that another page or worker is writing). The message
   * carries `data-syncing` meanwhile.
   * @param {MessageView} message
   * @param {{ progressive: boolean }} how
   */
  async watch(message, { progressive }) {
    const id = this.options.currentId();
    if (!id || !message.id) return;
    message.root.toggleAttribute("data-syncing", true);
    const until = Date.now() + POLL_FOR_MS;
    let wait = POLL_MS;
    try {
      while (Date.now() < until && message.root.isConnected) {
        const stored = await this.options.api.get(id).then(
          (conversation) => conversation.messages.find((m) => m.id === message.id) ?? "gone",
          () => null, // unreachable for now: try again
        );
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
}
