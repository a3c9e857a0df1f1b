// @ts-check
// What the page's network tests share: a scripted event-stream answer and the event frames of one
// stream. Each test file scripts `globalThis.fetch` itself (its routing differs) and restores it.

/**
 * A scripted answer to one fetch: given the fetch's signal, the Response (or its promise).
 * @typedef {(signal?: AbortSignal | null) => Response | Promise<Response>} Answer
 * @typedef {string | number | Promise<unknown> | "drop" | "hang"} Step
 */

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A 200 `text/event-stream` answer whose body follows these steps: text is sent; a number waits that
 * many ms and a promise until it settles; "drop" breaks the connection; "hang" sends nothing more
 * until the fetch is aborted. The body ends after the last step. Aborting the fetch errors the
 * body, as a browser's does.
 *
 * @param {Step[]} steps
 * @returns {Answer}
 */
export function stream(steps) {
  return (signal) => {
    const encoder = new TextEncoder();
    const aborted = new Promise((resolve) => signal?.addEventListener("abort", resolve, { once: true }));
    const body = new ReadableStream({
      async start(controller) {
        signal?.addEventListener("abort", () => controller.error(new DOMException("aborted", "AbortError")), {
          once: true,
        });
        for (const step of steps) {
          if (signal?.aborted) return;
          if (typeof step === "number") await Promise.race([sleep(step), aborted]);
          else if (step instanceof Promise) await Promise.race([step, aborted]);
          // Erroring a stream discards what is queued: the reader gets what was sent first.
          else if (step === "drop") return void (await sleep(10), controller.error(new TypeError("network error")));
          else if (step === "hang") return void (await aborted);
          else controller.enqueue(encoder.encode(step));
        }
        if (!signal?.aborted) controller.close();
      },
    });
    return new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } });
  };
}

export const START = { stream_id: "s1", model: "m", conversation_id: "c1", user_message_id: "u1", message_id: "a1" };
/**
 * @param {number} sequence
 * @param {string} name
 * @param {unknown} data
 */
export const event = (sequence, name, data) =>
  `id: s1:${sequence}\nevent: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
export const start = () => event(1, "start", START);
/**
 * @param {number} sequence
 * @param {string} text
 */
export const token = (sequence, text) => event(sequence, "token", { text });
/**
 * @param {number} sequence
 * @param {string} [reason]
 */
export const done = (sequence, reason = "stop") => event(sequence, "done", { finish_reason: reason });
