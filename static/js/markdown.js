// Answers rendered as Markdown, safely, and while they stream at a cost per frame that does not
// grow with the answer: renderMarkdown() for a finished text, StreamingMarkdown for one that is
// still arriving, installCopyButtons() for the page. markdown-blocks.js splits the text into
// top-level blocks and says which are finished; markdown-render.js turns blocks into DOM.
//
// The page, for each answer: `const view = new StreamingMarkdown(element)`, then
// `view.update(text)` each time the text grows and `view.finish(text)` when it is complete
// (renderMarkdown(text) for one that is already complete); `installCopyButtons(log)` once.
// Rendered blocks sit in `div.md-chunk` elements (see Chunks); style them with descendant
// selectors. The page loads /static/vendor/katex/katex.min.css and a highlight.js theme.

import { BlockStream, parseBlocks } from "./markdown-blocks.js";
import { md, renderBlocks } from "./markdown-render.js";

export { sanitizeHtml } from "./markdown-render.js";

/** @typedef {import("./markdown-blocks.js").Block} Block */
/** @typedef {{block: Block, nodes: ChildNode[]}} RenderedBlock */

/** Blocks per chunk element (see Chunks). */
const CHUNK = 32;

/**
 * The complete rendering of a finished text.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const chunks = new Chunks(fragment);
  const blocks = parseBlocks(md, text, { references: {}, streaming: false });
  renderBlocks(blocks).forEach((nodes, i) => chunks.at(i).append(...nodes));
  return fragment;
}

/**
 * A text that is still arriving, rendered into `container` (which it owns: it is emptied first).
 * Blocks that are finished are rendered once and then left alone; only the text after them is
 * rendered again, at most once per animation frame however often update() is called.
 */
export class StreamingMarkdown {
  /** @type {HTMLElement} */
  #container;
  /** @type {Chunks} */
  #chunks;
  /** @type {BlockStream} */
  #stream = new BlockStream(md);
  /** @type {RenderedBlock[]} */
  #frozen = [];
  /** @type {ChildNode[]} */
  #live = [];
  /** @type {string | null} */
  #liveSource = null;
  #text = "";
  /** The text the DOM shows. */
  #rendered = "";
  #frame = 0;
  #finished = false;

  /** @param {HTMLElement} container */
  constructor(container) {
    this.#container = container;
    container.replaceChildren();
    this.#chunks = new Chunks(container);
  }

