// @ts-check
// A refused request's JSON error body as a RequestError (static/js/request-error.js).
// Run: node --test tests/js/
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { RequestError, requestError } from "../../static/js/request-error.js";

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
