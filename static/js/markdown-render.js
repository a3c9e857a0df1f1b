// Top-level Markdown blocks to DOM, safely. markdown-it (configured in markdown-syntax.js) renders
// HTML; DOMPurify sanitises it against a strict allow-list (model output is untrusted); then
// trusted code adds what must not come from the model: code block headers with copy buttons,
// task checkboxes, a link's real host when its text names another, and math, rendered by KaTeX.
//
// KaTeX under `style-src 'self'`: KaTeX positions its HTML with inline styles. Parsed from a
// string (a style="" attribute) the page's CSP would block them; katex.render() sets them
// through the CSSOM (element.style), which CSP allows, so math is rendered after sanitising,
// straight into the DOM, and never passes through an HTML parser. The one construct whose
// MathML KaTeX writes with setAttribute("style") (\pmb) is mapped to \boldsymbol.

import DOMPurify from "../vendor/dompurify/purify.es.mjs";
import "../vendor/katex/katex.min.js";
import { createMarkdown, isOwnImage } from "./markdown-syntax.js";

/** @typedef {typeof import("../vendor/katex/katex.min.js")} Katex */
/** @typedef {import("./markdown-blocks.js").Block} Block */

// The UMD build, imported for its side effect, defines the global.
const katex = /** @type {{katex: Katex}} */ (/** @type {unknown} */ (globalThis)).katex;
const place = { origin: location.origin, baseUrl: document.baseURI };

/** The markdown-it that answers are parsed with. */
export const md = createMarkdown(place);

/** Everything markdown-syntax.js emits, and nothing else: no forms, frames, SVG, MathML, styles. */
// prettier-ignore
const SANITIZE = {
  ALLOWED_TAGS: [
    "a", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "s", "small", "span", "strong",
    "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "u", "ul",
  ],
  ALLOWED_ATTR: ["href", "title", "target", "rel", "src", "alt", "class", "start"],
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOW_UNKNOWN_PROTOCOLS: false,
  ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
  RETURN_DOM_FRAGMENT: true,
};
// An instance of our own, so that its configuration and hooks are nobody else's.
const purify = DOMPurify(window);
purify.setConfig(SANITIZE);
purify.addHook("afterSanitizeAttributes", (node) => {
  if (!(node instanceof Element)) return;
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  } else if (node.tagName === "IMG" && !isOwnImage(node.getAttribute("src") ?? "", place)) {
    node.removeAttribute("src");
  }
});

