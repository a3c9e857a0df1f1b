// @ts-check
/**
 * One connection of a streamed answer (docs/api.md): the body of a streaming endpoint read
 * with a stream reader, decoded with one TextDecoder in stream mode (a character split
 * between two reads is decoded whole), parsed as SSE, and each event's JSON handed to its
 * handler. answer-stream.js opens the connections and follows an answer across them; no DOM
 * here, the page's modules own it.
 */
import { createParser } from "./sse.js";

/**
 * The requests and the event payloads of docs/api.md.
 *
 * @typedef {{ role: "system" | "user" | "assistant", content: string }} ChatMessage
 * @typedef {{ messages: ChatMessage[], model?: string }} ChatBody the body of `POST /api/chat`
 * @typedef {{ content: string, parent_id?: string | null }} MessageBody the body of `POST .../messages`
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

/** The server refused the request before streaming (a 4xx/5xx JSON error body). */
export class RequestError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {number | null} [retryAfterS] what the answer's Retry-After said, in seconds
   */
  constructor(status, code, message, retryAfterS = null) {
    super(message);
    this.name = "RequestError";
    /** @readonly */
    this.status = status;
    /** @readonly a stable error code of docs/api.md, or "http_error" when the body had none */
    this.code = code;
    /** @readonly seconds to wait before trying again, when the server said; else null */
    this.retryAfterS = retryAfterS;
  }
}

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

/**
 * The RequestError a refused request's JSON error body describes.
 *
 * @param {Response} response
 * @returns {Promise<RequestError>}
 */
export async function requestError(response) {
  const retryAfterS = retryAfter(response.headers.get("Retry-After"));
  try {
    const { error } = /** @type {{ error: ErrorData }} */ (await response.json());
    return new RequestError(response.status, error.code, error.message, retryAfterS);
  } catch {
    const message = `The server answered ${response.status}. Try again.`;
    return new RequestError(response.status, "http_error", message, retryAfterS);
  }
}

/**
 * Retry-After in seconds: it is either a number of seconds or an HTTP date (RFC 9110, 10.2.3).
 * @param {string | null} value
 * @returns {number | null}
 */
function retryAfter(value) {
  if (value === null || value.trim() === "") return null;
  const seconds = /^\s*\d+\s*$/.test(value) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.max(0, Math.ceil(seconds)) : null;
}
