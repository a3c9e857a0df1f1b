// @ts-check
// Splitting an answer into top-level blocks while it streams: a block frozen at any prefix is
// exactly that block of the finished text, and the live part stays small.
// Run: node --test tests/js/
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { BlockStream, lineStarts, parseBlocks, stabilise } from "../../static/js/markdown-blocks.js";
import { createMarkdown } from "../../static/js/markdown-syntax.js";

const md = createMarkdown({ origin: "https://chat.example", baseUrl: "https://chat.example/" });
/** @typedef {import("../../static/js/markdown-blocks.js").Block} Block */

/** @param {Block} block */
const render = (block) => md.renderer.render(block.tokens, md.options, {});
/** @param {string} text */
const final = (text) => parseBlocks(md, text, { references: {}, streaming: false });

const ANSWER = `# Title

Intro with **bold**, *em*, \`code\`, $x^2$ and a [link](https://example.com).

- one
- two

  still two
- [x] three

\`\`\`python
def f():
    return "*not emphasis*"
\`\`\`

| a | b |
|---|--:|
| 1 | 2 |
| 3 | 4 |

$$
\\frac{1}{2}
$$

> quoted
lazy line

Setext heading
--------------

    indented code

***

1. last
`;

/** Blocks that catch a splitter that decides on a half-written line. */
const TRAPS = [
  "> a\n---x\n\nafter\n", // "---" would end the quote as a thematic break; "---x" does not
  "> a\n#x\n\nafter\n", // "#" would be an empty heading; "#x" is lazy text
  "para\n```x`\n\nafter\n", // "```" would open a fence; a backtick in the info string does not
  "x\na|b\n-|-|-\n\nafter\n", // "-|-" would make a table; three columns under two do not
  "- a\n\n  b\n\nc\n\n- d\n", // a list item's continuation after a blank line
  "para\n===\n\nnext\n", // setext underline
  "```\nopen fence\n\nstill code\n", // unterminated fence runs to the end
  "$$\na\n\nb\n$$\n\nafter\n", // display math across a blank line
  "text\r\nmore\r\n\r\n# h\r\nend\r", // CRLF and a lone CR
];

/**
 * Feed `text` in prefixes ending at each offset in `cuts`; check every frozen block.
 * @param {string} text
 * @param {Iterable<number>} cuts
 */
function streamAndCheck(text, cuts) {
  const expected = new Map(final(text).map((block) => [block.start, block]));
  const stream = new BlockStream(md);
  const frozen = [];
  for (const cut of cuts) {
    for (const block of stream.advance(text.slice(0, cut)).frozen) {
      const want = expected.get(block.start);
      assert.ok(want, `frozen block at ${block.start} is not a block of the whole text (prefix ${cut})`);
      assert.equal(block.source, want.source, `prefix ${cut}`);
      assert.equal(render(block), render(want), `prefix ${cut}`);
      frozen.push(block);
    }
  }
  return { frozen, stream };
}

describe("BlockStream", () => {
  it("freezes only blocks that are final, one character at a time", () => {
    const cuts = Array.from({ length: ANSWER.length }, (_, i) => i + 1);
    const { frozen } = streamAndCheck(ANSWER, cuts);
    // All but the last block get frozen before the text ends.
    assert.equal(frozen.length, final(ANSWER).length - 1);
  });

  for (const trap of TRAPS) {
    it(`freezes only final blocks of ${JSON.stringify(trap)}`, () => {
      streamAndCheck(
        trap,
        Array.from({ length: trap.length }, (_, i) => i + 1),
      );
    });
  }

  it("keeps the live part to the last block, however long the answer", () => {
    const section = "## Part\n\nSome text here.\n\n```js\nlet x = 1;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n";
    const long = section.repeat(200);
    const stream = new BlockStream(md);
    let largest = 0;
    for (let cut = 7; cut <= long.length; cut += 7) {
      const { liveSource } = stream.advance(long.slice(0, cut));
      largest = Math.max(largest, liveSource.length);
    }
    assert.ok(largest < 60, `live text grew to ${largest} characters`);
    assert.ok(stream.frozenEnd > long.length - section.length);
  });

  it("does not let a stray $$ keep the rest of a long answer live", () => {
    const text = `It costs\n$$ a lot.\n\n${"More text.\n\n".repeat(150)}`;
    const stream = new BlockStream(md);
    const { liveSource } = stream.advance(text);
    assert.ok(liveSource.length < 100, `${liveSource.length} characters live`);
  });

  it("parses the live part as still streaming: an open display formula shows as its source", () => {
    const { live } = new BlockStream(md).advance("$$\n\\frac{1}{");
    assert.match(render(live[0]), /^<div class="md-math-pending">\\frac\{1\}\{<\/div>/);
  });
});

describe("stabilise", () => {
  const cases = [
    ["complete line\n", "complete line\n"],
    ["| a | b |\n|--", "| a | b |\n"],
    ["para\n-", "para\n"],
    ["para\n- ", "para\n"],
    ["- item", "- item"],
    ["```pyth", ""],
    ["code\n``", "code\n"],
    ["~~~", ""],
    ["## ", ""],
    ["## T", "## T"],
    ["some **bold*", "some **bold"],
    ["some **bold**", "some **bold"],
    ["a `code` b", "a `code` b"],
    ["costs $", "costs "],
    ["x <b", "x "],
    ["x </", "x "],
    ["x <", "x "],
    ["a < b", "a < b"],
    ["escaped \\", "escaped "],
    ["see [the docs](https://exa", "see [the docs]()"],
    ["see [the docs](", "see [the docs]()"],
    ["see [the docs](https://example.com)", "see [the docs](https://example.com)"],
    ["a ![chart](/static/ch", "a "],
  ];
  for (const [text, shown] of cases) {
    it(`shows ${JSON.stringify(text)} as ${JSON.stringify(shown)}`, () => assert.equal(stabilise(text), shown));
  }
});

describe("lineStarts", () => {
  it("counts LF, CRLF and a lone CR as line ends, as markdown-it does", () => {
    assert.deepEqual(lineStarts("a\nb\r\nc\rd"), [0, 2, 5, 7, 8]);
    assert.deepEqual(lineStarts("a\n"), [0, 2]);
  });
});
