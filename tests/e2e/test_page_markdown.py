"""Answers rendered as Markdown in the chat page (#13, item 1): streamed by the fake upstream in
awkward pieces, they render as code, tables and formulas while they stream; the DOM they settle
to is the DOM the same answer gets when the page is loaded again (from the server's plain text);
inline <think> goes to the Thinking section; your own messages stay plain text.

ANSWER and `pieces` are shared with test_accessibility.py and test_design.py (and the README's
screenshots): an answer that holds code, a table and a formula.
"""

from __future__ import annotations

import itertools
import random
import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.chat_page import LAST_ANSWER, ChatPage, CspViolations
from tests.support.fake_upstream import Behaviour

pytestmark = pytest.mark.e2e

QUESTION = "Explain compound interest, with the formula, a Python function and a table of rates."
CODE = '''def compound(principal: float, rate: float, years: int, periods: int = 12) -> float:
    """Balance after `years` at `rate`, compounded `periods` times a year."""
    return principal * (1 + rate / periods) ** (periods * years)'''
ANSWER = f"""Compound interest earns interest on the interest already earned. With a principal $P$,
a yearly rate $r$, $n$ periods a year and $t$ years, the balance is

$$
A = P\\left(1 + \\frac{{r}}{{n}}\\right)^{{nt}}
$$

```python
{CODE}
```

What **1,000** grows to in 10 years, compounded monthly:

| Rate | Balance | Interest |
|-----:|--------:|---------:|
| 3 %  | 1,349.35 | 349.35 |
| 5 %  | 1,647.01 | 647.01 |
| 7 %  | 2,009.66 | 1,009.66 |
"""
# Pieces are also cut inside each of these, where a half-written answer is most likely to render wrongly.
AWKWARD = ["```", "**", "|", "$$", "\\frac", "\n"]

