// @ts-check
// An answer followed across connections (static/js/answer-follower.js) against a scripted fetch:
// drops, stalls, going offline, refusals, and the reattach's position. Run: node --test tests/js/
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";

import { AnswerFollower, retryDelayMs } from "../../static/js/answer-follower.js";
import { RequestError } from "../../static/js/request-error.js";
import { START, done, sleep, start, stream, token } from "./scripted-fetch.mjs";

/**
 * @typedef {import("../../static/js/answer-follower.js").FollowHandlers} FollowHandlers
 * @typedef {import("./scripted-fetch.mjs").Answer} Answer
 * @typedef {{ url: string, method: string, headers: Record<string, string>, body: RequestInit["body"], at: number }} Call
 */

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

/**
 * Answer each fetch with the next of `answers`, each `(signal) => Response`; the calls are recorded
 * with when they came (ms since this was called).
 * @param {Answer[]} answers
 */
function serve(answers) {
  /** @type {Call[]} */
  const calls = [];
  const began = Date.now();
  globalThis.fetch = async (input, init = {}) => {
    // The page's modules fetch by URL, with headers as a plain object.
    const url = /** @type {string} */ (input);
    const headers = /** @type {Record<string, string>} */ (init.headers ?? {});
    calls.push({ url, method: init.method ?? "GET", headers, body: init.body, at: Date.now() - began });
    const answer = answers.shift();
    if (!answer) throw new Error(`unexpected fetch of ${url}`);
    return answer(init.signal);
  };
  return calls;
}

/**
 * @param {number} status
 * @param {string} code
 * @returns {Answer}
 */
function refuse(status, code) {
  return () => Response.json({ error: { code, message: `${code}.` } }, { status });
}

/** @returns {Answer} */
function failToConnect() {
  return () => Promise.reject(new TypeError("Failed to fetch"));
}


/** Handlers that record what they are given; `text` joins the tokens. */
function recorder() {
  /** @type {([string] | [string, unknown])[]} */
  const seen = [];
  /** @type {Record<string, (value?: unknown) => void>} */
  const record = {};
  for (const name of ["onStart", "onReasoning", "onToken", "onUsage", "onError", "onDone", "onReconnecting", "onReconnected"]) {
    record[name] = (value) => seen.push(value === undefined ? [name] : [name, value]);
  }
  const handlers = /** @type {FollowHandlers} */ (record);
  const text = () =>
    seen
      .filter(([name]) => name === "onToken")
      .map(([, value]) => value)
      .join("");
  return { seen, handlers, text };
}

/**
 * @param {FollowHandlers} handlers
 * @param {Partial<import("../../static/js/answer-follower.js").FollowOptions>} [options]
 */
function follower(handlers, options = {}) {
  return new AnswerFollower(handlers, {
    streamsUrl: "/api/streams",
    stallMs: 5_000,
    signal: new AbortController().signal,
    network: new EventTarget(),
    random: () => 0, // the shortest back-off: 375 ms first
    ...options,
  });
}

describe("AnswerFollower.post", () => {
  it("posts the message as JSON and follows one connection to `done`", async () => {
    const calls = serve([stream([": keep-alive\n\n", start(), token(2, "caf"), token(3, "é"), done(4)])]);
    const { seen, handlers } = recorder();
    const outcome = await follower(handlers).post("/api/conversations/c1/messages", { content: "hi" });
    assert.equal(outcome, "done");
    assert.deepEqual(seen, [["onStart", START], ["onToken", "caf"], ["onToken", "é"], ["onDone", "stop"]]);
    assert.equal(calls.length, 1);
    assert.equal(calls[0].method, "POST");
    assert.equal(calls[0].body, '{"content":"hi"}');
    assert.equal(calls[0].headers["Content-Type"], "application/json");
  });

  it("rejects with the server's error when it refuses to start the answer", async () => {
    serve([refuse(404, "conversation_not_found")]);
    await assert.rejects(follower(recorder().handlers).post("/x", {}), (error) => {
      assert.ok(error instanceof RequestError);
      assert.deepEqual([error.status, error.code, error.message], [404, "conversation_not_found", "conversation_not_found."]);
      return true;
    });
  });

  it("rejects with the network's error when the server was never reached", async () => {
    serve([failToConnect()]);
    await assert.rejects(follower(recorder().handlers).post("/x", {}), TypeError);
  });

  it("is unseen when the connection ended before `start` named the stream", async () => {
    serve([stream([": keep-alive\n\n", "drop"])]);
    assert.equal(await follower(recorder().handlers).post("/x", {}), "unseen");
  });
});

