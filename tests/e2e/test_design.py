"""What a designer saw on the chat page (#13, item 6), each fixed and held so: the status line
in view when an answer ends, a "jump to latest" button, errors said once in plain words with a
character counter and a Retry that counts down Retry-After, no lone "…" after an early stop,
a Send/Stop button of one size, one column for messages and composer, a phone layout without
a keyboard popping up, starter prompts on the empty page; and the README's screenshots.

`CHATAPP_SCREENSHOTS=docs` (scripts/screenshots) writes the screenshots into docs/ instead of
artifacts/.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.conftest import ChatappServers
from tests.e2e.chat_page import LAST_ANSWER, ChatPage
from tests.e2e.test_page_markdown import ANSWER, QUESTION, pieces
from tests.support.fake_upstream import Behaviour, FakeUpstream

pytestmark = pytest.mark.e2e

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
LONG = Behaviour(
    tokens=tuple(f"Paragraph {i} of a long answer.\n\n" for i in range(120)), token_interval_s=0.01
)
SLOW = Behaviour(tokens=tuple(f"word{i} " for i in range(400)), token_interval_s=0.03)
REPOSITORY = Path(__file__).resolve().parents[2]

# Is the element wholly inside the part of the conversation that is on screen?
IN_VIEW = """(element) => {
  const box = element.getBoundingClientRect();
  const view = document.getElementById("scroller").getBoundingClientRect();
  return box.height > 0 && box.top >= view.top - 1 && box.bottom <= view.bottom + 1;
}"""
DISTANCE_TO_END = """(() => {
  const s = document.getElementById("scroller");
  return s.scrollHeight - s.scrollTop - s.clientHeight;
})()"""


def new_context(browser: Browser, phone: bool = False, **options) -> BrowserContext:
    context = browser.new_context(
        viewport=PHONE if phone else DESKTOP, is_mobile=phone, has_touch=phone, bypass_csp=True, **options
    )
    context.set_default_timeout(15_000)
    return context


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
@pytest.mark.parametrize("ending", ["complete", "stopped"])
def test_the_status_line_is_in_view_when_the_answer_ends(
    browser: Browser, chat_server, phone: bool, ending: str
):
    app = chat_server(LONG if ending == "complete" else SLOW)
    context = new_context(browser, phone)
    try:
        chat = ChatPage(context.new_page())
        page = chat.page
        page.goto(app.url)
        chat.send("a long answer, please", tap=True)
        if ending == "stopped":
            page.wait_for_function("document.getElementById('scroller').scrollTop > 100")
            chat.stop()
        chat.wait_for_answer_stored(ending)
        meta = page.locator(f"{LAST_ANSWER} .meta")
        expect(meta).to_have_text(re.compile(r"\d+ tokens" if ending == "complete" else r"^Stopped"))
        assert meta.evaluate(IN_VIEW), "the status line is below the fold"
    finally:
        context.close()


def test_jump_to_latest_shows_after_scrolling_up_and_brings_the_reader_back(
    chat: ChatPage, page: Page, chat_server
):
    # 7 s of answer: it still grows after the scrolling and clicking below, on a slow machine too.
    paragraphs = tuple(f"Paragraph {i} of a long answer.\n\n" for i in range(240))
    app = chat_server(Behaviour(tokens=paragraphs, token_interval_s=0.03))
    page.goto(app.url)
    jump = page.locator("#jump")
    chat.send("a long answer, please", tap=True)
    page.wait_for_function("document.getElementById('scroller').scrollTop > 400")
    expect(jump).to_be_hidden()  # following the answer: nothing to jump to

    page.evaluate("document.getElementById('scroller').scrollTop = 0")
    expect(jump).to_be_visible()
    jump.click()
    expect(jump).to_be_hidden()
    assert page.evaluate(DISTANCE_TO_END) < 48
    grown = page.evaluate("document.getElementById('scroller').scrollHeight")
    page.wait_for_function(f"document.getElementById('scroller').scrollHeight > {grown} + 200")
    assert page.evaluate(DISTANCE_TO_END) < 48, "not following the answer again"

    chat.wait_for_answer_stored()  # after the answer, too
    page.evaluate("document.getElementById('scroller').scrollTop = 0")
    expect(jump).to_be_visible()
    jump.click()
    assert page.evaluate(DISTANCE_TO_END) < 48
    expect(page.locator(f"{LAST_ANSWER} .meta")).to_be_visible()


def test_a_message_near_the_limit_is_counted_and_one_over_it_is_not_sent(
    chat: ChatPage, page: Page, chat_server, upstream
):
    app = chat_server(CHATAPP_MAX_MESSAGE_CHARS="40")
    page.goto(app.url)
    counter = page.locator("#counter")
    page.fill("#prompt", "x" * 20)
    expect(counter).to_be_hidden()
    page.fill("#prompt", "x" * 37)
    expect(counter).to_be_visible()
    expect(counter).to_have_text("37 / 40")
    page.fill("#prompt", "x" * 45)
    expect(counter).to_have_text("45 / 40")
    expect(counter).to_have_class(re.compile(r"\bover\b"))

    page.press("#prompt", "Enter")
    expect(page.locator("#problem-text")).to_have_text(
        "This message is 5 characters over the limit of 40. Shorten it to send it."
    )
    assert page.locator("#log > .message").count() == 0
    assert upstream.requests_for(app.model) == []
    assert page.input_value("#prompt") == "x" * 45

    page.fill("#prompt", "x" * 40)
    page.dispatch_event("#prompt", "input")
    expect(page.locator("#problem")).to_be_hidden()
    page.press("#prompt", "Enter")
    chat.wait_for_answer_stored()


def test_a_rate_limited_send_counts_down_retry_after_then_retry_sends_it(
    chat: ChatPage, page: Page, chat_server
):
    app = chat_server()
    refused: list[str] = []

    def refuse_once(route):
        if refused:
            return route.continue_()
        refused.append(route.request.url)
        body = {"error": {"code": "rate_limited", "message": "Rate limit exceeded: 30 per 1 minute"}}
        return route.fulfill(
            status=429, headers={"Retry-After": "3"}, content_type="application/json", body=json.dumps(body)
        )

    page.route(re.compile(r"/messages$"), refuse_once)
    page.goto(app.url)
    chat.send("hello", tap=True)
    problem = page.locator("#problem-text")
    expect(problem).to_have_text("You are sending messages faster than this server allows.")
    retry = page.locator("#problem-retry")
    expect(retry).to_have_text(re.compile(r"Retry in [23] s"))
    expect(retry).to_be_disabled()
    expect(retry).to_have_text("Retry in 1 s")
    expect(retry).to_have_text("Retry")
    expect(retry).to_be_enabled()
    assert page.locator("#log > .message").count() == 0  # the message went back into the field only
    assert page.input_value("#prompt") == "hello"

    retry.click()
    chat.wait_for_answer_stored()
    expect(page.locator("#problem")).to_be_hidden()
    expect(page.locator("#log > .message.user .message-text")).to_have_text(["hello"])
    assert page.input_value("#prompt") == ""


def test_the_server_s_own_rate_limit_is_counted_down(chat: ChatPage, page: Page, chat_server):
    app = chat_server(CHATAPP_RATE_LIMIT="1/minute")
    page.goto(app.url)
    chat.send("first", tap=True)
    chat.wait_for_answer_stored()
    chat.send("second", tap=True)
    retry = page.locator("#problem-retry")
    expect(retry).to_have_text(re.compile(r"Retry in \d+ s"))
    countdown = retry.text_content()
    assert countdown is not None
    found = re.search(r"\d+", countdown)
    assert found is not None, countdown
    first = int(found.group())
    assert first > 2
    expect(retry).to_have_text(f"Retry in {first - 1} s")  # it counts down
    expect(retry).to_be_disabled()
    expect(page.locator("#log > .message")).to_have_count(2)
    assert page.input_value("#prompt") == "second"


def test_an_answer_that_fails_says_so_once_in_plain_words_and_offers_retry(
    chat: ChatPage, page: Page, chat_server
):
    app = chat_server(Behaviour(status=429, retry_after="1"))
    page.goto(app.url)
    chat.send("hello?", tap=True)
    chat.wait_for_answer_stored("error")
    notice = page.locator(f"{LAST_ANSWER} .notice.error")
    expect(notice).to_have_count(1)
    expect(notice).to_have_text(
        "The model server is over its rate limit or quota. Wait a moment and try again."
    )
    # A line of the answer in the error colour: no tinted box inside a bubble.
    assert notice.evaluate("(e) => getComputedStyle(e).backgroundColor") == "rgba(0, 0, 0, 0)"
    assert (
        notice.evaluate("(e) => getComputedStyle(e.closest('.bubble')).backgroundColor") == "rgba(0, 0, 0, 0)"
    )
    expect(page.locator("#problem")).to_be_hidden()  # said once, in the answer
    expect(page.locator(f"{LAST_ANSWER} .meta")).to_have_text("Failed")
    expect(page.locator(f"{LAST_ANSWER} .retry")).to_be_visible()


def test_a_stop_before_the_first_token_leaves_no_lone_bubble(
    chat: ChatPage, page: Page, chat_server, upstream
):
    app = chat_server(Behaviour(silent=True))
    page.goto(app.url)
    chat.send("think hard", tap=True)
    chat.wait_for_answer_started()
    # While it waits, the answer shows the cursor alone (not read out), not a text "…".
    expect(page.locator(f"{LAST_ANSWER} .message-text > .cursor")).to_be_visible()
    assert chat.answer_text() == ""
    chat.stop()
    chat.wait_for_answer_stored("stopped")
    expect(page.locator(f"{LAST_ANSWER} .bubble")).to_be_hidden()
    expect(page.locator(f"{LAST_ANSWER} .meta")).to_have_text("Stopped before any answer")
    assert page.locator(f"{LAST_ANSWER} .meta").evaluate(IN_VIEW)
    assert page.locator("#log .cursor").count() == 0


def test_send_and_stop_are_one_size_and_the_input_stays_put(chat: ChatPage, page: Page, chat_server):
    app = chat_server(SLOW)
    page.goto(app.url)
    box = "(e) => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }"
    page.fill("#prompt", "a long answer, please")
    before = page.locator("#send").evaluate(box), page.locator("#prompt").evaluate(box)
    page.click("#send")
    expect(page.locator("#send")).to_have_attribute("data-mode", "stop")
    expect(page.locator("#send")).to_have_accessible_name("Stop generating")
    page.wait_for_function("document.querySelector('#prompt').value === ''")
    during = page.locator("#send").evaluate(box), page.locator("#prompt").evaluate(box)
    assert during == before
    chat.stop()
    chat.wait_for_answer_stored("stopped")
    assert (page.locator("#send").evaluate(box), page.locator("#prompt").evaluate(box)) == before


@pytest.mark.parametrize("width", [1280, 900, 390])
def test_bubbles_answers_and_the_composer_share_one_column(browser: Browser, chat_server, width: int):
    app = chat_server(Behaviour(tokens=pieces(ANSWER)))
    context = browser.new_context(viewport={"width": width, "height": 800}, bypass_csp=True)
    try:
        chat = ChatPage(context.new_page())
        page = chat.page
        page.goto(app.url)
        chat.send(QUESTION, tap=True)
        chat.wait_for_answer_stored()
        edges = (
            "(e) => [Math.round(e.getBoundingClientRect().left), Math.round(e.getBoundingClientRect().right)]"
        )
        composer = page.locator("#composer").evaluate(edges)
        answer = page.locator(f"{LAST_ANSWER} .bubble").evaluate(edges)
        question = page.locator("#log > .message.user .bubble").evaluate(edges)
        assert answer == composer, (answer, composer)  # answers span the column
        assert question[1] == composer[1], (question, composer)  # yours end it
        assert question[0] > composer[0], (question, composer)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        context.close()


def test_on_a_phone_the_input_waits_for_a_tap_and_bubbles_are_tight(browser: Browser, chat_server):
    app = chat_server()
    context = new_context(browser, phone=True)
    try:
        chat = ChatPage(context.new_page())
        page = chat.page
        page.goto(app.url)
        assert page.evaluate("document.activeElement.id") != "prompt"  # no keyboard popping up on load
        chat.send("from my phone", tap=True)
        chat.wait_for_answer_stored()
        padding = page.locator("#log > .message.user .bubble").evaluate(
            "(e) => parseFloat(getComputedStyle(e).paddingLeft)"
        )
        assert padding <= 12
        gutter = page.locator(f"{LAST_ANSWER} .bubble").evaluate("(e) => e.getBoundingClientRect().left")
        assert gutter <= 12
    finally:
        context.close()


def test_on_a_desktop_the_input_is_focused_on_load(page: Page, chat_server):
    app = chat_server()
    page.goto(app.url)
    assert page.evaluate("document.activeElement.id") == "prompt"


def test_the_empty_page_offers_starter_prompts_that_send(chat: ChatPage, page: Page, chat_server, upstream):
    app = chat_server()
    page.goto(app.url)
    starters = page.locator("#empty .starter")
    assert starters.count() >= 3
    expect(page.locator("#empty")).to_contain_text("What can I help with?")
    prompt = starters.first.get_attribute("data-prompt")
    assert prompt is not None
    starters.first.click()
    chat.wait_for_answer_stored()
    expect(page.locator("#empty")).to_be_hidden()
    expect(page.locator("#log > .message.user .message-text")).to_have_text([prompt])
    assert upstream.requests_for(app.model)[-1].body["messages"][-1]["content"] == prompt


def test_readme_screenshots(
    browser: Browser, chatapp_server: ChatappServers, upstream: FakeUpstream, tmp_path: Path, artifacts: Path
):
    """The README's screenshots, light and dark, desktop and phone: a conversation whose answer holds
    code, a table and a formula. Written to artifacts/, or to docs/ with CHATAPP_SCREENSHOTS=docs."""
    folder = REPOSITORY / "docs" if os.environ.get("CHATAPP_SCREENSHOTS") == "docs" else artifacts
    model = upstream.model(Behaviour(tokens=pieces(ANSWER)), name="local-model")
    server = chatapp_server(upstream, CHATAPP_MODEL=model, DATABASE_URL=f"sqlite:///{tmp_path}/chat.sqlite3")
    try:
        context = new_context(browser)
        chat = ChatPage(context.new_page())
        page = chat.page
        page.goto(server.url)
        chat.send(QUESTION, tap=True)
        chat.wait_for_answer_stored()
        url = page.url
        context.close()
        for scheme in ("light", "dark"):
            for phone in (False, True):
                context = new_context(browser, phone, color_scheme=scheme)
                page = context.new_page()
                page.goto(url)
                page.wait_for_selector(f"{LAST_ANSWER} .message-text.markdown .katex")
                page.evaluate("document.fonts.ready")
                if phone:  # from the formula down: the formula, the code and the table
                    page.locator(f"{LAST_ANSWER} .md-math-display").evaluate("(e) => e.scrollIntoView()")
                else:
                    page.evaluate("document.getElementById('scroller').scrollTop = 0")
                page.locator("#prompt").blur()
                name = f"screenshot-{'phone-' if phone else ''}{scheme}.png"
                page.screenshot(path=folder / name)
                context.close()
                assert 10_000 < (folder / name).stat().st_size < 300_000, name
    finally:
        chatapp_server.retire(server)
