// Test page only: puts the Markdown modules within reach of the browser tests
// (tests/e2e/test_markdown.py) and the frame benchmark (bench/markdown_frames.py), which drive
// them through page.evaluate, and says it is ready with <body data-ready>.
import { installCopyButtons, renderMarkdown, sanitizeHtml, StreamingMarkdown } from "/static/js/markdown.js";
import { ThinkSplitter } from "/static/js/think-splitter.js";

const answer = /** @type {HTMLElement} */ (document.getElementById("answer"));
const reference = /** @type {HTMLElement} */ (document.getElementById("reference"));
installCopyButtons(answer);

/** The nodes of the rendered blocks, in order, inside their chunk elements. */
function blockNodes(container) {
  return [...container.children].flatMap((chunk) => [...chunk.childNodes]);
}

/** Do two containers hold equal DOM trees (structure, attributes, text)? */
function sameChildren(a, b) {
  return (
    a.childNodes.length === b.childNodes.length &&
    [...a.childNodes].every((node, i) => node.isEqualNode(b.childNodes[i]))
  );
}

window.markdown = {
  renderMarkdown,
  sanitizeHtml,
  StreamingMarkdown,
  ThinkSplitter,

  /** Render `text` in one piece into the reference bubble; its HTML. */
  renderReference(text) {
    reference.replaceChildren(renderMarkdown(text));
    return reference.innerHTML;
  },

  /** Render `text` in one piece into the answer bubble. */
  show(text) {
    answer.replaceChildren(renderMarkdown(text));
    return answer.innerHTML;
  },

  /**
   * Stream `chunks` into the answer bubble, one render per chunk, then finish(). After chunk
   * `markAfter`, every block node but the last two (the live part is at most two blocks of one
   * element each) is marked; reports what the test judges: the HTML after each chunk if asked, the final HTML,
   * whether it equals the one-piece rendering, and marked nodes that were ever removed or
   * are missing at the end.
   */
  stream(chunks, { markAfter = -1, snapshots = false } = {}) {
    const view = new StreamingMarkdown(answer);
    const removedMarked = [];
    const observer = new MutationObserver((records) => {
      for (const record of records) {
        for (const node of record.removedNodes) if (node.__frozenMark) removedMarked.push(node.nodeName);
      }
    });
    observer.observe(answer, { childList: true, subtree: true });
    const seen = [];
    let marked = 0;
    let text = "";
    chunks.forEach((chunk, i) => {
      text += chunk;
      view.update(text);
      view.flush();
      if (snapshots) seen.push(answer.innerHTML);
      if (i === markAfter) {
        const nodes = blockNodes(answer).slice(0, -2);
        for (const node of nodes) node.__frozenMark = true;
        marked = nodes.length;
      }
    });
    view.finish(text);
    for (const record of observer.takeRecords()) {
      for (const node of record.removedNodes) if (node.__frozenMark) removedMarked.push(node.nodeName);
    }
    observer.disconnect();
    const expected = this.renderReference(text);
    return {
      html: answer.innerHTML,
      equal: answer.innerHTML === expected && sameChildren(answer, reference),
      snapshots: seen,
      marked,
      markedAtEnd: blockNodes(answer).filter((node) => node.__frozenMark).length,
      removedMarked,
    };
  },

  /**
   * Route `chunks` of an answer with inline <think> through ThinkSplitter into two streaming
   * views (detached), finish both; their HTML, and the one-piece renderings of the routed texts.
   */
  streamThinking(chunks) {
    const splitter = new ThinkSplitter();
    const boxes = { answer: document.createElement("div"), thinking: document.createElement("div") };
    const views = { answer: new StreamingMarkdown(boxes.answer), thinking: new StreamingMarkdown(boxes.thinking) };
    const texts = { answer: "", thinking: "" };
    const feed = (routed) => {
      for (const part of ["answer", "thinking"]) {
        if (!routed[part]) continue;
        texts[part] += routed[part];
        views[part].update(texts[part]);
        views[part].flush();
      }
    };
    for (const chunk of chunks) feed(splitter.push(chunk));
    feed(splitter.flush());
    const result = { texts };
    for (const part of ["answer", "thinking"]) {
      views[part].finish(texts[part]);
      const one = document.createElement("div");
      one.append(renderMarkdown(texts[part]));
      result[part] = { html: boxes[part].innerHTML, expected: one.innerHTML };
    }
    return result;
  },

  /**
   * Elements of the answer bubble whose box reaches outside it (clipped first by any scrolling
   * or clipping element between them and the bubble): a description of each.
   */
  escapes() {
    const bubble = answer.getBoundingClientRect();
    const out = [];
    for (const node of answer.querySelectorAll("*")) {
      let { left, right, top, bottom, width, height } = node.getBoundingClientRect();
      if (width === 0 && height === 0) continue;
      for (let up = node.parentElement; up && up !== answer; up = up.parentElement) {
        const style = getComputedStyle(up);
        if (style.overflowX === "visible" && style.overflowY === "visible") continue;
        const clip = up.getBoundingClientRect();
        left = Math.max(left, clip.left);
        right = Math.min(right, clip.right);
        top = Math.max(top, clip.top);
        bottom = Math.min(bottom, clip.bottom);
      }
      if (right <= left || bottom <= top) continue; // clipped away entirely
      if (left < bubble.left - 1 || right > bubble.right + 1 || top < bubble.top - 1 || bottom > bubble.bottom + 1) {
        out.push(`${node.tagName.toLowerCase()}.${node.className} [${left},${top},${right},${bottom}]`);
      }
    }
    return out;
  },

  /**
   * The frame benchmark: one streaming view per window ([from, to) token indexes; at most two,
   * in the two bubbles), each brought to its window's start in one render (which freezes the
   * same blocks as a render per token would), then the windows' frames interleaved, one token
   * per frame each, so that a change in the machine's load while it runs weighs on both alike.
   * A frame's time: update(), flush() and the layout the browser then does.
   */
  bench(tokens, windows) {
    const boxes = [answer, reference];
    const views = windows.map((_, w) => new StreamingMarkdown(boxes[w]));
    const texts = windows.map(([from]) => tokens.slice(0, from).join(""));
    views.forEach((view, w) => {
      view.update(texts[w]);
      view.flush();
    });
    const samples = windows.map(() => []);
    const width = Math.min(...windows.map(([from, to]) => to - from));
    for (let k = 0; k < width; k++) {
      windows.forEach(([from], w) => {
        texts[w] += tokens[from + k];
        const start = performance.now();
        views[w].update(texts[w]);
        views[w].flush();
        void boxes[w].offsetHeight;
        samples[w].push(performance.now() - start);
      });
    }
    views.forEach((view, w) => view.finish(texts[w]));
    const last = windows.length - 1;
    return { samples, characters: texts[last].length, elements: boxes[last].querySelectorAll("*").length };
  },
};

document.body.dataset.ready = "";
