// @ts-check
// The browser-side SSE parser against the WHATWG rules and adversarial chunking.
// Run: node --test tests/js/
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { createParser } from "../../static/js/sse.js";

/** @typedef {import("../../static/js/sse.js").ServerSentEvent} ServerSentEvent */

/**
 * Feed chunks of text; return the events and comments seen.
 * @param {string[]} chunks
 */
function parse(chunks) {
  /** @type {ServerSentEvent[]} */
  const events = [];
  /** @type {string[]} */
  const comments = [];
  /** @type {number[]} */
  const retries = [];
  const parser = createParser({
    onEvent: (e) => events.push(e),
    onComment: (c) => comments.push(c),
    onRetry: (ms) => retries.push(ms),
  });
  for (const chunk of chunks) parser.feed(chunk);
  return { events, comments, retries };
}

/**
 * Feed bytes through one TextDecoder in stream mode, as sse-reader.js does.
 * @param {Uint8Array[]} byteChunks
 */
function parseBytes(byteChunks) {
  const decoder = new TextDecoder();
  const chunks = byteChunks.map((bytes) => decoder.decode(bytes, { stream: true }));
  chunks.push(decoder.decode());
  return parse(chunks);
}

/**
 * @param {string} data
 * @param {string} [event]
 * @param {string} [id]
 * @returns {ServerSentEvent}
 */
const ev = (data, event = "message", id = "") => ({ event, data, id });

describe("line ends", () => {
  it("accepts LF, CRLF and lone CR alike", () => {
    for (const nl of ["\n", "\r\n", "\r"]) {
      const { events } = parse([`event: a${nl}data: 1${nl}${nl}data: 2${nl}${nl}`]);
      assert.deepEqual(events, [ev("1", "a"), ev("2")], JSON.stringify(nl));
    }
  });

  it("keeps a line split across chunks until it is complete", () => {
    assert.deepEqual(parse(["da", "ta: hel", "lo\n", "\n"]).events, [ev("hello")]);
  });

  it("treats a CRLF split between CR and LF as one line end, not two", () => {
    // Two line ends would be a blank line and dispatch the event early.
    const { events } = parse(["data: a\r", "\ndata: b\r\n\r\n"]);
    assert.deepEqual(events, [ev("a\nb")]);
  });

  it("treats a CR at the end of a chunk followed by a non-LF as a line end", () => {
    assert.deepEqual(parse(["data: a\r", "\r"]).events, [ev("a")]);
  });
});

describe("fields", () => {
  it("removes exactly one optional space after the colon", () => {
    assert.deepEqual(parse(["data:x\n\ndata:  y\n\n"]).events, [ev("x"), ev(" y")]);
  });

  it("joins several data lines with LF", () => {
    assert.deepEqual(parse(["data: one\ndata: two\ndata:\n\n"]).events, [ev("one\ntwo\n")]);
  });

  it("treats a line without a colon as a field with an empty value", () => {
    assert.deepEqual(parse(["data\n\n"]).events, [ev("")]);
  });

  it("keeps the last event id for later events", () => {
    const { events } = parse(["id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"]);
    assert.deepEqual(events, [ev("a", "message", "7"), ev("b", "message", "7"), ev("c", "message", "")]);
  });

  it("ignores an id that contains NULL", () => {
    assert.deepEqual(parse(["id: 1\n\nid: a\0b\ndata: x\n\n"]).events, [ev("x", "message", "1")]);
  });

  it("reports retry only when it is all ASCII digits", () => {
    assert.deepEqual(parse(["retry: 3000\nretry: 1e3\nretry: -1\n\n"]).retries, [3000]);
  });

  it("ignores unknown fields", () => {
    assert.deepEqual(parse(["foo: bar\ndata: x\nbaz\n\n"]).events, [ev("x")]);
  });

  it("resets the event type after each dispatch", () => {
    assert.deepEqual(parse(["event: token\ndata: a\n\ndata: b\n\n"]).events, [ev("a", "token"), ev("b")]);
  });
});

