// TeX math for markdown-it: `$…$` and `\(…\)` inline, `$$…$$` and `\[…\]` displayed (as a block
// of their own lines, or inside a paragraph). It only marks the source: math renders as an
// element holding the TeX as text (class "md-math"), which markdown.js hands to KaTeX after
// sanitising. No DOM, so the block splitter and its tests run it under Node.
//
// Dollars follow Pandoc's rule, so prices stay text: the opening `$` has a non-space character
// right after it, the closing one a non-space character right before it and no digit right
// after it ("$5 and $10" is not math), and the math ends at the first `$` that is not escaped.

/** @typedef {import("../vendor/markdown-it/markdown-it.esm.min.mjs").MarkdownIt} MarkdownIt */
/** @typedef {import("../vendor/markdown-it/markdown-it.esm.min.mjs").StateBlock} StateBlock */
/** @typedef {import("../vendor/markdown-it/markdown-it.esm.min.mjs").StateInline} StateInline */
/** @typedef {import("../vendor/markdown-it/markdown-it.esm.min.mjs").Token} Token */

const DOLLAR = 0x24;
const BACKSLASH = 0x5c;

/** The most lines an unclosed display block may hold while streaming and still count as math. */
const MAX_OPEN_LINES = 100;

/** Display delimiters that open a math block at the start of a line, and what closes each. */
const BLOCK_DELIMITERS = [
  ["$$", "$$"],
  ["\\[", "\\]"],
];

/**
 * Install the math rules and their renderers.
 *
 * While `env.streaming` is true a display block that is not closed yet runs to the end of the
 * text and renders as its source (class "md-math-pending"), as an open code fence does; once
 * the text is complete an unclosed `$$` is plain text.
 * @param {MarkdownIt} md
 */
export function mathPlugin(md) {
  md.block.ruler.before("fence", "math_block", mathBlock, {
    alt: ["paragraph", "reference", "blockquote", "list"],
  });
  // Before "escape", which would otherwise turn `\(` into a literal "(".
  md.inline.ruler.before("escape", "math_inline", mathInline);
  const escape = md.utils.escapeHtml;
  md.renderer.rules.math_inline = (tokens, idx) => {
    const token = tokens[idx];
    const display = token.markup === "$$" || token.markup === "\\[";
    return `<span class="md-math${display ? " md-math-display" : ""}">${escape(token.content)}</span>`;
  };
  md.renderer.rules.math_block = (tokens, idx) => {
    const token = tokens[idx];
    const cls = token.meta?.closed ? "md-math md-math-display" : "md-math-pending";
    return `<div class="${cls}">${escape(token.content)}</div>\n`;
  };
}

/**
 * A display block: `$$` or `\[` at the start of a line, up to the line that ends with `$$` or `\]`.
 * @param {StateBlock} state
 * @param {number} startLine
 * @param {number} endLine
 * @param {boolean} silent
 */
function mathBlock(state, startLine, endLine, silent) {
  if (state.sCount[startLine] - state.blkIndent >= 4) return false;
  const src = state.src;
  const start = state.bMarks[startLine] + state.tShift[startLine];
  const delimiters = BLOCK_DELIMITERS.find(([open]) => src.startsWith(open, start));
  if (!delimiters) return false;
  const [open, close] = delimiters;
  const lines = [];
  let line = startLine;
  let text = src.slice(start + open.length, state.eMarks[startLine]);
  let closed = false;
  for (;;) {
    const end = text.lastIndexOf(close);
    // The closing delimiter ends its line; on the opening line it must not be the opening one.
    if (end >= 0 && text.slice(end + close.length).trim() === "") {
      lines.push(text.slice(0, end));
      closed = true;
      break;
    }
    lines.push(text);
    line += 1;
    if (line >= endLine) break;
    const lineStart = state.bMarks[line] + state.tShift[line];
    // A line less indented than the container it started in ends the container, and the block.
    if (lineStart < state.eMarks[line] && state.sCount[line] < state.blkIndent) break;
    text = src.slice(lineStart, state.eMarks[line]);
  }
  // Unclosed, it is math only while streaming, and only so long: a stray "$$" must not keep
  // the rest of a long answer live (finish() re-renders whatever this guessed wrong).
  if (!closed && (!state.env.streaming || line - startLine > MAX_OPEN_LINES)) return false;
  if (lines.join("").trim() === "" && closed && line === startLine) return false; // "$$" alone
  if (silent) return true;
  const token = state.push("math_block", "div", 0);
  token.block = true;
  token.content = lines.join("\n").trim();
  token.markup = open;
  token.meta = { closed };
  const next = closed ? line + 1 : line;
  token.map = [startLine, next];
  state.line = next;
  return true;
}

/**
 * Inline math: `$…$`, `$$…$$`, `\(…\)`, `\[…\]`.
 * @param {StateInline} state
 * @param {boolean} silent
 */
function mathInline(state, silent) {
  const src = state.src;
  const start = state.pos;
  const max = state.posMax;
  let open;
  let close;
  if (src.charCodeAt(start) === DOLLAR) {
    open = src.charCodeAt(start + 1) === DOLLAR ? "$$" : "$";
    close = open;
  } else if (src.charCodeAt(start) === BACKSLASH && (src[start + 1] === "(" || src[start + 1] === "[")) {
    open = src.slice(start, start + 2);
    close = open === "\\(" ? "\\)" : "\\]";
  } else {
    return false;
  }
  const from = start + open.length;
  const end = open === "$" ? closingDollar(src, from, max) : src.indexOf(close, from);
  if (end < 0 || end + close.length > max) return false;
  const content = src.slice(from, end);
  if (content.trim() === "") return false;
  if (!silent) {
    const token = state.push("math_inline", "span", 0);
    token.content = content;
    token.markup = open;
  }
  state.pos = end + close.length;
  return true;
}

/**
 * Where the `$` that closes single-dollar math opened just before `from` is, or -1.
 * @param {string} src
 * @param {number} from
 * @param {number} max
 */
function closingDollar(src, from, max) {
  if (from >= max || isSpace(src.charCodeAt(from))) return -1;
  let pos = from;
  for (;;) {
    pos = src.indexOf("$", pos);
    if (pos < 0 || pos >= max) return -1;
    if (src.charCodeAt(pos - 1) !== BACKSLASH) break;
    pos += 1;
  }
  const after = src.charCodeAt(pos + 1);
  if (isSpace(src.charCodeAt(pos - 1)) || (after >= 0x30 && after <= 0x39)) return -1;
  return pos;
}

/** @param {number} code */
function isSpace(code) {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}
