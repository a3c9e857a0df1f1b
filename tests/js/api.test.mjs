// @ts-check
// The conversation endpoints' calls (static/js/api.js) against a stubbed fetch.
// Run: node --test tests/js/
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";

import { ConversationsApi } from "../../static/js/api.js";

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

/**
 * Answer every fetch with `respond(url, init)`; the calls are recorded.
 * @param {(url: string, init: RequestInit) => Response} respond
 */
function stubFetch(respond) {
  /** @type {{ url: string, method: string, body: RequestInit["body"], headers: RequestInit["headers"] }[]} */
  const calls = [];
  globalThis.fetch = async (input, init = {}) => {
    const url = /** @type {string} */ (input); // the page's modules fetch by URL
    calls.push({ url, method: init.method ?? "GET", body: init.body, headers: init.headers });
    return respond(url, init);
  };
  return calls;
}

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
