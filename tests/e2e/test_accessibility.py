"""The chat page, accessible and verified (#13, item 5): axe-core (vendored for the tests only,
tests/e2e/vendor/) on a long stored conversation in light and dark mode, on a desktop and a
phone, finds no serious or critical violation and no text under WCAG AA contrast; the borders
of the controls and the focus ring reach 3:1; the conversation scrolls from the keyboard; the
log is a named `log`; Arabic is laid out right to left; the streaming cursor is not read out;
the keyboard shortcuts work; code blocks and their copy buttons are reachable and labelled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.e2e.chat_page import LAST_ANSWER, ChatPage
from tests.e2e.test_page_markdown import ANSWER, CODE, QUESTION, pieces
from tests.support.fake_upstream import Behaviour, FakeUpstream

pytestmark = pytest.mark.e2e

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
Scheme = Literal["light", "dark"]

SECOND = """A few more kinds of Markdown, for the audit:

> A quoted line, with `inline code` and a [link](https://example.com/docs).

1. First step
2. Second step
   - [x] done
   - [ ] to do

```js
const total = [1, 2, 3].reduce((sum, n) => sum + n, 0); // 6
```

Inline math $e^{i\\pi} + 1 = 0$, ~~struck~~ text, and a very long identifier
`a_very_long_identifier_that_might_not_fit_on_a_phone_screen_at_all`.
"""
ARABIC = "مرحبا! هذه إجابة باللغة العربية، تُكتب من اليمين إلى اليسار."

RUN_AXE = """async () => {
  const results = await axe.run(document, { resultTypes: ["violations", "incomplete"] });
  const brief = (item) => ({
    id: item.id,
    impact: item.impact,
    help: item.help,
    nodes: item.nodes.map((n) => ({
      target: n.target.join(" "),
      why: (n.failureSummary ?? "").slice(0, 300),
    })),
  });
  return {
    violations: results.violations.map(brief),
    incomplete: results.incomplete.filter((i) => i.id === "color-contrast").map(brief),
  };
}"""

# Contrast of two CSS colours (WCAG 2 relative luminance), and the opaque colour behind an element.
CONTRAST = """() => {
  window.__contrast = (a, b) => {
    const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
    const lum = (c) => {
      const [r, g, b] = rgb(c).map((v) => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  window.__behind = (element) => {
    for (let e = element.parentElement; e; e = e.parentElement) {
      const bg = getComputedStyle(e).backgroundColor;
      if (!/rgba\\(.*, 0\\)$|transparent/.test(bg)) return bg;
    }
    return getComputedStyle(document.body).backgroundColor;
  };
}"""


# What has the focus: a code block's code, or a control by its label.
FOCUSED = "document.activeElement.matches('.md-code-body') ? 'code' : document.activeElement.ariaLabel"


def new_context(browser: Browser, scheme: Scheme = "light", phone: bool = False, **options) -> BrowserContext:
    # bypass_csp: axe-core is added to the page as a script of the test's, which the policy would block.
    context = browser.new_context(
        viewport=PHONE if phone else DESKTOP,
        color_scheme=scheme,
        is_mobile=phone,
        has_touch=phone,
        bypass_csp=True,
        **options,
    )
    context.set_default_timeout(15_000)
    return context


def store_conversation(page: Page, url: str, upstream: FakeUpstream, model: str) -> str:
    """A long conversation, stored through the API: answers with code, tables, formulas, reasoning,
    Arabic, one cut off at the length limit and one that failed. Its page's address."""
    created = page.request.post(f"{url}/api/conversations", data={"title": "A long conversation"})
    conversation = created.json()["id"]
    turns = [
        (QUESTION, Behaviour(tokens=pieces(ANSWER))),
        ("Show me more Markdown.", Behaviour(tokens=pieces(SECOND), reasoning=("Thinking **briefly**.",))),
        ("قل شيئا بالعربية", Behaviour(tokens=(ARABIC,))),
        ("Once more, but short.", Behaviour(tokens=pieces(ANSWER), finish_reason="length")),
        ("And now fail.", Behaviour(status=429, retry_after="1")),
        ("The formula again?", Behaviour(tokens=pieces(ANSWER))),
    ]
    for question, behaviour in turns:
        upstream.set_behaviour(model, behaviour)
        answered = page.request.post(
            f"{url}/api/conversations/{conversation}/messages", data={"content": question}
        )
        assert answered.status == 200
        assert "event: done" in answered.text()
    return f"{url}/c/{conversation}"


@pytest.fixture
def conversation(page: Page, chat_server, upstream: FakeUpstream) -> tuple[object, str]:
    app = chat_server()
    return app, store_conversation(page, app.url, upstream, app.model)


def open_page(context: BrowserContext, url: str) -> Page:
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector(f"{LAST_ANSWER} .message-text.markdown")
    return page


def audit(page: Page) -> dict[str, Any]:
    page.add_script_tag(path=str(AXE))
    results: dict[str, Any] = page.evaluate(RUN_AXE)
    return results


def assert_accessible(results: dict[str, Any]) -> None:
    serious = [v for v in results["violations"] if v["impact"] in ("serious", "critical")]
    contrast = [v for v in results["violations"] if v["id"] == "color-contrast"]
    assert serious == [], serious
    assert contrast == [], contrast


# Text whose contrast axe could not work out: a formula's one-letter glyphs ("too short" for it to
# judge) are checked here by computing their contrast; anything else is a gap in the audit.
UNJUDGED = """(nodes) => nodes.flatMap(({ target, why }) => {
  const e = document.querySelector(target);
  if (!e || !why.includes("too short")) return [`${target}: ${why}`];
  const ratio = __contrast(getComputedStyle(e).color, __behind(e));
  return ratio >= 4.5 ? [] : [`${target}: ${ratio.toFixed(2)}:1`];
})"""


def assert_aa_contrast_everywhere(page: Page) -> None:
    """Every piece of text in view, at AA. axe judges only what is not scrolled out of sight, so the
    window is made taller than the whole conversation first (the colours do not depend on it)."""
    height = page.evaluate("document.getElementById('scroller').scrollHeight") + 400
    assert page.viewport_size is not None
    page.set_viewport_size({"width": page.viewport_size["width"], "height": height})
    results = audit(page)
    assert_accessible(results)
    page.evaluate(CONTRAST)
    nodes = [node for item in results["incomplete"] for node in item["nodes"]]
    assert page.evaluate(UNJUDGED, nodes) == []


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_and_aa_contrast_everywhere_on_a_long_conversation(
    browser: Browser, conversation, scheme: Scheme, phone: bool
):
    _, url = conversation
    context = new_context(browser, scheme, phone)
    try:
        page = open_page(context, url)
        assert page.locator("#log > .message").count() == 12
        assert_accessible(audit(page))
        # On a phone, code and tables scroll sideways, and axe cannot judge what is out of view: the
        # same colours are checked in full at the desktop's width.
        if not phone:
            assert_aa_contrast_everywhere(page)
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_on_the_empty_page_and_while_an_answer_streams(
    browser: Browser, chat_server, scheme: Scheme
):
    # The first part at once, then a long pause: Stop, the cursor and a half-written answer stay put.
    app = chat_server(Behaviour(tokens=(ANSWER[:400], " and more"), token_interval_s=30))
    context = new_context(browser, scheme)
    try:
        chat = ChatPage(context.new_page())
        page = chat.page
        page.goto(app.url)
        assert_accessible(audit(page))  # the empty page, with its starter prompts
        chat.send(QUESTION)
        page.wait_for_selector(f"{LAST_ANSWER}[data-state=streaming] .message-text .katex")
        expect(page.locator("#send")).to_have_attribute("data-mode", "stop")
        assert_accessible(audit(page))
        assert_aa_contrast_everywhere(page)
        chat.stop()
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_control_borders_and_the_focus_ring_reach_3_to_1(browser: Browser, chat_server, scheme: Scheme):
    app = chat_server()
    context = new_context(browser, scheme)
    try:
        page = context.new_page()
        page.goto(app.url)
        page.evaluate(CONTRAST)
        borders = page.evaluate(
            """() => Object.fromEntries(["#composer", "#new-chat", "#model-select", ".starter"].map((s) => {
                 const e = document.querySelector(s);
                 return [s, __contrast(getComputedStyle(e).borderTopColor, __behind(e))];
               }))"""
        )
        assert all(ratio >= 3 for ratio in borders.values()), borders
        # The ring a keyboard user sees, on a button of the sidebar and on one in the conversation.
        for selector in ("#new-chat", ".starter"):
            page.focus(selector)
            page.keyboard.press("Shift+Tab")
            page.keyboard.press("Tab")
            ring = page.evaluate(
                """(s) => { const e = document.querySelector(s); const style = getComputedStyle(e);
                     return [e === document.activeElement, style.outlineStyle,
                             __contrast(style.outlineColor, __behind(e))]; }""",
                selector,
            )
            focused, style, ratio = ring
            assert focused, selector
            assert style == "solid", (selector, ring)
            assert ratio >= 3, (selector, ring)
    finally:
        context.close()


def test_the_conversation_scrolls_from_the_keyboard(browser: Browser, conversation):
    _, url = conversation
    context = new_context(browser)
    try:
        page = open_page(context, url)
        top = "document.getElementById('scroller').scrollTop"
        bottom = page.evaluate(top)
        assert bottom > 1000  # a long conversation, shown from its end
        assert page.evaluate("document.activeElement.id") == "prompt"

        page.keyboard.press("PageUp")  # from the message field
        assert page.evaluate(top) < bottom - 300

        # With the conversation focused (test_tab_reaches_the_conversation_... tabs to it):
        page.focus("#scroller")
        page.keyboard.press("Control+Home")
        page.wait_for_function(f"{top} === 0")
        page.keyboard.press("ArrowDown")
        page.wait_for_function(f"{top} > 0")
        page.keyboard.press("PageDown")
        page.wait_for_function(f"{top} > 300")
        page.keyboard.press("Control+End")
        page.wait_for_function(f"{top} >= {bottom} - 2")
    finally:
        context.close()


def test_tab_reaches_the_conversation_then_its_code_blocks_and_copy_buttons(browser: Browser, conversation):
    _, url = conversation
    context = new_context(browser)
    try:
        page = open_page(context, url)
        page.evaluate("document.getElementById('scroller').scrollTop = 0")
        page.focus("#settings-button")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "scroller"
        seen = []
        for _ in range(40):
            page.keyboard.press("Tab")
            seen.append(page.evaluate(FOCUSED))
            if "code" in seen and "Copy code" in seen:
                break
        assert seen.index("Copy code") < seen.index("code"), seen  # the button, in its header, then the code
        expect(page.get_by_role("group", name="Code, python").first).to_be_visible()
        expect(page.get_by_role("button", name="Copy code").first).to_be_visible()
    finally:
        context.close()


def test_the_message_log_is_a_named_log_and_the_cursor_is_not_read_out(
    chat: ChatPage, page: Page, chat_server
):
    app = chat_server(Behaviour(tokens=("Partly written", " answer"), token_interval_s=30))
    page.goto(app.url)
    expect(page.get_by_role("log", name="Messages")).to_be_attached()
    chat.send("hello")
    page.wait_for_selector(f"{LAST_ANSWER}[data-state=streaming] .message-text p .cursor")
    cursor = page.locator(f"{LAST_ANSWER} .cursor")
    assert cursor.get_attribute("aria-hidden") == "true"
    snapshot = page.locator(LAST_ANSWER).aria_snapshot()
    assert "Partly written" in snapshot
    assert "▍" not in snapshot
    assert "…" not in snapshot
    page.keyboard.press("Escape")  # Esc stops, from anywhere on the page
    chat.wait_for_answer_marked("stopped")
    assert page.locator(f"{LAST_ANSWER} .cursor").count() == 0


def test_arabic_is_laid_out_right_to_left(chat: ChatPage, page: Page, chat_server):
    app = chat_server(Behaviour(tokens=(ARABIC,)))
    page.goto(app.url)
    page.fill("#prompt", "قل شيئا بالعربية")
    assert page.evaluate("getComputedStyle(document.getElementById('prompt')).direction") == "rtl"
    page.press("#prompt", "Enter")
    chat.wait_for_answer_marked("complete")
    direction = "(e) => getComputedStyle(e).direction"
    assert page.locator("#log > .message.user .message-text").evaluate(direction) == "rtl"
    assert page.locator(f"{LAST_ANSWER} .message-text p").evaluate(direction) == "rtl"
    page.fill("#prompt", "English again")
    assert page.evaluate("getComputedStyle(document.getElementById('prompt')).direction") == "ltr"


def test_keyboard_shortcuts(browser: Browser, conversation):
    app, url = conversation
    context = new_context(browser, permissions=["clipboard-read", "clipboard-write"])
    try:
        page = open_page(context, url)
        page.focus("#scroller")
        page.keyboard.press("Shift+Escape")  # the message field
        assert page.evaluate("document.activeElement.id") == "prompt"

        page.keyboard.press("Control+Shift+C")  # the last answer's Markdown
        expect(page.locator("#status")).to_have_text("Copied the last answer")
        assert page.evaluate("navigator.clipboard.readText()") == ANSWER

        page.evaluate("navigator.clipboard.writeText('')")
        page.keyboard.press("Control+Shift+;")  # the last code block
        expect(page.locator("#status")).to_have_text("Copied the last code block")
        assert page.evaluate("navigator.clipboard.readText()") == CODE

        page.keyboard.press("Control+/")  # the list of shortcuts
        dialog = page.locator("#shortcuts-dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("Copy the last answer")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        page.click("#shortcuts-button")  # and from the hint under the composer
        expect(dialog).to_be_visible()
        page.keyboard.press("Escape")

        page.keyboard.press("Control+Shift+O")  # a new chat
        page.wait_for_url(f"{app.url}/")
    finally:
        context.close()
