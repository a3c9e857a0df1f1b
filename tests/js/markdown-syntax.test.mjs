// @ts-check
// The Markdown dialect of answers, as HTML before sanitising: GFM extensions, math and its
// dollar rules, code, and what raw HTML, links and images may become.
// Run: node --test tests/js/
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { createMarkdown, isOwnImage, validateLink } from "../../static/js/markdown-syntax.js";

const place = { origin: "https://chat.example", baseUrl: "https://chat.example/c/1" };
const md = createMarkdown(place);
/**
 * @param {string} text
 * @param {Record<string, unknown>} [env]
 */
const html = (text, env = {}) => md.render(text, env).trim();
/** @param {string} text */
const inline = (text) => html(text).replace(/^<p>|<\/p>$/g, "");

describe("GFM", () => {
  it("renders tables with alignment as classes, inside a scrolling wrapper", () => {
    const out = html("| a | b |\n|:-:|--:|\n| 1 | 2 |");
    assert.match(out, /^<div class="md-table"><table>/);
    assert.match(out, /<th class="md-align-center">a<\/th>/);
    assert.match(out, /<td class="md-align-right">2<\/td>/);
    assert.doesNotMatch(out, /style=/);
  });

  it("renders task lists as checkbox markers", () => {
    const out = html("- [ ] todo\n- [x] done\n- [y] not a task");
    assert.match(out, /<li class="task-list-item"><span class="md-task"><\/span>todo<\/li>/);
    assert.match(out, /<li class="task-list-item"><span class="md-task md-task-checked"><\/span>done<\/li>/);
    assert.match(out, /<li>\[y\] not a task<\/li>/);
  });

  it("renders strikethrough", () => {
    assert.equal(inline("~~gone~~"), "<s>gone</s>");
  });

  it("links URLs, www. addresses and e-mail addresses, not file names", () => {
    assert.equal(
      inline("https://a.example/x, www.b.example and c@d.example"),
      '<a href="https://a.example/x" target="_blank" rel="noopener noreferrer">https://a.example/x</a>, ' +
        '<a href="http://www.b.example" target="_blank" rel="noopener noreferrer">www.b.example</a> and ' +
        '<a href="mailto:c@d.example" target="_blank" rel="noopener noreferrer">c@d.example</a>',
    );
    assert.equal(inline("see README.md and main.py"), "see README.md and main.py");
  });
});

describe("math", () => {
  /**
   * @param {string} tex
   * @param {boolean} [display]
   */
  const math = (tex, display = false) => `<span class="md-math${display ? " md-math-display" : ""}">${tex}</span>`;

  it("recognises each delimiter", () => {
    assert.equal(
      inline("$a$ \\(b\\) $$c$$ \\[d\\]"),
      `${math("a")} ${math("b")} ${math("c", true)} ${math("d", true)}`,
    );
    assert.equal(html("$$\nx = 1\n$$"), '<div class="md-math md-math-display">x = 1</div>');
    assert.equal(html("\\[\nx\n\\]"), '<div class="md-math md-math-display">x</div>');
    assert.equal(html("$$x$$"), '<div class="md-math md-math-display">x</div>');
  });

  it("leaves prices alone", () => {
    for (const text of ["$5 and $10", "$20,000 and $30,000", "it costs $ 5$", "from $5 to $x$ here", "$x$5"]) {
      assert.doesNotMatch(inline(text).replace(math("x"), ""), /md-math/, text);
    }
    assert.equal(inline("from $5 to $x$ here"), `from $5 to ${math("x")} here`);
  });

  it("keeps an escaped dollar literal and TeX intact", () => {
    assert.equal(inline("\\$x$"), "$x$");
    assert.equal(inline("$a_1 * b_2 * c$"), math("a_1 * b_2 * c"));
    assert.equal(inline("$\\$5$"), math("\\$5"));
  });

  it("lets an unclosed display formula run to the end only while streaming", () => {
    assert.equal(html("$$\na\n\nb"), "<p>$$\na</p>\n<p>b</p>");
    assert.equal(html("$$\na\n\nb", { streaming: true }), '<div class="md-math-pending">a\n\nb</div>');
  });

  it("escapes the TeX it holds", () => {
    assert.equal(inline("$a<b>c$"), math("a&lt;b&gt;c"));
  });
});