# Each frame, until the last answer is final: what it shows while it streams.
WATCH_FRAMES = """() => {
  window.frames = [];
  const tick = () => {
    const answer = document.querySelector("#log > .message.assistant:last-child");
    if (answer) {
      window.frames.push({
        streaming: answer.dataset.state === "streaming",
        math: !!answer.querySelector(".message-text .md-math-display .katex"),
        code: !!answer.querySelector(".message-text .md-code-block pre code .hljs-keyword"),
        table: answer.querySelectorAll(".message-text .md-table tbody tr").length,
      });
    }
    if (!answer || answer.dataset.state === "streaming") requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def pieces(text: str, seed: int = 13) -> tuple[str, ...]:
    """`text` in pieces of 1-6 characters, also cut inside every occurrence of each AWKWARD marker."""
    rng = random.Random(seed)
    cuts = {
        i
        for marker in AWKWARD
        for m in re.finditer(re.escape(marker), text)
        for i in range(m.start() + 1, m.end())
    }
    at = 0
    while at < len(text):
        at += rng.randint(1, 6)
        cuts.add(at)
    edges = [0, *sorted(c for c in cuts if 0 < c < len(text)), len(text)]
    return tuple(text[a:b] for a, b in itertools.pairwise(edges))


def test_an_answer_renders_code_a_table_and_a_formula_while_it_streams_and_the_same_after_a_reload(
    chat: ChatPage, page: Page, chat_server
):
    app = chat_server(Behaviour(tokens=pieces(ANSWER), token_interval_s=0.01))
    page.goto(app.url)
    page.evaluate(WATCH_FRAMES)
    chat.send(QUESTION)
    chat.wait_for_answer_stored()

    frames = page.evaluate("window.frames")
    streaming = [f for f in frames if f["streaming"]]
    assert any(f["math"] and f["code"] and f["table"] >= 1 for f in streaming), (
        "never all three while streaming"
    )
    # Rows appear one by one while the table streams, and none is lost once shown.
    rows = [f["table"] for f in streaming if f["table"]]
    assert rows == sorted(rows), rows

    answer = page.locator(f"{LAST_ANSWER} .message-text")
    expect(answer.locator(".md-code-block .md-code-lang")).to_have_text("python")
    assert answer.locator(".md-code-block pre > code").text_content() == CODE + "\n"
    expect(answer.locator(".md-table th")).to_have_text(["Rate", "Balance", "Interest"])
    expect(answer.locator(".md-table tbody tr")).to_have_count(3)
    assert answer.locator(".md-table td.md-align-right").count() == 9
    expect(answer.locator(".md-math-display .katex-display")).to_have_count(1)
    expect(answer.locator(".katex:not(.md-math-display .katex)")).to_have_count(4)  # $P$, $r$, $n$, $t$
    assert answer.locator("strong").all_text_contents() == ["1,000"]
    shown = answer.text_content()
    assert shown is not None
    assert "$$" not in shown
    assert "```" not in shown

    # Settled to exactly the one-piece rendering, and to what a reload renders from the stored text.
    streamed = answer.inner_html()
    assert streamed == chat.rendered(ANSWER)
    page.reload()
    page.wait_for_selector(f"{LAST_ANSWER} .message-text.markdown")
    assert chat.answer_html() == streamed
    assert chat.problems == []


def test_think_tags_split_across_tokens_go_to_the_thinking_section(chat: ChatPage, page: Page, chat_server):
    tokens = ("<th", "ink>Let me ", "check **this** ", "with `code`.</th", "ink>\n\nThe answer is **42**.")
    app = chat_server(Behaviour(tokens=tokens))
    page.goto(app.url)
    chat.send("what is it?")
    chat.wait_for_answer_stored()

    thinking = page.locator(f"{LAST_ANSWER} details.thinking")
    assert thinking.get_attribute("open") is None
    expect(thinking.locator(".thinking-text strong")).to_have_text("this")
    expect(thinking.locator(".thinking-text code")).to_have_text("code")
    answer = page.locator(f"{LAST_ANSWER} .message-text")
    expect(answer).to_have_text("The answer is 42.")
    expect(answer.locator("strong")).to_have_text("42")
    shown = page.locator(LAST_ANSWER).text_content()
    assert shown is not None
    assert "think>" not in shown

    # Stored with the tags in its text, the answer is split the same way when the page loads.
    streamed = chat.answer_html(".bubble")
    page.reload()
    page.wait_for_selector(f"{LAST_ANSWER} .message-text.markdown")
    assert chat.answer_html(".bubble") == streamed


def test_reasoning_events_render_as_markdown_in_the_thinking_section(chat: ChatPage, page: Page, chat_server):
    app = chat_server(Behaviour(reasoning=("First **this**", ", then", " `that`."), tokens=("Done.",)))
    page.goto(app.url)
    chat.send("think first")
    chat.wait_for_answer_stored()
    body = page.locator(f"{LAST_ANSWER} .thinking-text")
    expect(body.locator("strong")).to_have_text("this")
    expect(body.locator("code")).to_have_text("that")
    streamed = chat.answer_html(".bubble")
    page.reload()
    page.wait_for_selector(f"{LAST_ANSWER} .thinking-text.markdown", state="attached")  # collapsed
    assert chat.answer_html(".bubble") == streamed


def test_the_copy_button_of_a_code_block_copies_its_code_exactly(browser: Browser, chat_server):
    app = chat_server(Behaviour(tokens=pieces(ANSWER)))
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"], bypass_csp=True)
    try:
        chat = ChatPage(context.new_page())
        page = chat.page
        page.goto(app.url)
        chat.send(QUESTION)
        chat.wait_for_answer_stored()
        button = page.locator(f"{LAST_ANSWER} .md-code-block button.copy-code")
        expect(button).to_have_accessible_name("Copy code")
        button.click()
        expect(button).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == CODE
    finally:
        context.close()


def test_your_own_message_stays_plain_text(chat: ChatPage, page: Page, chat_server):
    app = chat_server()
    page.goto(app.url)
    text = "**x** and `y`\n\n- not a list"
    chat.send(text)
    chat.wait_for_answer_stored()
    mine = page.locator("#log > .message.user .message-text")
    assert mine.text_content() == text
    assert mine.locator("*").count() == 0
    page.reload()
    assert page.locator("#log > .message.user .message-text").text_content() == text
    assert page.locator("#log > .message.user .message-text *").count() == 0


def test_without_scripts_a_stored_answer_is_its_plain_text(
    chat: ChatPage, page: Page, chat_server, browser: Browser
):
    app = chat_server(Behaviour(tokens=pieces(ANSWER)))
    page.goto(app.url)
    chat.send(QUESTION)
    chat.wait_for_answer_stored()
    context = browser.new_context(java_script_enabled=False)
    try:
        still = context.new_page()
        still.goto(page.url)
        assert still.locator("#log > .message.assistant .message-text").text_content() == ANSWER
    finally:
        context.close()


def test_rendered_answers_run_under_the_content_security_policy(browser: Browser, chat_server):
    app = chat_server(Behaviour(tokens=pieces(ANSWER), reasoning=("Some *thought*.",)))
    context = browser.new_context()  # the policy enforced, as in a person's browser
    try:
        chat = ChatPage(context.new_page())
        page = chat.page
        violations = CspViolations(page)
        page.goto(app.url)
        chat.send(QUESTION)
        chat.wait_for_answer_stored()
        page.reload()
        page.wait_for_selector(f"{LAST_ANSWER} .message-text.markdown .katex")
        # KaTeX's fonts and highlight.js's theme came from the page's own origin.
        assert page.evaluate("document.fonts.check('16px KaTeX_Main')")
        assert violations.seen() == []
        assert chat.problems == []
    finally:
        context.close()
