// @ts-check
// Stop at every moment of an answer (static/js/answers.js): before `start`, after a failed stop,
// while reconnecting; and an answer whose stream is gone, shown as stored. Against a scripted
// fetch and a stand-in for the message on the page. Run: node --test tests/js/
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";

import { Answers } from "../../static/js/answers.js";
import { ConversationsApi } from "../../static/js/api.js";
import { RequestError } from "../../static/js/request-error.js";
import { done, sleep, start, stream, token } from "./scripted-fetch.mjs";

/**
 * @typedef {import("../../static/js/message-view.js").MessageView} MessageView
 * @typedef {import("../../static/js/api.js").StoredMessage} StoredMessage
 * @typedef {import("../../static/js/api.js").MessageStatus} MessageStatus
 * @typedef {import("./scripted-fetch.mjs").Answer} Answer
 * @typedef {{ method: string, url: string, headers: RequestInit["headers"], signal: AbortSignal }} Call
 */

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

/**
 * A promise with its resolve, to script when the server does something.
 * @returns {Promise<unknown> & { open: () => void }}
 */
function gate() {
  /** @type {() => void} */
  let open = () => {};
  const promise = new Promise((resolve) => (open = () => resolve(undefined)));
  return Object.assign(promise, { open });
}

/**
 * Answer each fetch from the first route whose method and URL prefix match: the next of its
 * answers, each `(signal) => Response`; the last one answers every later call. Calls are recorded.
 * @param {[string, string, Answer[]][]} routes method, URL prefix, answers
 */
function serve(routes) {
  /** @type {Call[]} */
  const calls = [];
  globalThis.fetch = async (input, init = {}) => {
    const url = /** @type {string} */ (input); // the page's modules fetch by URL
    const method = init.method ?? "GET";
    // Every request of answers.js carries a signal: Stop, or the page leaving, aborts it.
    calls.push({ method, url, headers: init.headers ?? {}, signal: /** @type {AbortSignal} */ (init.signal) });
    const route = routes.find(([m, prefix]) => m === method && url.startsWith(prefix));
    if (!route) throw new Error(`unexpected ${method} ${url}`);
    const answers = route[2];
    const answer = answers.length > 1 ? answers.shift() : answers[0];
    if (!answer) throw new Error(`no answer scripted for ${method} ${url}`);
    return answer(init.signal);
  };
  return calls;
}

/** @type {Answer} */
const failToConnect = () => Promise.reject(new TypeError("Failed to fetch"));


/**
 * Answers the stop endpoint with this status, opening `arrived` when it is called.
 * @param {202 | 404 | 503} status
 * @returns {Answer}
 */
function stopAnswer(status, arrived = gate()) {
  return () => {
    arrived.open();
    if (status === 202) return Response.json({ stopped: true }, { status: 202 });
    const code = status === 404 ? "stream_not_found" : "shared_state_unavailable";
    return Response.json({ error: { code, message: `${code}.` } }, { status, headers: { "Retry-After": "1" } });
  };
}

/**
 * The stored conversation with the answer a1 in this state.
 * @param {MessageStatus} status
 * @param {string} content
 * @returns {Answer}
 */
function storedAnswer(status, content) {
  const message = { id: "a1", parent_id: "u1", role: "assistant", content, reasoning: "", status, alternatives: ["a1"] };
  return () => Response.json({ id: "c1", title: "t", messages: [message] });
}

/**
 * What answers.js uses of a message on the page (message-view.js's MessageView); `view` hands it
 * over as one.
 */