describe("AnswerFollower reattaches", () => {
  it("after a dropped connection, with Last-Event-ID, and the joined text is the whole answer", async () => {
    const calls = serve([
      stream([start(), token(2, "one "), token(3, "two "), "drop"]),
      stream([token(3, "two "), token(4, "three"), done(5)]), // a repeat of 3: dropped by the guard
    ]);
    const { seen, handlers, text } = recorder();
    assert.equal(await follower(handlers).post("/x", {}), "done");
    assert.equal(text(), "one two three");
    assert.deepEqual(calls[1], { ...calls[1], url: "/api/streams/s1", method: "GET" });
    assert.equal(calls[1].headers["Last-Event-ID"], "s1:3");
    const names = seen.map(([name]) => name);
    assert.deepEqual(names, ["onStart", "onToken", "onToken", "onReconnecting", "onReconnected", "onToken", "onDone"]);
  });

  it("after a body that ended without `done`", async () => {
    const calls = serve([stream([start(), token(2, "a")]), stream([token(3, "b"), done(4)])]);
    const { text, handlers } = recorder();
    assert.equal(await follower(handlers).post("/x", {}), "done");
    assert.equal(text(), "ab");
    assert.equal(calls[1].headers["Last-Event-ID"], "s1:2");
  });

  it("after a stall: no bytes for stallMs cuts the connection", async () => {
    const calls = serve([stream([start(), token(2, "a"), "hang"]), stream([token(3, "b"), done(4)])]);
    const { text, handlers } = recorder();
    const outcome = await follower(handlers, { stallMs: 100 }).post("/x", {});
    assert.equal(outcome, "done");
    assert.equal(text(), "ab");
    // Cut after 100 ms of silence, then the first back-off (375 ms with this jitter).
    assert.ok(calls[1].at >= 450 && calls[1].at < 1_500, `reattached after ${calls[1].at} ms`);
  });

  it("not while heartbeats come, however long the model is silent", async () => {
    const beats = Array.from({ length: 8 }, () => [40, ": keep-alive\n\n"]).flat();
    const calls = serve([stream([start(), ...beats, token(2, "late"), done(3)])]);
    const { text, handlers } = recorder();
    assert.equal(await follower(handlers, { stallMs: 100 }).post("/x", {}), "done");
    assert.equal(text(), "late");
    assert.equal(calls.length, 1);
  });

  it("at once when the browser goes offline, and again as soon as it is online", async () => {
    const network = new EventTarget();
    const calls = serve([
      stream([start(), token(2, "a"), "hang"]),
      failToConnect(),
      stream([token(3, "b"), done(4)]),
    ]);
    const { text, handlers } = recorder();
    const following = follower(handlers, { network, random: () => 0.99 }).post("/x", {});
    await sleep(50);
    network.dispatchEvent(new Event("offline"));
    // The first try fails (still offline); the next would be ~1.2 s later, but the network is back.
    await sleep(700);
    network.dispatchEvent(new Event("online"));
    assert.equal(await following, "done");
    assert.equal(text(), "ab");
    assert.equal(calls.length, 3);
    assert.ok(calls[2].at < 1_000, `the reattach waited for its back-off: ${calls[2].at} ms`);
  });

  it("through refusals that can pass (503) and failed connections, with back-off", async () => {
    const calls = serve([
      stream([start(), "drop"]),
      refuse(503, "shared_state_unavailable"),
      failToConnect(),
      stream([token(2, "x"), done(3)]),
    ]);
    const { seen, handlers } = recorder();
    assert.equal(await follower(handlers).post("/x", {}), "done");
    assert.equal(seen.filter(([name]) => name === "onReconnecting").length, 1);
    assert.equal(seen.filter(([name]) => name === "onReconnected").length, 1);
    const waits = calls.slice(1).map((call, i) => call.at - calls[i].at);
    assert.ok(waits[0] >= 370 && waits[1] >= 740 && waits[2] >= 1_490, `waits ${waits}`);
  });

  it("is gone when the server no longer has the stream (404)", async () => {
    serve([stream([start(), token(2, "a"), "drop"]), refuse(404, "stream_not_found")]);
    assert.equal(await follower(recorder().handlers).post("/x", {}), "gone");
  });

  it("is lost when no connection comes back for giveUpMs", async () => {
    serve([stream([start(), "drop"]), failToConnect(), failToConnect()]);
    assert.equal(await follower(recorder().handlers, { giveUpMs: 500 }).post("/x", {}), "lost");
  });

  it("stops reading, and never reconnects, when the caller aborts", async () => {
    const controller = new AbortController();
    const calls = serve([stream([start(), "hang"])]);
    const following = follower(recorder().handlers, { signal: controller.signal }).post("/x", {});
    await sleep(20);
    controller.abort();
    assert.equal(await following, "detached");
    await sleep(500);
    assert.equal(calls.length, 1);
  });

  it("tries again at once when asked to (the answer was just stopped)", async () => {
    const calls = serve([stream([start(), "drop"]), stream([done(2, "cancelled")])]);
    const { handlers } = recorder();
    const stream_ = follower(handlers, { random: () => 0.99 });
    handlers.onReconnecting = () => setTimeout(() => stream_.retryNow(), 10);
    assert.equal(await stream_.post("/x", {}), "done");
    assert.ok(calls[1].at - calls[0].at < 300, `waited ${calls[1].at - calls[0].at} ms`);
  });
});

describe("AnswerFollower.follow", () => {
  it("replays a running answer from its start: after=0, no Last-Event-ID", async () => {
    const calls = serve([stream([start(), token(2, "all"), done(3)])]);
    const { seen, handlers } = recorder();
    assert.equal(await follower(handlers).follow("s1"), "done");
    assert.equal(calls[0].url, "/api/streams/s1?after=0");
    assert.equal(calls[0].headers["Last-Event-ID"], undefined);
    assert.deepEqual(seen.map(([name]) => name), ["onStart", "onToken", "onDone"]);
  });

  it("says Reconnecting when its first try fails, and is gone on 404", async () => {
    serve([failToConnect(), refuse(404, "stream_not_found")]);
    const { seen, handlers } = recorder();
    assert.equal(await follower(handlers).follow("s1"), "gone");
    assert.deepEqual(seen, [["onReconnecting"]]);
  });
});

describe("retryDelayMs", () => {
  it("doubles from about half a second to a cap of 8 s, within ±25 % jitter", () => {
    const middle = [0, 1, 2, 3, 4, 5, 9].map((attempt) => retryDelayMs(attempt, () => 0.5));
    assert.deepEqual(middle, [500, 1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
    assert.equal(retryDelayMs(0, () => 0), 375);
    assert.equal(retryDelayMs(1, () => 0.999999).toFixed(0), "1250");
  });
});
