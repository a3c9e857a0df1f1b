// The Markdown dialect an answer is written in, as a configured markdown-it: CommonMark with
// GFM's tables, strikethrough, task lists and autolinks (also "www." ones), TeX math, fenced
// code highlighted by highlight.js, and the HTML it may produce. No DOM: markdown.js sanitises
// and finishes what this renders, and the block splitter and its tests run it under Node.
//
// What model output may do, enforced here first and by DOMPurify after:
// - raw HTML: only a few inline formatting tags (and <br>), re-emitted without attributes and
//   balanced within their paragraph; any other tag shows as the text it is ("vector<int>" too);
// - links: http(s), mailto and relative only; they open in a new tab;
// - images: from the page's own origin or a data:image/ URL; any other image is a link;
// - no style attributes: table column alignment becomes a class.

import markdownit from "../vendor/markdown-it/markdown-it.esm.min.mjs";
import hljs from "../vendor/highlight.js/highlight.min.js";
import { mathPlugin } from "./markdown-math.js";

/** @typedef {import("../vendor/markdown-it/markdown-it.esm.min.mjs").MarkdownIt} MarkdownIt */
/** @typedef {import("../vendor/markdown-it/markdown-it.esm.min.mjs").Token} Token */
/** @typedef {import("../vendor/markdown-it/markdown-it.esm.min.mjs").StateCore} StateCore */
/**
 * Where the page is, to tell its own images from remote ones.
 * @typedef {{origin: string, baseUrl: string}} Place
 */