class FakeAnswer {
  /** @param {Record<string, string>} [dataset] */
  constructor(dataset = {}) {
    /** @type {Set<string>} */
    const attributes = new Set();
    this.root = {
      dataset,
      isConnected: true,
      /** @type {(name: string, on: boolean) => unknown} */
      toggleAttribute: (name, on) => (on ? attributes.add(name) : attributes.delete(name)),
      /** @type {(name: string) => unknown} */
      removeAttribute: (name) => attributes.delete(name),
      /** @type {(name: string) => boolean} */
      hasAttribute: (name) => attributes.has(name),
    };
    this.meta = { title: "" };
    this.text = "";
    this.state = "";
    this.label = "";
    this.restarts = 0;
    /** @type {StoredMessage | null} */
    this.filled = null;
  }
  /** @returns {MessageView} */
  get view() {
    return /** @type {MessageView} */ (/** @type {unknown} */ (this));
  }
  get id() {
    return this.root.dataset.id ?? "";
  }
  get streamId() {
    return this.root.dataset.streamId ?? "";
  }
  get content() {
    return this.text;
  }
  get hasNoAnswer() {
    return !this.text;
  }
  restart() {
    this.text = "";
    this.restarts++;
  }
  /** @param {string} id */
  setIds(id) {
    this.root.dataset.id = id;
  }
  setModel() {}
  appendReasoning() {}
  /** @param {string} text */
  appendText(text) {
    this.text += text;
  }
  showError() {}
  /** @param {boolean} on */
  setReconnecting(on) {
    this.label = on ? "Reconnecting…" : "";
  }
  finish() {}
  /** @param {string} state */
  setState(state) {
    this.state = state;
  }
  /** @param {string} label */
  setMeta(label) {
    this.label = label;
  }
  hideEmptyText() {}
  onPaint() {}
  /** @param {StoredMessage} m */
  fill(m) {
    this.filled = m;
    this.text = m.content;
    this.state = m.status;
  }
}

function page() {
  /** @type {string[]} */
  const said = [];
  /** @type {unknown[]} */
  const stopFailures = [];
  /** @type {boolean[]} */
  const busy = [];
  const answers = new Answers({
    api: new ConversationsApi("/api/conversations"),
    chatUrl: "/api/chat",
    streamsUrl: "/api/streams",
    stallMs: 5_000,
    network: new EventTarget(),
    currentId: () => "c1",
    onBusy: (value) => busy.push(value),
    onAnswered: () => {},
    onUnseen: () => said.push("(unseen)"),
    onStopFailed: (error) => stopFailures.push(error),
    announce: (message) => said.push(message),
  });
  const job = { user: null, userParent: null, userAlternatives: [], answerAlternatives: [], notSent: () => {} };
  return { answers, said, stopFailures, busy, job };
}

/**
 * @param {() => boolean} condition
 * @param {string} what
 * @param {number} [ms]
 */
const until = async (condition, what, ms = 3_000) => {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`still waiting for ${what}`);
    await sleep(5);
  }
};

describe("Stop", () => {
  it("before `start` keeps the connection open until the stream has an id, then asks the server", async () => {
    const started = gate();
    const stopArrived = gate();
    const calls = serve([
      ["POST", "/api/conversations/c1/messages", [stream([": keep-alive\n\n", started, start(), stopArrived, done(2, "cancelled")])]],
      ["POST", "/api/chat/s1/stop", [stopAnswer(202, stopArrived)]],
    ]);
    const { answers, said, job } = page();
    const answer = new FakeAnswer();
    const running = answers.run(async () => "/api/conversations/c1/messages", { content: "hi" }, answer.view, job);
    await sleep(20);
    answers.stop();
    await sleep(50);
    assert.equal(calls.length, 1, "no stop request without a stream id");
    assert.equal(calls[0].signal.aborted, false, "the connection was closed: the server never says its id");
    started.open();
    await running;
    assert.deepEqual(
      calls.map((c) => `${c.method} ${c.url}`),
      ["POST /api/conversations/c1/messages", "POST /api/chat/s1/stop"],
    );
    assert.equal(answer.state, "stopped");
    assert.equal(answer.label, "Stopped before any answer");
    assert.deepEqual(said.slice(-2), ["Stopping…", "Stopped"]);
  });

  it("that failed is said, the answer goes on, and Stop works when pressed again", async () => {
    const firstStop = gate();
    const secondStop = gate();
    serve([
      ["POST", "/api/conversations/c1/messages", [stream([start(), token(2, "a"), firstStop, token(3, "b"), secondStop, done(4, "cancelled")])]],
      ["POST", "/api/chat/s1/stop", [stopAnswer(503, firstStop), stopAnswer(202, secondStop)]],
    ]);
    const { answers, said, stopFailures, job } = page();
    const answer = new FakeAnswer();
    const running = answers.run(async () => "/api/conversations/c1/messages", {}, answer.view, job);
    await until(() => answer.text === "a", "the first token");
    answers.stop();
    await until(() => stopFailures.length === 1, "the failed stop");
    assert.ok(stopFailures[0] instanceof RequestError);
    assert.equal(stopFailures[0].code, "shared_state_unavailable");
    assert.equal(said.at(-1), "Could not stop the answer");
    await until(() => answer.text === "ab", "the answer going on");
    assert.equal(answer.state, "streaming");
    assert.ok(answers.active, "the answer is no longer the page's to stop");

    answers.stop();
    await running;
    assert.equal(answer.state, "stopped");
    assert.equal(stopFailures.length, 1);
  });

  it("that never reached the server is said too", async () => {
    serve([
      ["POST", "/api/conversations/c1/messages", [stream([start(), "hang"])]],
      ["POST", "/api/chat/s1/stop", [failToConnect]],
    ]);
    const { answers, stopFailures, job } = page();
    const answer = new FakeAnswer();
    answers.run(async () => "/api/conversations/c1/messages", {}, answer.view, job);
    await until(() => answer.id === "a1", "start");
    answers.stop();
    await until(() => stopFailures.length === 1, "the failed stop");
    assert.ok(stopFailures[0] instanceof TypeError);
    assert.equal(answer.state, "streaming");
    answers.detach();
  });

  it("while reconnecting ends the answer and shows it as stored", async () => {
    const calls = serve([
      ["POST", "/api/conversations/c1/messages", [stream([start(), token(2, "partial"), "drop"])]],
      ["GET", "/api/streams/s1", [failToConnect]],
      ["POST", "/api/chat/s1/stop", [stopAnswer(202)]],
      ["GET", "/api/conversations/c1", [storedAnswer("stopped", "partial")]],
    ]);
    const { answers, said, job } = page();
    const answer = new FakeAnswer();
    const running = answers.run(async () => "/api/conversations/c1/messages", {}, answer.view, job);
    await until(() => answer.label === "Reconnecting…", "Reconnecting…");
    assert.ok(said.includes("Reconnecting…"));
    answers.stop();
    await running; // the grace for `done` passes: reading stops anyway
    assert.equal(answer.state, "stopped");
    await until(() => answer.filled !== null, "the stored answer");
    assert.equal(answer.text, "partial");
    assert.ok(calls.some((c) => c.url === "/api/chat/s1/stop"));
  });
});

