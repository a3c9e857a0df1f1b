// Splitting a Markdown text into its top-level blocks, and deciding while it streams which
// blocks are finished. No DOM: markdown.js renders the blocks this hands it.
//
// Why a block can be frozen: CommonMark parses blocks line by line and never reopens a block
// once a later top-level block has started, so every block but the last is final, provided
// the decision looks only at complete lines (a half-written last line may still turn out to
// be a list marker, a closing fence, a setext underline or text). Link reference definitions
// are the exception (one may come after its use); finish() in markdown.js re-checks each block
// against a parse of the whole text, so a mistake here costs a re-render, never a wrong page.
//
// The text still growing is parsed on its own (the part after the last frozen block, usually
// one block), so the work per update does not grow with the answer. Its last line is shown
// stabilised: the few characters that would make the rendering flip back and forth before the
// next token arrives are held back until it does (see stabilise()).

/** @typedef {import("../vendor/markdown-it/markdown-it.esm.min.mjs").MarkdownIt} MarkdownIt */
/** @typedef {import("../vendor/markdown-it/markdown-it.esm.min.mjs").Token} Token */
/** @typedef {{title: string, href: string}} Reference */
/**
 * What a parse needs besides the text: the link reference definitions known so far, and
 * whether the text is still streaming (an unclosed display-math block then runs to its end).
 * @typedef {{references: Record<string, Reference>, streaming: boolean}} ParseEnv
 */
/**
 * One top-level block: its tokens, where its source starts in the whole text, that source (its
 * lines, without the blank lines after it), and the reference definitions it was parsed with
 * (as JSON, to compare).
 * @typedef {{tokens: Token[], start: number, source: string, references: string}} Block
 */

/**
 * Group a token stream into its top-level blocks, each with the line range of its source.
 * @param {Token[]} tokens
 * @returns {{tokens: Token[], lines: [number, number]}[]}
 */
export function topLevelBlocks(tokens) {
  const blocks = [];
  let i = 0;
  while (i < tokens.length) {
    const first = tokens[i];
    let end = i + 1;
    if (first.nesting === 1) {
      for (let depth = 1; depth > 0; end++) depth += tokens[end].nesting;
    }
    const map = first.map ?? [0, 0];
    blocks.push({ tokens: tokens.slice(i, end), lines: /** @type {[number, number]} */ ([map[0], map[1]]) });
    i = end;
  }
  return blocks;
}

/**
 * Where each line of `text` starts, as markdown-it counts lines (LF, CRLF or a lone CR), plus
 * the text's length as the start of the line after the last.
 * @param {string} text
 * @returns {number[]}
 */
export function lineStarts(text) {
  const starts = [0];
  for (const match of text.matchAll(/\r\n?|\n/g)) starts.push(match.index + match[0].length);
  if (starts.at(-1) !== text.length) starts.push(text.length);
  return starts;
}

/**
 * Parse `text` into blocks, their offsets counted from `offset`.
 * @param {MarkdownIt} md
 * @param {string} text
 * @param {ParseEnv} env
 * @param {number} [offset]
 * @returns {Block[]}
 */
export function parseBlocks(md, text, env, offset = 0) {
  const starts = lineStarts(text);
  const at = (/** @type {number} */ line) => starts[Math.min(line, starts.length - 1)];
  const blocks = topLevelBlocks(md.parse(text, env));
  const references = JSON.stringify(env.references);
  return blocks.map(({ tokens, lines }) => ({
    tokens,
    start: offset + at(lines[0]),
    source: text.slice(at(lines[0]), at(lines[1])),
    references,
  }));
}

/**
 * The growing text as it should be shown now: its last, unfinished line without the characters
 * that would render as something they are not yet. Held back until the next token:
 * - a line of only `-`, `=`, `|`, `:`, `*`, `_`, `+`, `#` and spaces (a setext underline, a
 *   table's delimiter row, a thematic break, a list marker or a heading marker still being
 *   written: "| a | b |" must not flash as a heading while "|---|" arrives);
 * - a code fence's marker line, until its info string is complete;
 * - a trailing run of `*`, `_`, `~`, `` ` ``, `$` or `\` (so "**bold*" is not italic for a frame);
 * - a trailing "<" or partial tag;
 * - the half-written address of a link, which shows as "[text](https://exa" and then shrinks to
 *   "text": it is shown as the link it will be, with an empty address for now; an image whose
 *   address is half-written is held back whole.
 * @param {string} text
 */
export function stabilise(text) {
  const lineStart = text.lastIndexOf("\n") + 1;
  const line = text.slice(lineStart);
  if (line === "") return text;
  if (/^ {0,3}(?:[-=|:*_+# \t]+|(?:`{3,}|~{3,}).*)$/.test(line)) return text.slice(0, lineStart);
  const address = /!?\[[^\[\]]*\]\([^()\s]*$/.exec(line);
  if (address) {
    const start = lineStart + address.index;
    if (address[0].startsWith("!")) return text.slice(0, start);
    return `${text.slice(0, start + address[0].indexOf("](") + 1)}()`;
  }
  const held = /(?:[*_~`$\\]+|<\/?(?:[A-Za-z][A-Za-z0-9-]*)?)$/.exec(line);
  return held ? text.slice(0, text.length - held[0].length) : text;
}

/**
 * The streaming side of the splitter: fed the whole text so far, it says which blocks have just
 * been finished (to render once and keep) and which are still live (to render again now).
 */
export class BlockStream {
  /** @type {MarkdownIt} */
  #md;
  /** Where the text after the frozen blocks starts. */
  #frozenEnd = 0;
  /** Link reference definitions in the frozen text. */
  /** @type {Record<string, Reference>} */
  #references = {};

  /** @param {MarkdownIt} md */
  constructor(md) {
    this.#md = md;
  }

  /** Where the unfrozen text starts: everything before it is in frozen blocks. */
  get frozenEnd() {
    return this.#frozenEnd;
  }

  /**
   * A parse of the text after the frozen blocks: it knows their reference definitions.
   * @returns {ParseEnv}
   */
  #env() {
    return { references: { ...this.#references }, streaming: true };
  }

  /**
   * Advance to `text`, which extends the text of the previous call.
   * @param {string} text
   * @returns {{frozen: Block[], live: Block[], liveSource: string}}
   */
  advance(text) {
    const frozen = this.#freeze(text);
    const liveSource = stabilise(text.slice(this.#frozenEnd));
    const live = parseBlocks(this.#md, liveSource, this.#env(), this.#frozenEnd);
    return { frozen, live, liveSource };
  }

  /**
   * Freeze the blocks that complete lines show are finished: all but the last.
   * @param {string} text
   * @returns {Block[]}
   */
  #freeze(text) {
    const tail = text.slice(this.#frozenEnd);
    const complete = tail.slice(0, tail.lastIndexOf("\n") + 1);
    if (complete === "") return [];
    const blocks = parseBlocks(this.#md, complete, this.#env(), this.#frozenEnd);
    if (blocks.length < 2) return [];
    const last = /** @type {Block} */ (blocks.at(-1));
    const region = text.slice(this.#frozenEnd, last.start);
    if (region.includes("]:")) {
      // Definitions produce no tokens; parse the region on its own to collect just its own.
      const env = this.#env();
      this.#md.parse(region, env);
      this.#references = env.references;
    }
    this.#frozenEnd = last.start;
    return blocks.slice(0, -1);
  }
}
