// @ts-check
/**
 * A stored conversation's answer, followed to its `done` across connections. The server writes
 * the answer whatever happens to the connection that asked for it (docs/api.md), so when that
 * connection drops (an error, a body that ends without `done`, the browser going offline) or
 * stalls (no bytes, not even a heartbeat, for two heartbeat intervals), this reattaches with
 * `GET /api/streams/<stream_id>` and `Last-Event-ID`, with back-off, and the events go on where
 * they stopped: the same ids, none twice (an event at or before the last sequence seen is
 * dropped, as a guard), so the joined text is that of an uninterrupted run. Closing a
 * connection never stops the model: Stop is the stop endpoint (answers.js).
 *
 * No DOM: `network` is where the browser says it went offline or online (the window).
 */
import { requestError } from "./request-error.js";
import { handleEvent, readEvents, sequenceOf } from "./sse-reader.js";

/** Back-off between reattach attempts: doubling from the first, up to the last, with ±25 % jitter. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 8_000;
/** Without any connection for this long, the answer is given up as lost (the page says so). */
const GIVE_UP_MS = 120_000;

/**
 * @typedef {import("./sse-reader.js").StreamHandlers & {
 *   onReconnecting: () => void,
 *   onReconnected: () => void,
 * }} FollowHandlers `onReconnecting` once when a connection is lost, `onReconnected` when
 *   a reattach is answered
 * @typedef {"done" | "gone" | "unseen" | "lost" | "detached"} Outcome how following ended:
 *   `done` the `done` event arrived; `gone` the server no longer has the stream (404: it ended
 *   and its retention passed), the stored message says how it ended; `unseen` the first
 *   connection ended before `start`, so there is no id to reattach with; `lost` no connection
 *   for GIVE_UP_MS; `detached` the caller's signal aborted
 * @typedef {{
 *   streamsUrl: string,
 *   stallMs: number,
 *   signal: AbortSignal,
 *   network?: EventTarget | null,
 *   random?: () => number,
 *   giveUpMs?: number,
 * }} FollowOptions `streamsUrl`: `/api/streams`; `stallMs`: two heartbeat intervals; `signal`:
 *   aborted, the page stops reading (the answer goes on on the server)
 * @typedef {{ url: string, init: RequestInit }} Request
 * @typedef {{ kind: "done" } | { kind: "dropped" } | { kind: "refused", error: import("./request-error.js").RequestError }
 *   | { kind: "failed", error: unknown }} Connection how one connection ended
 */

/**
 * How long to wait before a reattach attempt: doubling, with jitter so that the pages a server
 * restart cut off do not all come back at once, and capped.
 * @param {number} attempt 0 for the first
 * @param {() => number} random in [0, 1)
 */
export function retryDelayMs(attempt, random) {
  return Math.min(RETRY_FIRST_MS * 2 ** attempt * (0.75 + 0.5 * random()), RETRY_MAX_MS);
}

export class AnswerFollower {
  /**
   * @param {FollowHandlers} handlers
   * @param {FollowOptions} options
   */
  constructor(handlers, options) {
    this.handlers = handlers;
    this.options = options;
    /** The stream's id, from `start` (or the one reattached to). */
    this.streamId = "";
    /** The sequence of the last event handled. */
    this.sequence = 0;
    this.done = false;
    /** @type {(() => void) | null} ends the wait before the next attempt */
    this.wake = null;
  }

  /**
   * Start an answer with the POST of a conversation endpoint, and follow it to its end.
   * Rejects (RequestError, TypeError) when the server refused it or was never reached: then
   * nothing was started.
   *
   * @param {string} url
   * @param {object} body
   * @returns {Promise<Outcome>}
   */
  async post(url, body) {
    const init = {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(body),
    };
    const first = await this.connect({ url, init });
    if (this.options.signal.aborted) return "detached";
    if (first.kind === "done") return "done";
    if (first.kind === "refused" || first.kind === "failed") throw first.error;
    if (!this.streamId) return "unseen";
    return this.reattach(true);
  }

  /**
   * Follow a running answer from after `sequence` (0: replayed from its `start`).
   * @param {string} streamId
   * @param {number} [sequence]
   * @returns {Promise<Outcome>}
   */
  async follow(streamId, sequence = 0) {
    this.streamId = streamId;
    this.sequence = sequence;
    return this.reattach(false);
  }

  /** Try again now, not after the back-off: the network is back, or the answer was stopped. */
  retryNow() {
    this.wake?.();
  }

