// @ts-check
/**
 * One chat request: POST to /api/chat with fetch, read the body with a stream reader,
 * decode it with one TextDecoder in stream mode (a character split between two reads is
 * decoded whole), and turn the SSE events of docs/api.md into handler calls.
 * No DOM here; chat.js owns the page.
 */
import { createParser } from "./sse.js";

/**
 * @typedef {{ role: "system" | "user" | "assistant", content: string }} ChatMessage
 * @typedef {{
 *   onStart: (start: { stream_id: string, model: string }) => void,
 *   onReasoning: (text: string) => void,
 *   onToken: (text: string) => void,
 *   onUsage: (usage: { prompt_tokens: number, completion_tokens: number, total_tokens: number }) => void,
 *   onError: (error: { code: string, message: string }) => void,
 *   onDone: (finishReason: string) => void,
 * }} StreamHandlers
 */

/** The server refused the request before streaming (a 4xx/5xx JSON error body). */
export class RequestError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.name = "RequestError";
    this.status = status;
    this.code = code;
  }
}

/**
 * Stream one answer. Resolves "done" when the `done` event arrived, "interrupted" when
 * the body ended without it (the connection dropped). Rejects with RequestError for a
 * non-200 answer, with an AbortError when `signal` aborts, and with a TypeError for a
 * network failure.
 *
 * @param {string} url
 * @param {{ messages: ChatMessage[], model?: string }} body
 * @param {AbortSignal} signal
 * @param {StreamHandlers} handlers
 * @returns {Promise<"done" | "interrupted">}
 */
export async function streamChat(url, body, signal, handlers) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok || !response.body) throw await requestError(response);

  let sawDone = false;
  const parser = createParser({
    onEvent(event) {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return; // not ours: every chatapp event carries one line of JSON
      }
      switch (event.event) {
        case "start":
          return handlers.onStart(data);
        case "reasoning":
          return handlers.onReasoning(data.text);
        case "token":
          return handlers.onToken(data.text);
        case "usage":
          return handlers.onUsage(data);
        case "error":
          return handlers.onError(data);
        case "done":
          sawDone = true;
          return handlers.onDone(data.finish_reason);
        default:
        // Unknown events are ignored, so the server can add new ones.
      }
    },
  });

  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
    }
    parser.feed(decoder.decode()); // flush a character cut off at the very end
  } finally {
    reader.releaseLock();
  }
  return sawDone ? "done" : "interrupted";
}

/** @param {Response} response */
async function requestError(response) {
  try {
    const { error } = await response.json();
    return new RequestError(response.status, error.code, error.message);
  } catch {
    return new RequestError(response.status, "http_error", `The server answered ${response.status}. Try again.`);
  }
}