describe("code", () => {
  it("highlights a fenced block in a known language and labels it", () => {
    const out = html("```python\nx = 1\n```");
    assert.match(
      out,
      /^<pre><code class="hljs language-python">x = <span class="hljs-number">1<\/span>\n<\/code><\/pre>$/,
    );
  });

  it("escapes code in an unknown language, and keeps its label", () => {
    assert.equal(
      html("```mermaid\n<b>&amp;\n```"),
      '<pre><code class="hljs language-mermaid">&lt;b&gt;&amp;amp;\n</code></pre>',
    );
  });

  it("drops a language name that could not be a class name", () => {
    assert.equal(html('```x" onclick="y\nz\n```'), '<pre><code class="hljs">z\n</code></pre>');
  });

  it("treats an unterminated fence as code to the end", () => {
    assert.equal(
      html("```js\nlet a = `*`"),
      '<pre><code class="hljs language-js"><span class="hljs-keyword">let</span> a = <span class="hljs-string">`*`</span></code></pre>',
    );
  });
});

describe("raw HTML", () => {
  it("keeps allowed inline tags without their attributes", () => {
    assert.equal(inline('<b onclick="x()">bold</b> <sup>2</sup> a<br/>b'), "<b>bold</b> <sup>2</sup> a<br>b");
  });

  it("shows any other tag as text", () => {
    assert.equal(
      inline("vector<int> <img src=x onerror=alert(1)>"),
      "vector&lt;int&gt; &lt;img src=x onerror=alert(1)&gt;",
    );
    assert.equal(html("<script>alert(1)</script>"), "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>");
    assert.equal(
      html('<div style="position:fixed">\n<b>x</b>\n</div>'),
      "<p>&lt;div style=&quot;position:fixed&quot;&gt;\n<b>x</b>\n&lt;/div&gt;</p>",
    );
  });

  it("balances tags within their paragraph", () => {
    assert.equal(inline("<b>open"), "<b>open</b>");
    assert.equal(inline("stray</i>"), "stray&lt;/i&gt;");
    assert.equal(inline("<b>a <i>b</b> c</i>"), "<b>a <i>b</i></b> c&lt;/i&gt;");
  });
});

describe("links and images", () => {
  it("accepts http(s), mailto and relative links only", () => {
    for (const url of ["https://a.example", "http://a.example", "mailto:a@b.example", "/x", "#y", "z.html"]) {
      assert.ok(validateLink(url), url);
    }
    for (const url of [
      "javascript:alert(1)",
      "JAVASCRIPT:x",
      "java\tscript:x",
      " javascript:x",
      "data:text/html,x",
      "vbscript:x",
      "file:///etc/passwd",
      "tel:1",
    ]) {
      assert.ok(!validateLink(url), url);
    }
    assert.ok(validateLink("data:image/png;base64,AAAA"));
  });

  it("renders a rejected link as its text", () => {
    assert.equal(inline("[click](javascript:alert(1))"), "[click](javascript:alert(1))");
  });

  it("opens links in a new tab without an opener", () => {
    assert.equal(inline("[a](/b)"), '<a href="/b" target="_blank" rel="noopener noreferrer">a</a>');
  });

  it("shows the page's own images and data: images, and links remote ones", () => {
    assert.ok(isOwnImage("/static/x.png", place));
    assert.ok(isOwnImage("https://chat.example/x.png", place));
    assert.ok(isOwnImage("data:image/png;base64,AAAA", place));
    assert.ok(!isOwnImage("https://evil.example/x.png", place));
    assert.ok(!isOwnImage("//evil.example/x.png", place));
    assert.equal(inline("![a cat](/cat.png)"), '<img src="/cat.png" alt="a cat">');
    assert.equal(
      inline("![a cat](https://evil.example/cat.png)"),
      '<a class="md-remote-image" href="https://evil.example/cat.png" target="_blank" rel="noopener noreferrer">a cat</a>',
    );
  });
});