/** Raw HTML tags kept (without attributes); every other tag is shown as text. */
const INLINE_TAGS = new Set([
  "b",
  "strong",
  "i",
  "em",
  "u",
  "s",
  "del",
  "ins",
  "mark",
  "sub",
  "sup",
  "kbd",
  "small",
  "br",
]);
const VOID_TAGS = new Set(["br"]);
const TAG = /^<(\/?)([A-Za-z][A-Za-z0-9-]*)(?:\s[^>]*|\/)?>$/;
const ANY_TAG = /<\/?[A-Za-z][^<>]*>|<!--[\s\S]*?-->/g;
const LINK_SCHEMES = new Set(["http", "https", "mailto"]);
const DATA_IMAGE = /^data:image\/(?:png|gif|jpeg|webp)[;,]/i;
const LANGUAGE = /^[\w#+.-]{1,40}$/;
const TASK = /^\[([ xX])\](?:[ \t]+|$)/;

/**
 * A markdown-it configured for answers.
 * @param {Place} place
 * @returns {MarkdownIt}
 */
export function createMarkdown(place) {
  const md = markdownit({ html: true, linkify: true, typographer: false });
  md.validateLink = validateLink;
  linkifyWww(md);
  mathPlugin(md);
  md.core.ruler.after("inline", "task_lists", taskLists);
  md.core.ruler.after("inline", "balance_html", balanceInlineHtml);
  renderRawHtml(md);
  renderLinksAndImages(md, place);
  renderTables(md);
  renderCode(md);
  return md;
}

/**
 * http(s), mailto and relative links; data: only for the raster images browsers show inertly.
 * @param {string} url
 */
export function validateLink(url) {
  // Browsers ignore ASCII whitespace and controls inside a scheme ("java\tscript:"); so do we.
  const bare = url.replace(/[\u0000-\u0020\u007f]/g, "").toLowerCase();
  const scheme = /^([a-z][a-z0-9+.-]*):/.exec(bare);
  return !scheme || LINK_SCHEMES.has(scheme[1]) || DATA_IMAGE.test(bare);
}

/**
 * Is `src` an image the page may load: its own origin, or an inert data: image?
 * @param {string} src
 * @param {Place} place
 */
export function isOwnImage(src, place) {
  if (DATA_IMAGE.test(src)) return true;
  try {
    const url = new URL(src, place.baseUrl);
    return url.origin === place.origin && (url.protocol === "http:" || url.protocol === "https:");
  } catch {
    return false;
  }
}

/**
 * GFM's extended autolinks start with "www." as well as a scheme; linkify-it knows only schemes
 * (its fuzzy mode would also link "README.md" and "main.py", which are not links in an answer).
 * @param {MarkdownIt} md
 */
function linkifyWww(md) {
  md.linkify.add("www.", {
    /** @param {string} text @param {number} pos @param {any} self linkify-it, its regexps in `re` */
    validate(text, pos, self) {
      const re = new RegExp(self.re.get_url_host_port().source + self.re.get_path().source, "iy");
      re.lastIndex = pos;
      const match = re.exec(text);
      return match ? match[0].length : 0;
    },
    /** @param {{url: string}} match */
    normalize(match) {
      match.url = `http://${match.url}`;
    },
  });
}

/**
 * "- [ ] todo" and "- [x] done": the marker becomes a task_checkbox token.
 * @param {StateCore} state
 */
function taskLists(state) {
  const tokens = state.tokens;
  for (let i = 2; i < tokens.length; i++) {
    const inline = tokens[i];
    if (inline.type !== "inline" || tokens[i - 1].type !== "paragraph_open") continue;
    if (tokens[i - 2].type !== "list_item_open") continue;
    const marker = TASK.exec(inline.content);
    const first = inline.children?.[0];
    if (!marker || !first || first.type !== "text" || !first.content.startsWith(marker[0].trimEnd())) continue;
    first.content = first.content.slice(marker[0].length).replace(/^[ \t]+/, "");
    const box = new state.Token("task_checkbox", "", 0);
    box.meta = { checked: marker[1] !== " " };
    inline.children?.unshift(box);
    tokens[i - 2].attrJoin("class", "task-list-item");
  }
}

/**
 * Raw inline HTML: the allowed tags balanced within their paragraph (a stray closer is text, an
 * unclosed opener is closed at its end, a closer closes what was opened inside it), so no
 * formatting leaks from one block into the next.
 * @param {StateCore} state
 */
function balanceInlineHtml(state) {
  for (const block of state.tokens) {
    if (block.type !== "inline" || !block.children) continue;
    /** @type {string[]} */
    const open = [];
    for (const token of block.children) {
      if (token.type !== "html_inline") continue;
      token.meta = { html: balancedTag(token.content, open) };
    }
    for (const name of open.reverse()) {
      const closer = new state.Token("html_inline", "", 0);
      closer.meta = { html: `</${name}>` };
      block.children.push(closer);
    }
  }
}

/**
 * The HTML one raw tag becomes, given the tags open before it (updated): the bare tag when it
 * is allowed and fits, else its source as escaped text.
 * @param {string} source
 * @param {string[]} open
 */
function balancedTag(source, open) {
  const match = TAG.exec(source);
  const name = match?.[2].toLowerCase() ?? "";
  if (!match || !INLINE_TAGS.has(name)) return escapeHtml(source);
  if (VOID_TAGS.has(name)) return match[1] ? "" : `<${name}>`;
  if (!match[1]) {
    open.push(name);
    return `<${name}>`;
  }
  const at = open.lastIndexOf(name);
  if (at < 0) return escapeHtml(source);
  // Closing an outer tag closes the ones opened inside it, as an HTML parser would.
  return open
    .splice(at)
    .reverse()
    .map((tag) => `</${tag}>`)
    .join("");
}

/**
 * An HTML block (a line that starts with a tag) renders as a paragraph of its text, keeping the
 * allowed inline tags.
 * @param {string} source
 */
function htmlBlockAsParagraph(source) {
  /** @type {string[]} */
  const open = [];
  let html = "";
  let last = 0;
  for (const match of source.trim().matchAll(ANY_TAG)) {
    html += escapeHtml(match.input.slice(last, match.index)) + balancedTag(match[0], open);
    last = match.index + match[0].length;
  }
  html += escapeHtml(source.trim().slice(last));
  for (const name of open.reverse()) html += `</${name}>`;
  return `<p>${html}</p>\n`;
}

/** @param {MarkdownIt} md */
function renderRawHtml(md) {
  md.renderer.rules.html_inline = (tokens, idx) => {
    const html = tokens[idx].meta?.html;
    return typeof html === "string" ? html : escapeHtml(tokens[idx].content);
  };
  md.renderer.rules.html_block = (tokens, idx) => htmlBlockAsParagraph(tokens[idx].content);
  md.renderer.rules.task_checkbox = (tokens, idx) =>
    `<span class="md-task${tokens[idx].meta?.checked ? " md-task-checked" : ""}"></span>`;
}

/**
 * @param {MarkdownIt} md
 * @param {Place} place
 */
function renderLinksAndImages(md, place) {
  md.renderer.rules.link_open = (tokens, idx, options, _env, self) => {
    tokens[idx].attrSet("target", "_blank");
    tokens[idx].attrSet("rel", "noopener noreferrer");
    return self.renderToken(tokens, idx, options);
  };
  md.renderer.rules.image = (tokens, idx, options, env, self) => {
    const token = tokens[idx];
    const src = String(token.attrGet("src") ?? "");
    const alt = self.renderInlineAsText(token.children ?? [], options, env);
    if (isOwnImage(src, place)) {
      const title = token.attrGet("title");
      const titled = title ? ` title="${escapeHtml(String(title))}"` : "";
      return `<img src="${escapeHtml(src)}" alt="${escapeHtml(alt)}"${titled}>`;
    }
    // A remote image would tell its server who reads the answer (and the CSP blocks it anyway).
    const label = escapeHtml(alt || "image");
    if (insideLink(tokens, idx)) return `<span class="md-remote-image">${label}</span>`;
    const href = escapeHtml(src);
    return `<a class="md-remote-image" href="${href}" target="_blank" rel="noopener noreferrer">${label}</a>`;
  };
}

/**
 * @param {Token[]} tokens
 * @param {number} idx
 */
function insideLink(tokens, idx) {
  let depth = 0;
  for (let i = 0; i < idx; i++) depth += tokens[i].type === "link_open" ? 1 : tokens[i].type === "link_close" ? -1 : 0;
  return depth > 0;
}

/**
 * Tables scroll inside a wrapper of their own; alignment is a class (no style attributes).
 * @param {MarkdownIt} md
 */
function renderTables(md) {
  md.renderer.rules.table_open = () => '<div class="md-table"><table>\n';
  md.renderer.rules.table_close = () => "</table></div>\n";
  for (const type of ["th_open", "td_open"]) {
    md.renderer.rules[type] = (tokens, idx, _options, _env, self) => {
      const token = tokens[idx];
      const align = /text-align:(left|center|right)/.exec(String(token.attrGet("style") ?? ""));
      const attrs = token.attrs?.filter(([name]) => name !== "style") ?? [];
      if (align) attrs.push(["class", `md-align-${align[1]}`]);
      return `<${token.tag}${self.renderAttrs({ attrs })}>`;
    };
  }
}

/**
 * Fenced and indented code, highlighted when its language is one highlight.js knows.
 * @param {MarkdownIt} md
 */
function renderCode(md) {
  md.renderer.rules.fence = (tokens, idx) => {
    const info = md.utils.unescapeAll(tokens[idx].info).trim();
    return codeBlock(tokens[idx].content, info.split(/\s+/)[0]);
  };
  md.renderer.rules.code_block = (tokens, idx) => codeBlock(tokens[idx].content, "");
}

/**
 * @param {string} code
 * @param {string} language
 */
function codeBlock(code, language) {
  const lang = LANGUAGE.test(language) ? language : "";
  const known = lang !== "" && hljs.getLanguage(lang) !== undefined;
  const body = known ? hljs.highlight(code, { language: lang, ignoreIllegals: true }).value : escapeHtml(code);
  return `<pre><code class="hljs${lang ? ` language-${escapeHtml(lang)}` : ""}">${body}</code></pre>\n`;
}

/** @param {string} text */
function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot" }[c]};`);
}