  /**
   * Connect with `GET /api/streams/<id>` until the answer's `done`.
   * @param {boolean} dropped the connection was just lost (else: the first try of a reattach)
   * @returns {Promise<Outcome>}
   */
  async reattach(dropped) {
    const { signal, giveUpMs = GIVE_UP_MS } = this.options;
    let since = Date.now();
    let attempt = 0;
    let reconnecting = false;
    for (;;) {
      if (dropped) {
        if (!reconnecting) this.handlers.onReconnecting();
        reconnecting = true;
        if (Date.now() - since > giveUpMs) return "lost";
        await this.pause(attempt++);
      }
      if (signal.aborted) return "detached";
      let opened = false;
      const result = await this.connect(this.reattachRequest(), () => {
        if (reconnecting) this.handlers.onReconnected();
        reconnecting = false;
        opened = true;
        attempt = 0;
      });
      if (signal.aborted) return "detached";
      if (result.kind === "done") return "done";
      if (opened) since = Date.now();
      // 404 (the stream ended and its retention passed) and the other refusals that trying again
      // cannot change: the stored message is the truth. 5xx, 408 and 429 pass; try again.
      if (result.kind === "refused" && result.error.status < 500 && ![408, 429].includes(result.error.status)) {
        return "gone";
      }
      dropped = true;
    }
  }

  /** @returns {Request} the reattach from after the last event handled */
  reattachRequest() {
    const url = `${this.options.streamsUrl}/${encodeURIComponent(this.streamId)}`;
    /** @type {Record<string, string>} */
    const headers = { Accept: "text/event-stream" };
    // As an EventSource's reconnect says it; from nothing yet, the query says "from the start".
    if (this.sequence > 0) headers["Last-Event-ID"] = `${this.streamId}:${this.sequence}`;
    return { url: this.sequence > 0 ? url : `${url}?after=0`, init: { method: "GET", headers } };
  }

  /**
   * One connection, read to its end. It is cut (and reads as dropped) when no bytes came for
   * `stallMs`, when the browser goes offline, or when the caller's signal aborts.
   * @param {Request} request
   * @param {() => void} [onOpen] the server answered 200
   * @returns {Promise<Connection>}
   */
  async connect({ url, init }, onOpen) {
    const { signal, network, stallMs } = this.options;
    const connection = new AbortController();
    const cut = () => connection.abort();
    // A fetch or a read waiting on a dead connection waits forever: no bytes at all for
    // two heartbeat intervals means dead. Armed before the answer's headers too.
    let timer = setTimeout(cut, stallMs);
    const alive = () => {
      clearTimeout(timer);
      timer = setTimeout(cut, stallMs);
    };
    signal.addEventListener("abort", cut);
    // An established connection may go on for a while after the network is gone, or hang
    // without an error: going offline is a drop, at once.
    network?.addEventListener("offline", cut);
    let open = false;
    try {
      if (signal.aborted) return { kind: "dropped" };
      const response = await fetch(url, { ...init, signal: connection.signal });
      if (!response.ok || !response.body) return { kind: "refused", error: await requestError(response) };
      open = true;
      alive();
      onOpen?.();
      await readEvents(response.body, (event) => this.handle(event), alive);
      return this.done ? { kind: "done" } : { kind: "dropped" };
    } catch (error) {
      if (this.done) return { kind: "done" };
      return open ? { kind: "dropped" } : { kind: "failed", error };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", cut);
      network?.removeEventListener("offline", cut);
    }
  }

  /** @param {import("./sse.js").ServerSentEvent} event */
  handle(event) {
    if (this.done) return;
    const sequence = sequenceOf(event.id);
    if (sequence !== null) {
      // The server replays after the position asked for: this only guards against a repeat.
      if (sequence <= this.sequence) return;
      this.sequence = sequence;
    }
    if (event.event === "start") {
      try {
        this.streamId = JSON.parse(event.data).stream_id ?? this.streamId;
      } catch {
        // handleEvent ignores it too
      }
    }
    if (event.event === "done") this.done = true;
    handleEvent(event, this.handlers);
  }

  /**
   * Wait before the next attempt: the back-off, cut short when the browser says it is online
   * again, when `retryNow` is called, or when the caller's signal aborts.
   * @param {number} attempt 0 for the first
   */
  pause(attempt) {
    const { signal, network, random = Math.random } = this.options;
    const ms = retryDelayMs(attempt, random);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", wake);
        network?.removeEventListener("online", wake);
        this.wake = null;
        resolve(undefined);
      };
      const timer = setTimeout(wake, ms);
      signal.addEventListener("abort", wake);
      network?.addEventListener("online", wake);
      this.wake = wake;
    });
  }
}