const KATEX_OPTIONS = {
  throwOnError: false,
  output: /** @type {const} */ ("htmlAndMathml"),
  trust: false,
  strict: /** @type {const} */ ("ignore"),
  maxSize: 50,
  maxExpand: 1000,
};
const KATEX_MACROS = { "\\pmb": "\\boldsymbol{#1}" };
const NOT_MATH = "a, img, script, iframe, object, embed, style, link, foreignObject, image, use";
const HOST_LIKE = /(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\b/gi;

/**
 * Sanitise HTML with the allow-list answers are held to.
 * @param {string} html
 * @returns {DocumentFragment} owned by this document
 */
export function sanitizeHtml(html) {
  return document.adoptNode(/** @type {DocumentFragment} */ (/** @type {unknown} */ (purify.sanitize(html))));
}

/**
 * Blocks to DOM: their HTML sanitised in one pass (each in a wrapper, balanced, so none can
 * reach into the next), then finished. Each block's nodes, in order.
 * @param {Block[]} blocks
 * @returns {ChildNode[][]}
 */
export function renderBlocks(blocks) {
  if (blocks.length === 0) return [];
  const html = blocks.map((block) => `<div class="md-block">${md.renderer.render(block.tokens, md.options, {})}</div>`);
  const wrappers = [...sanitizeHtml(html.join("")).children];
  if (wrappers.length !== blocks.length) {
    // Not expected (every block's HTML is balanced); one pass per block is as right, and slower.
    return html.map((one) => renderWrapper(/** @type {Element} */ (sanitizeHtml(one).firstElementChild)));
  }
  return wrappers.map(renderWrapper);
}

/** @param {Element | null} wrapper */
function renderWrapper(wrapper) {
  if (!wrapper) return [];
  for (const code of wrapper.querySelectorAll("pre > code")) addCodeHeader(code);
  for (const math of wrapper.querySelectorAll(".md-math")) renderMath(math);
  // What scrolls sideways (code, tables, display formulas) takes the focus, so the keyboard scrolls it.
  for (const wide of wrapper.querySelectorAll(".md-table, .md-math-display")) wide.setAttribute("tabindex", "0");
  for (const box of wrapper.querySelectorAll("span.md-task")) box.replaceWith(checkbox(box));
  for (const link of wrapper.querySelectorAll("a[href]")) showRealTarget(link);
  // markdown-it ends each block with a newline: whitespace between blocks, no use in the DOM.
  return [...wrapper.childNodes].filter((node) => node.nodeType !== Node.TEXT_NODE || node.textContent?.trim());
}

/**
 * Wrap a code block in a header holding its language and a copy button; the block is a group
 * named for its language.
 * @param {Element} code
 */
function addCodeHeader(code) {
  const pre = /** @type {HTMLElement} */ (code.parentElement);
  const language = [...code.classList].find((name) => name.startsWith("language-"));
  const name = language ? language.slice("language-".length) : "";
  const block = element("div", "md-code-block");
  block.setAttribute("role", "group");
  block.setAttribute("aria-label", name ? `Code, ${name}` : "Code");
  const header = element("div", "md-code-header");
  const label = element("span", "md-code-lang");
  label.textContent = name;
  // The code scrolls sideways in a body of its own, which takes the focus for the keyboard to scroll it.
  const body = element("div", "md-code-body");
  body.setAttribute("tabindex", "0");
  const button = element("button", "copy-code");
  button.type = "button";
  button.setAttribute("aria-label", "Copy code");
  button.textContent = "Copy";
  header.append(label, button);
  pre.replaceWith(block);
  body.append(pre);
  block.append(header, body);
}

/**
 * Render the TeX an element holds, in place.
 * @param {Element} math
 */
function renderMath(math) {
  const tex = math.textContent ?? "";
  try {
    katex.render(tex, /** @type {HTMLElement} */ (math), {
      ...KATEX_OPTIONS,
      displayMode: math.classList.contains("md-math-display"),
      macros: { ...KATEX_MACROS }, // KaTeX writes \gdef into it: a fresh one per formula
    });
  } catch {
    math.textContent = tex;
    math.classList.add("md-math-error");
  }
  // KaTeX with trust: false emits no links, images or handlers; make sure of it.
  for (const node of math.querySelectorAll(NOT_MATH)) node.remove();
  for (const node of math.querySelectorAll("*")) {
    for (const name of node.getAttributeNames()) if (/^on|href$|^src/i.test(name)) node.removeAttribute(name);
  }
}

/** @param {Element} box */
function checkbox(box) {
  const input = element("input", "task-list-item-checkbox");
  input.type = "checkbox";
  input.toggleAttribute("disabled", true);
  input.toggleAttribute("checked", box.classList.contains("md-task-checked"));
  input.setAttribute("aria-label", "Task"); // its state is read out with it; the item's text follows
  return input;
}

/**
 * A link whose text names a host other than the one it leads to gets that host shown after it
 * ("paypal.com (evil.example)"); a remote image shown as a link gets its whole address.
 * @param {Element} link
 */
function showRealTarget(link) {
  let url;
  try {
    url = new URL(link.getAttribute("href") ?? "", place.baseUrl);
  } catch {
    return;
  }
  let target = "";
  if (link.classList.contains("md-remote-image")) {
    target = url.href;
  } else {
    const host = url.protocol === "mailto:" ? url.pathname.slice(url.pathname.lastIndexOf("@") + 1) : url.hostname;
    const named = (link.textContent ?? "").match(HOST_LIKE) ?? [];
    if (named.some((name) => bareHost(name) !== bareHost(host))) target = host || url.href;
  }
  if (!target) return;
  const note = element("span", "md-link-target");
  note.textContent = ` (${target})`;
  link.after(note);
}

/** @param {string} host */
function bareHost(host) {
  return host.toLowerCase().replace(/^www\./, "");
}

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} className
 * @returns {HTMLElementTagNameMap[K]}
 */
function element(tag, className) {
  const node = document.createElement(tag);
  node.className = className;
  return node;
}
