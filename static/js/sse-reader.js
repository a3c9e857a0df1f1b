// @ts-check
/**
 * The reader of one streamed answer's response (docs/api.md): its `text/event-stream` body read
 * with a stream reader, decoded with one TextDecoder in stream mode (a character split between
 * two reads is decoded whole), parsed by sse.js, and each of chatapp's events handed, as JSON,
 * to its handler. answer-follower.js opens the connections and follows an answer across them;
 * no DOM here, the page's modules own it.
 */
import { createParser } from "./sse.js";

/**
 * The event payloads of docs/api.md.
 *
 * @typedef {{
 *   stream_id: string,
 *   model: string,
 *   conversation_id?: string,
 *   user_message_id?: string,
 *   message_id?: string,
 * }} StartData the last three only from the conversation endpoints
 * @typedef {{ text: string }} TextData
 * @typedef {{ prompt_tokens: number, completion_tokens: number, total_tokens: number }} UsageData
 * @typedef {{ code: string, message: string }} ErrorData
 * @typedef {"stop" | "length" | "cancelled" | "error"} FinishReason
 * @typedef {{ finish_reason: FinishReason, model?: string }} DoneData
 * @typedef {{
 *   onStart: (start: StartData) => void,
 *   onReasoning: (text: string) => void,
 *   onToken: (text: string) => void,
 *   onUsage: (usage: UsageData) => void,
 *   onError: (error: ErrorData) => void,
 *   onDone: (finishReason: FinishReason) => void,
 * }} StreamHandlers
 */

/**
 * Read one response body of `text/event-stream` to its end, calling `onEvent` for each event
 * and `onBytes` after each read (a heartbeat comment counts: the connection is alive).
 * Rejects when the read fails: the connection broke, or its fetch was aborted.
 *
 * @param {ReadableStream<Uint8Array>} body
 * @param {(event: import("./sse.js").ServerSentEvent) => void} onEvent
 * @param {() => void} [onBytes]
 */
export async function readEvents(body, onEvent, onBytes = () => {}) {
  // A new parser and decoder per connection: an event cut off by a drop is never dispatched.
  const parser = createParser({ onEvent });
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      onBytes();
      parser.feed(decoder.decode(value, { stream: true }));
    }
    parser.feed(decoder.decode()); // flush a character cut off at the very end
  } finally {
    reader.releaseLock();
  }
}

/**
 * Hand one of chatapp's events to its handler; unknown events, and data that is not JSON,
 * are ignored (the server may add events).
 *
 * @param {import("./sse.js").ServerSentEvent} event
 * @param {StreamHandlers} handlers
 */
export function handleEvent(event, handlers) {
  /** @type {unknown} */
  let data;
  try {
    data = JSON.parse(event.data);
  } catch {
    return; // not ours: every chatapp event carries one line of JSON
  }
  // The payloads are the server's contract (docs/api.md), trusted here, not re-validated.
  switch (event.event) {
    case "start":
      return handlers.onStart(/** @type {StartData} */ (data));
    case "reasoning":
      return handlers.onReasoning(/** @type {TextData} */ (data).text);
    case "token":
      return handlers.onToken(/** @type {TextData} */ (data).text);
    case "usage":
      return handlers.onUsage(/** @type {UsageData} */ (data));
    case "error":
      return handlers.onError(/** @type {ErrorData} */ (data));
    case "done":
      return handlers.onDone(/** @type {DoneData} */ (data).finish_reason);
    default:
    // Unknown events are ignored, so the server can add new ones.
  }
}

/**
 * An event's sequence number: its id is `<stream_id>:<sequence>`; null for an id of another shape.
 * @param {string} id
 * @returns {number | null}
 */
export function sequenceOf(id) {
  const match = /(?:^|:)(\d+)$/.exec(id);
  return match ? Number(match[1]) : null;
}