describe("dispatch", () => {
  it("dispatches on a blank line only", () => {
    assert.deepEqual(parse(["data: a\n"]).events, []);
  });

  it("does not dispatch an event with no data", () => {
    assert.deepEqual(parse(["event: ping\n\nid: 3\n\n"]).events, []);
  });

  it("passes comments aside and dispatches nothing for them", () => {
    const { events, comments } = parse([": keep-alive\n\n:\n\ndata: x\n\n"]);
    assert.deepEqual(events, [ev("x")]);
    assert.deepEqual(comments, ["keep-alive", ""]);
  });

  it("ignores one leading byte order mark", () => {
    assert.deepEqual(parse(["\ufeffdata: a\n\n"]).events, [ev("a")]);
    assert.deepEqual(parse(["\ufeff", "data: a\n\n"]).events, [ev("a")]);
  });

  it("does not strip a BOM that is not at the start of the stream", () => {
    assert.deepEqual(parse(["data: a\n\n", "\ufeffdata: b\n\n"]).events, [ev("a")]);
  });

  it("forgets everything on reset", () => {
    /** @type {ServerSentEvent[]} */
    const events = [];
    const parser = createParser({ onEvent: (e) => events.push(e) });
    parser.feed("id: 1\ndata: half");
    parser.reset();
    parser.feed("data: b\n\n");
    assert.deepEqual(events, [ev("b")]);
  });
});

describe("adversarial chunking", () => {
  const stream =
    ": keep-alive\n\n" +
    'id: s:1\nevent: start\ndata: {"stream_id":"s"}\n\n' +
    'id: s:2\r\nevent: token\r\ndata: {"text":"caf\u00e9 \u4e2d\u6587 \ud83d\ude80\\n"}\r\n\r\n' +
    "id: s:3\revent: token\rdata: line one\rdata: line two\r\r" +
    'event: done\ndata: {"finish_reason":"stop"}\n\n';
  const whole = parse([stream]);

  it("parses the reference stream as expected", () => {
    assert.deepEqual(
      whole.events.map((e) => e.event),
      ["start", "token", "token", "done"],
    );
    assert.equal(whole.events[2].data, "line one\nline two");
  });

  it("gives the same events when split at every possible point", () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const split = parse([stream.slice(0, cut), stream.slice(cut)]);
      assert.deepEqual(split.events, whole.events, `cut at ${cut}`);
      assert.deepEqual(split.comments, whole.comments, `cut at ${cut}`);
    }
  });

  it("gives the same events when fed one byte at a time", () => {
    const bytes = new TextEncoder().encode(stream);
    const oneByOne = parseBytes([...bytes].map((b) => Uint8Array.of(b)));
    assert.deepEqual(oneByOne.events, whole.events);
  });

  it("gives the same events when the bytes are split at every point", () => {
    const bytes = new TextEncoder().encode(stream);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const split = parseBytes([bytes.slice(0, cut), bytes.slice(cut)]);
      assert.deepEqual(split.events, whole.events, `byte cut at ${cut}`);
    }
  });

  it("decodes a 4-byte emoji split across chunks", () => {
    const bytes = new TextEncoder().encode("data: \ud83d\ude80!\n\n"); // U+1F680 ROCKET
    const start = bytes.indexOf(0xf0);
    for (const cut of [start + 1, start + 2, start + 3]) {
      const { events } = parseBytes([bytes.slice(0, cut), bytes.slice(cut)]);
      assert.deepEqual(events, [ev("\ud83d\ude80!")], `cut at ${cut}`);
    }
  });

  it("decodes a 3-byte CJK character split across chunks", () => {
    const bytes = new TextEncoder().encode("data: \u4e2d\n\n"); // U+4E2D
    const start = bytes.indexOf(0xe4);
    for (const cut of [start + 1, start + 2]) {
      const { events } = parseBytes([bytes.slice(0, cut), bytes.slice(cut)]);
      assert.deepEqual(events, [ev("\u4e2d")], `cut at ${cut}`);
    }
  });
});
