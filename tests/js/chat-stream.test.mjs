// One connection's reading and events, and the conversation API's calls against a stubbed
// fetch. Run: node --test tests/js/
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";

import { ConversationsApi } from "../../static/js/api.js";
import { handleEvent, readEvents, RequestError, requestError, sequenceOf } from "../../static/js/chat-stream.js";
import { storedLabel } from "../../static/js/message-view.js";

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

/** Answer every fetch with `respond(url, init)`; the calls are recorded. */
function stubFetch(respond) {
  const calls = [];
  globalThis.fetch = async (url, init = {}) => {
    calls.push({ url, method: init.method ?? "GET", body: init.body, headers: init.headers });
    return respond(url, init);
  };
  return calls;
}

/** A body that arrives in these pieces (text or bytes). */
function body(pieces) {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const piece of pieces) controller.enqueue(typeof piece === "string" ? encoder.encode(piece) : piece);
      controller.close();
    },
  });
}

function recorder() {
  const seen = [];
  const handlers = {};
  for (const name of ["onStart", "onReasoning", "onToken", "onUsage", "onError", "onDone"]) {
    handlers[name] = (value) => seen.push([name, value]);
  }
  return { seen, handlers };
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
    const events = [];
    await readEvents(body([bytes.slice(0, cut), bytes.slice(cut)]), (event) => events.push(event));
    assert.equal(JSON.parse(events[0].data).text, "🚀");
  });

  it("never dispatches an event that the end of the body cut off", async () => {
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

describe("requestError", () => {
  it("carries the server's error code and message, and Retry-After in seconds", async () => {
    const response = Response.json(
      { error: { code: "conversation_not_found", message: "No such." } },
      { status: 404, headers: { "Retry-After": "3" } },
    );
    const error = await requestError(response);
    assert.ok(error instanceof RequestError);
    assert.deepEqual([error.status, error.code, error.message, error.retryAfterS], [404, "conversation_not_found", "No such.", 3]);
  });

  it("is http_error when the refusal has no JSON body", async () => {
    const error = await requestError(new Response("<html>bad gateway</html>", { status: 502 }));
    assert.equal(error.code, "http_error");
  });
});

describe("ConversationsApi", () => {
  const api = new ConversationsApi("/api/conversations");

  it("names the streaming endpoints of a conversation", () => {
    assert.equal(api.messagesUrl("c1"), "/api/conversations/c1/messages");
    assert.equal(api.regenerateUrl("c1", "a1"), "/api/conversations/c1/messages/a1/regenerate");
  });

  it("sends a PATCH as JSON and returns the conversation", async () => {
    const calls = stubFetch(() => Response.json({ id: "c1", title: "t", messages: [] }));
    const saved = await api.update("c1", { show: "a2" });
    assert.equal(saved.id, "c1");
    assert.deepEqual(
      calls.map((c) => [c.method, c.url, c.body]),
      [["PATCH", "/api/conversations/c1", '{"show":"a2"}']],
    );
  });

  it("asks for the next page of the list with its cursor", async () => {
    const calls = stubFetch(() => Response.json({ conversations: [], next_before: null, next_before_id: null }));
    await api.list({ before: "2026-11-23T17:05:09.123456Z", beforeId: "c9" }, 30);
    assert.equal(
      calls[0].url,
      "/api/conversations?before=2026-11-23T17%3A05%3A09.123456Z&before_id=c9&limit=30",
    );
  });

  it("resolves a 204 DELETE and rejects a refused one", async () => {
    stubFetch(() => new Response(null, { status: 204 }));
    await api.remove("c1");
    stubFetch(() => Response.json({ error: { code: "conversation_not_found", message: "Gone." } }, { status: 404 }));
    await assert.rejects(api.remove("c1"), { code: "conversation_not_found" });
  });
});

describe("storedLabel (what templates/_macros.html says under a stored answer)", () => {
  const answer = (fields) => ({
    role: "assistant",
    content: "some text",
    status: "complete",
    finish_reason: "stop",
    usage: null,
    ...fields,
  });
  const cases = [
    [{}, ""],
    [{ content: "" }, "No answer"],
    [{ finish_reason: "length" }, "Cut off at the length limit"],
    [{ status: "stopped", finish_reason: "cancelled" }, "Stopped"],
    [{ status: "stopped", content: "" }, "Stopped before any answer"],
    [{ status: "interrupted" }, "Interrupted: the answer was cut off before it ended"],
    [{ status: "error", finish_reason: "error" }, "Failed"],
    [{ usage: { completion_tokens: 7, estimated: false } }, "7 tokens"],
    [{ status: "stopped", usage: { completion_tokens: 3, estimated: true } }, "Stopped"],
    [{ role: "user" }, ""],
  ];
  for (const [fields, label] of cases) {
    it(`${JSON.stringify(fields)} -> ${JSON.stringify(label)}`, () => {
      assert.equal(storedLabel(answer(fields)), label);
    });
  }
});