  /**
   * The whole text so far, each time it grows (once per token is fine): rendered in the next
   * animation frame.
   * @param {string} fullText
   */
  update(fullText) {
    if (this.#finished) return;
    this.#text = fullText;
    if (this.#frame === 0) {
      this.#frame = requestAnimationFrame(() => {
        this.#frame = 0;
        this.flush();
      });
    }
  }

  /** Render what update() was given now rather than in the next frame. */
  flush() {
    cancelAnimationFrame(this.#frame);
    this.#frame = 0;
    if (this.#finished || this.#text === this.#rendered) return;
    this.#rendered = this.#text;
    if (!this.#extendsFrozenText(this.#text)) this.#restart();
    const { frozen, live, liveSource } = this.#stream.advance(this.#text);
    if (frozen.length > 0) {
      this.#removeLive();
      renderBlocks(frozen).forEach((nodes, i) => {
        this.#chunks.at(this.#frozen.length).append(...nodes);
        this.#frozen.push({ block: frozen[i], nodes });
      });
    }
    if (liveSource === this.#liveSource) return;
    this.#removeLive();
    renderBlocks(live).forEach((nodes, i) => {
      this.#chunks.at(this.#frozen.length + i).append(...nodes);
      this.#live.push(...nodes);
    });
    this.#liveSource = liveSource;
  }

  /**
   * The text is complete: settle to exactly what renderMarkdown(fullText) renders, keeping the
   * DOM of every frozen block that is still right (all of them, unless a link reference
   * definition arrived after its use). Once; update() does nothing after it.
   * @param {string} fullText
   */
  finish(fullText) {
    cancelAnimationFrame(this.#frame);
    this.#frame = 0;
    const blocks = parseBlocks(md, fullText, { references: {}, streaming: false });
    const previous = new Map(this.#frozen.map((rendered) => [rendered.block.start, rendered]));
    const kept = blocks.map((block) => {
      const old = previous.get(block.start);
      const same = old?.block.source === block.source;
      return same && (old?.block.references === block.references || !block.source.includes("[")) ? old : null;
    });
    const fresh = renderBlocks(blocks.filter((_, i) => !kept[i]));
    let next = 0;
    this.#removeLive();
    this.#frozen = blocks.map((block, i) => kept[i] ?? { block, nodes: fresh[next++] });
    this.#chunks.settle(this.#frozen.map((rendered) => rendered.nodes));
    this.#text = fullText;
    this.#finished = true;
  }

  /**
   * Does `text` extend the text the frozen blocks came from? Checked at their end only, so
   * that the check costs the same however long the answer is.
   * @param {string} text
   */
  #extendsFrozenText(text) {
    const last = this.#frozen.at(-1);
    if (!last) return true;
    const lastEnd = last.block.start + last.block.source.length;
    return text.length >= this.#stream.frozenEnd && text.slice(last.block.start, lastEnd) === last.block.source;
  }

  #restart() {
    this.#container.replaceChildren();
    this.#chunks = new Chunks(this.#container);
    this.#stream = new BlockStream(md);
    this.#frozen = [];
    this.#live = [];
    this.#liveSource = null;
  }

  #removeLive() {
    for (const node of this.#live) node.remove();
    this.#live = [];
    this.#liveSource = null;
  }
}

/**
 * The rendered blocks' parents: a `div.md-chunk` for every CHUNK blocks, in order. Browsers lay
 * out a block container by walking all of its children, so an answer of a thousand blocks in
 * one element costs a thousand steps per frame; in chunks, the walk stays short however long
 * the answer grows. The chunks are plain blocks: margins collapse through them as between
 * siblings (style rendered answers with descendant selectors, not `>`).
 */
class Chunks {
  /** @type {ParentNode} */
  #root;
  /** @type {HTMLElement[]} */
  #elements = [];

  /** @param {ParentNode} root */
  constructor(root) {
    this.#root = root;
  }

  /**
   * The chunk that holds block `index`, added at the end if it is the first of a new one.
   * @param {number} index
   */
  at(index) {
    const number = Math.floor(index / CHUNK);
    while (this.#elements.length <= number) {
      const chunk = document.createElement("div");
      chunk.className = "md-chunk";
      this.#root.append(chunk);
      this.#elements.push(chunk);
    }
    return this.#elements[number];
  }

  /**
   * Hold exactly these blocks' nodes, in order, leaving the ones already in place untouched.
   * @param {ChildNode[][]} blocks
   */
  settle(blocks) {
    const wanted = new Set(blocks.flat());
    for (const chunk of this.#elements) {
      for (const node of [...chunk.childNodes]) if (!wanted.has(node)) node.remove();
    }
    const count = Math.ceil(blocks.length / CHUNK);
    for (let number = 0; number < count; number++) {
      const chunk = this.at(number * CHUNK);
      let next = chunk.firstChild;
      for (const node of blocks.slice(number * CHUNK, (number + 1) * CHUNK).flat()) {
        if (node === next) next = node.nextSibling;
        else chunk.insertBefore(node, next);
      }
    }
    for (const chunk of this.#elements.splice(count)) chunk.remove();
  }
}

/**
 * Make the copy buttons of the code blocks in `container` work: one delegated listener, so
 * blocks rendered later need nothing. The code's text goes to the clipboard; where the page may
 * not write there, the code is selected instead, for Ctrl+C.
 * @param {HTMLElement} container
 * @returns {() => void} removes the listener
 */
export function installCopyButtons(container) {
  /** @param {MouseEvent} event */
  const onClick = (event) => {
    const button = event.target instanceof Element ? event.target.closest("button.copy-code") : null;
    const code = button?.closest(".md-code-block")?.querySelector("pre > code");
    if (!button || !code || !container.contains(button)) return;
    const text = (code.textContent ?? "").replace(/\n$/, "");
    const done = (/** @type {string} */ label) => {
      button.textContent = label;
      setTimeout(() => (button.textContent = "Copy"), 2000);
    };
    // navigator.clipboard exists only in secure contexts (https, localhost).
    const written = navigator.clipboard
      ? navigator.clipboard.writeText(text)
      : Promise.reject(new Error("no clipboard"));
    written.then(
      () => done("Copied"),
      () => {
        getSelection()?.selectAllChildren(code);
        done("Press Ctrl+C");
      },
    );
  };
  container.addEventListener("click", onClick);
  return () => container.removeEventListener("click", onClick);
}
