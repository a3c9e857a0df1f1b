// The fetch + reader of the three streaming endpoints, and the conversation API's calls,
// against a stubbed fetch. Run: node --test tests/js/
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";

import { ConversationsApi } from "../../static/js/api.js";
import { RequestError, streamAnswer } from "../../static/js/chat-stream.js";
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

/** A streaming 200 whose body arrives in these pieces of bytes. */
function sse(pieces) {
  const encoder = new TextEncoder();
  const body = new ReadableStream({
    start(controller) {
      for (const piece of pieces) controller.enqueue(typeof piece === "string" ? encoder.encode(piece) : piece);
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } });
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

describe("streamAnswer", () => {
  it("passes a conversation endpoint's start fields through and resolves done after `done`", async () => {
    const calls = stubFetch(() =>
      sse([
        ": keep-alive\n\n",
        `id: s1:1\nevent: start\ndata: ${JSON.stringify(START)}\n\n`,
        'id: s1:2\nevent: token\ndata: {"text":"caf',
        'é"}\n\nid: s1:3\nevent: done\ndata: {"finish_reason":"stop"}\n\n',
      ]),
    );
    const { seen, handlers } = recorder();
    const url = "/api/conversations/c1/messages";
    const outcome = await streamAnswer(url, { content: "hi" }, new AbortController().signal, handlers);
    assert.equal(outcome, "done");
    assert.deepEqual(seen, [
      ["onStart", START],
      ["onToken", "café"],
      ["onDone", "stop"],
    ]);
    assert.equal(calls[0].method, "POST");
    assert.equal(calls[0].body, '{"content":"hi"}');
    assert.equal(calls[0].headers["Content-Type"], "application/json");
  });

  it("decodes a character split between two reads whole", async () => {
    const bytes = new TextEncoder().encode('event: token\ndata: {"text":"🚀"}\n\n');
    const cut = bytes.indexOf(0xf0) + 2;
    stubFetch(() => sse([bytes.slice(0, cut), bytes.slice(cut)]));
    const { seen, handlers } = recorder();
    await streamAnswer("/x", {}, new AbortController().signal, handlers);
    assert.deepEqual(seen, [["onToken", "🚀"]]);
  });

  it("resolves interrupted when the body ends without `done`", async () => {
    stubFetch(() => sse(['event: token\ndata: {"text":"partial"}\n\n']));
    const { handlers } = recorder();
    assert.equal(await streamAnswer("/x", {}, new AbortController().signal, handlers), "interrupted");
  });

  it("rejects with the server's error code and message when it refuses to stream", async () => {
    stubFetch(() => Response.json({ error: { code: "conversation_not_found", message: "No such." } }, { status: 404 }));
    const { handlers } = recorder();
    await assert.rejects(streamAnswer("/x", {}, new AbortController().signal, handlers), (error) => {
      assert.ok(error instanceof RequestError);
      assert.equal(error.status, 404);
      assert.equal(error.code, "conversation_not_found");
      assert.equal(error.message, "No such.");
      return true;
    });
  });

  it("rejects with http_error when the refusal has no JSON body", async () => {
    stubFetch(() => new Response("<html>bad gateway</html>", { status: 502 }));
    const { handlers } = recorder();
    await assert.rejects(streamAnswer("/x", {}, new AbortController().signal, handlers), { code: "http_error" });
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
