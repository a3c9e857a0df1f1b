// @ts-check
// What a stored message says under it (static/js/message-view.js), as the server's template says it.
// Run: node --test tests/js/
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { storedLabel } from "../../static/js/message-view.js";

/** @typedef {import("../../static/js/api.js").StoredMessage} StoredMessage */

describe("storedLabel (what templates/_macros.html says under a stored answer)", () => {
  /**
   * A stored answer with these fields (and only those the label reads).
   * @param {object} fields
   */
  const answer = (fields) =>
    /** @type {StoredMessage} */ ({
      role: "assistant",
      content: "some text",
      status: "complete",
      finish_reason: "stop",
      usage: null,
      ...fields,
    });
  /** @type {[object, string][]} */
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