describe("An answer whose stream is gone", () => {
  it("is shown as stored (404 on the reattach)", async () => {
    serve([
      ["POST", "/api/conversations/c1/messages", [stream([start(), token(2, "Hel"), "drop"])]],
      ["GET", "/api/streams/s1", [() => Response.json({ error: { code: "stream_not_found", message: "." } }, { status: 404 })]],
      ["GET", "/api/conversations/c1", [storedAnswer("complete", "Hello")]],
    ]);
    const { answers, said, job } = page();
    const answer = new FakeAnswer();
    await answers.run(async () => "/api/conversations/c1/messages", {}, answer.view, job);
    await until(() => answer.filled !== null, "the stored answer");
    assert.equal(answer.text, "Hello");
    assert.equal(answer.state, "complete");
    await until(() => said.at(-1) === "Response complete", "the announcement");
  });

  it("still stored as streaming reads as interrupted (its worker went away)", async () => {
    serve([
      ["POST", "/api/conversations/c1/messages", [stream([start(), token(2, "Hel"), "drop"])]],
      ["GET", "/api/streams/s1", [() => Response.json({ error: { code: "stream_not_found", message: "." } }, { status: 404 })]],
      ["GET", "/api/conversations/c1", [storedAnswer("streaming", "Hel"), storedAnswer("interrupted", "Hel")]],
    ]);
    const { answers, job } = page();
    const answer = new FakeAnswer();
    await answers.run(async () => "/api/conversations/c1/messages", {}, answer.view, job);
    await until(() => answer.state === "interrupted", "interrupted");
  });
});

describe("Following an answer found streaming on the page", () => {
  it("replays it from its start in place of what the page showed, with Stop", async () => {
    const calls = serve([["GET", "/api/streams/s1", [stream([start(), token(2, "whole"), done(3, "stop")])]]]);
    const { answers, busy } = page();
    const answer = new FakeAnswer({ id: "a1", streamId: "s1" });
    answer.text = "who"; // what the server rendered
    await answers.follow(answer.view);
    assert.equal(calls[0].url, "/api/streams/s1?after=0");
    assert.equal(answer.restarts, 1);
    assert.equal(answer.text, "whole");
    assert.equal(answer.state, "complete");
    assert.deepEqual(busy, [true, false]);
  });
});
