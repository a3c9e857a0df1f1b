// @ts-check
// Inline <think>…</think> routed to the thinking section, however the deltas split the tags.
// Run: node --test tests/js/
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ThinkSplitter } from "../../static/js/think-splitter.js";

/**
 * Feed deltas; return the answer and thinking text routed, flush included.
 * @param {string[]} deltas
 */
function route(deltas) {
  const splitter = new ThinkSplitter();
  let answer = "";
  let thinking = "";
  for (const delta of [...deltas.map((d) => splitter.push(d)), splitter.flush()]) {
    answer += delta.answer;
    thinking += delta.thinking;
  }
  return { answer, thinking };
}

/**
 * Every way of cutting `text` into two and into three pieces.
 * @param {string} text
 */
function* splits(text) {
  for (let i = 0; i <= text.length; i++) {
    yield [text.slice(0, i), text.slice(i)];
    for (let j = i; j <= text.length; j++) yield [text.slice(0, i), text.slice(i, j), text.slice(j)];
  }
}

describe("ThinkSplitter", () => {
  it("sends reasoning in leading think tags to thinking and the rest to the answer", () => {
    assert.deepEqual(route(["<think>Let me see.</think>\n\nThe answer."]), {
      answer: "\n\nThe answer.",
      thinking: "Let me see.",
    });
  });

  it("routes the same however the deltas split the tags", () => {
    const text = "  <think>a < b, so </thin…</think>\n\nIt is **b**.";
    const whole = route([text]);
    assert.deepEqual(whole, { answer: "\n\nIt is **b**.", thinking: "a < b, so </thin…" });
    for (const deltas of splits(text)) assert.deepEqual(route(deltas), whole, JSON.stringify(deltas));
  });

  it("routes one character at a time like one piece", () => {
    const text = "<think>x</think>y<think>z</think>";
    assert.deepEqual(route([...text]), route([text]));
    assert.deepEqual(route([text]), { answer: "y<think>z</think>", thinking: "x" });
  });

  it("accepts several think blocks one after another at the start", () => {
    assert.deepEqual(route(["<think>one</think>\n<think>two</think>answer"]), {
      answer: "answer",
      thinking: "onetwo",
    });
  });

  it("leaves a think tag that comes after answer text as text", () => {
    const text = "Use the `<think>` tag like this: <think>…</think>";
    assert.deepEqual(route([text]), { answer: text, thinking: "" });
    for (const deltas of splits(text)) assert.deepEqual(route(deltas).answer, text);
  });

  it("holds back only what could still be a tag", () => {
    const splitter = new ThinkSplitter();
    assert.deepEqual(splitter.push("<thi"), { answer: "", thinking: "" });
    assert.deepEqual(splitter.push("nk>abc</th"), { answer: "", thinking: "abc" });
    assert.deepEqual(splitter.push("e"), { answer: "", thinking: "</the" });
    assert.deepEqual(splitter.push("</think>Hi"), { answer: "Hi", thinking: "" });
  });

  it("gives an answer without tags straight through", () => {
    const splitter = new ThinkSplitter();
    assert.deepEqual(splitter.push("Hello"), { answer: "Hello", thinking: "" });
    assert.deepEqual(splitter.push(" <think>"), { answer: " <think>", thinking: "" });
  });

  it("turns a tag cut off by the end of the answer into text of its section", () => {
    assert.deepEqual(route(["<thi"]), { answer: "<thi", thinking: "" });
    assert.deepEqual(route(["<think>still thinking</thi"]), { answer: "", thinking: "still thinking</thi" });
  });
});
