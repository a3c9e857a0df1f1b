// @ts-check
// Reading one streamed answer's response (static/js/sse-reader.js): its body to events, each
// event's JSON to its handler, an event id's sequence. Run: node --test tests/js/
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { handleEvent, readEvents, sequenceOf } from "../../static/js/sse-reader.js";

/**
 * @typedef {import("../../static/js/sse.js").ServerSentEvent} ServerSentEvent
 * @typedef {import("../../static/js/sse-reader.js").StreamHandlers} StreamHandlers
 */

/**
 * A body that arrives in these pieces (text or bytes).
 * @param {(string | Uint8Array)[]} pieces
 * @returns {ReadableStream<Uint8Array>}
 */
function body(pieces) {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const piece of pieces) controller.enqueue(typeof piece === "string" ? encoder.encode(piece) : piece);
      controller.close();
    },
  });
}

/** Handlers that record what they are given, as [handler, value]. */
function recorder() {
  /** @type {[string, unknown][]} */
  const seen = [];
  /** @type {Record<string, (value: unknown) => void>} */
  const handlers = {};
  for (const name of ["onStart", "onReasoning", "onToken", "onUsage", "onError", "onDone"]) {
    handlers[name] = (value) => seen.push([name, value]);
  }
  return { seen, handlers: /** @type {StreamHandlers} */ (handlers) };
}

const START = {
  stream_id: "s1",
  model: "m",
  conversation_id: "c1",
  user_message_id: "u1",
  message_id: "a1",
};

describe("readEvents", () => {
  it("hands over each event and counts every read as a sign of life, a heartbeat included", async () => {
    /** @type {ServerSentEvent[]} */
    const events = [];
    let reads = 0;
    await readEvents(
      body([": keep-alive\n\n", 'id: s1:1\nevent: token\ndata: {"text":"a"}\n', "\n"]),
      (event) => events.push(event),
      () => reads++,
    );
    assert.deepEqual(events, [{ event: "token", data: '{"text":"a"}', id: "s1:1" }]);
    assert.equal(reads, 3);
  });

  it("decodes a character split between two reads whole", async () => {
    const bytes = new TextEncoder().encode('event: token\ndata: {"text":"🚀"}\n\n');
    const cut = bytes.indexOf(0xf0) + 2;
    /** @type {ServerSentEvent[]} */
    const events = [];
    await readEvents(body([bytes.slice(0, cut), bytes.slice(cut)]), (event) => events.push(event));
    assert.equal(JSON.parse(events[0].data).text, "🚀");
  });

  it("never dispatches an event that the end of the body cut off", async () => {
    /** @type {ServerSentEvent[]} */
    const events = [];
    await readEvents(body(['event: token\ndata: {"text":"cut"}\n']), (event) => events.push(event));
    assert.deepEqual(events, []);
  });
});

describe("handleEvent", () => {
  it("passes each event's JSON to its handler and ignores unknown events and non-JSON data", () => {
    const { seen, handlers } = recorder();
    for (const [event, data] of [
      ["start", JSON.stringify(START)],
      ["token", '{"text":"x"}'],
      ["surprise", "{}"],
      ["token", "not json"],
      ["done", '{"finish_reason":"stop"}'],
    ]) {
      handleEvent({ event, data, id: "" }, handlers);
    }
    assert.deepEqual(seen, [
      ["onStart", START],
      ["onToken", "x"],
      ["onDone", "stop"],
    ]);
  });
});

describe("sequenceOf", () => {
  /** @type {[string, number | null][]} */
  const cases = [
    ["q3Zb2f0n8E6Hn1hVQ7bA2w:12", 12],
    ["a:b-c_d:3", 3],
    ["7", 7],
    ["s1:", null],
    ["s1:x", null],
    ["", null],
  ];
  for (const [id, sequence] of cases) {
    it(`${JSON.stringify(id)} -> ${sequence}`, () => assert.equal(sequenceOf(id), sequence));
  }
});
