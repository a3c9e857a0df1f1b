"""What a person does on the chat page, in a real headless Chromium against chatapp under gunicorn."""

from __future__ import annotations

import os
import signal

import pytest
from playwright.sync_api import Page

from harness.gunicorn import GunicornServer
from tests.e2e.chat_page import LAST_ANSWER, ChatPage, CspViolations, assert_the_model_stopped
from tests.support.fake_upstream import Behaviour

pytestmark = pytest.mark.e2e

TRICKLE = Behaviour(
    tokens=(
        "Streaming",
        " answer",
        " with",
        " café",
        " 中文",
        " 🚀",
        "\nsecond",
        " line",
        *(f" w{i}" for i in range(22)),
    ),
    token_interval_s=0.04,
)

RECORD_LENGTHS = """() => {
  window.seenLengths = [];
  const tick = () => {
    const answer = document.querySelector("#log > .message.assistant:last-child");
    if (answer) window.seenLengths.push(answer.querySelector(".message-text").textContent.length);
    if (!answer || answer.dataset.state === "streaming") requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def test_enter_sends_and_the_answer_grows_visibly_to_the_exact_text(chat: ChatPage, page: Page, chat_server):
    app = chat_server(TRICKLE)
    page.goto(app.url)
    chat.send("Hello there")
    page.evaluate(RECORD_LENGTHS)
    assert chat.last_answer.get_attribute("aria-busy") == "true"
    text = chat.wait_for_answer_stored("complete")

    assert text == TRICKLE.text
    lengths = page.evaluate("window.seenLengths")
    intermediate = {n for n in lengths if 0 < n < len(text)}
    assert len(intermediate) >= 3, lengths
    assert chat.last_answer.get_attribute("aria-busy") == "false"
    assert page.locator("#status").text_content() == "Response complete"
    assert page.input_value("#model-select") == app.model
    meta = page.locator(f"{LAST_ANSWER} .meta").text_content()
    assert meta is not None
    assert "tokens" in meta
    assert page.locator("#send").text_content() == "Send"
    assert chat.problems == []


def test_a_second_message_sends_the_first_exchange_as_history(
    chat: ChatPage, page: Page, chat_server, upstream
):
    app = chat_server()
    page.goto(app.url)
    chat.send("first question")
    chat.wait_for_answer_stored("complete")
    first_answer = Behaviour().text
    assert chat.shows(first_answer)
    chat.send("second question")
    chat.wait_for_answer_stored("complete")

    bodies = [r.body for r in upstream.requests_for(app.model)]
    assert len(bodies) == 2
    assert bodies[1]["messages"] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": first_answer},
        {"role": "user", "content": "second question"},
    ]


def test_shift_enter_makes_a_new_line_and_enter_while_composing_does_not_send(
    chat: ChatPage, page: Page, chat_server, upstream
):
    app = chat_server()
    page.goto(app.url)
    page.fill("#prompt", "line one")
    page.press("#prompt", "Shift+Enter")
    page.keyboard.type("line two")
    assert page.input_value("#prompt") == "line one\nline two"

    # An input method is composing (Chinese or Japanese): its Enter confirms the text, it does not send.
    page.evaluate(
        """() => document.getElementById("prompt").dispatchEvent(new KeyboardEvent(
             "keydown", {key: "Enter", isComposing: true, bubbles: true, cancelable: true}))"""
    )
    # dispatchEvent runs the page's handler before it returns: a send would have shown its message.
    assert page.locator(".message").count() == 0
    assert upstream.requests_for(app.model) == []

    page.press("#prompt", "Enter")
    chat.wait_for_answer_stored("complete")
    # A request the composing Enter had started would have reached the upstream before this one.
    sent = [r.body["messages"][-1]["content"] for r in upstream.requests_for(app.model)]
    assert sent == ["line one\nline two"]


def test_stop_mid_answer_keeps_the_partial_text_marked_stopped_and_ends_the_upstream(
    chat: ChatPage, page: Page, chat_server, upstream
):
    slow = Behaviour(tokens=tuple(f" word{i}" for i in range(300)), token_interval_s=0.05)
    app = chat_server(slow)
    page.goto(app.url)
    chat.send("tell me a long story")
    chat.wait_for_answer_longer_than(20)
    assert page.locator("#send").text_content() == "Stop"
    stopped_at = chat.stop()
    partial = chat.wait_for_answer_stored("stopped")
    # Once the upstream has let go no token is left to come, and after the next paint none to show.
    assert_the_model_stopped(upstream.wait_for_request(app.model), stopped_at)
    chat.after_next_paint()
    assert chat.answer_text() == partial, "text kept growing"
    assert 0 < len(partial) < len(slow.text)
    meta = page.locator(f"{LAST_ANSWER} .meta").text_content()
    assert meta is not None
    assert "Stopped" in meta
    assert page.locator("#status").text_content() == "Stopped"
    stored = chat.stored_answer()["content"]
    assert stored.strip() == partial  # the page shows what is stored (as Markdown: a paragraph, trimmed)

    # The stopped answer is part of the conversation sent next.
    upstream.set_behaviour(app.model, Behaviour())
    chat.send("and then?")
    chat.wait_for_answer_stored("complete")
    history = upstream.requests_for(app.model)[-1].body["messages"]
    assert history[1] == {"role": "assistant", "content": stored}


def test_a_dropped_connection_shows_the_answer_as_interrupted(
    chat: ChatPage, page: Page, chat_server, upstream
):
    app = chat_server(Behaviour(tokens=tuple(f" t{i}" for i in range(300)), token_interval_s=0.05))
    page.goto(app.url)
    chat.send("hi")
    chat.wait_for_answer_longer_than(10)
    # The worker dies mid-answer: the browser's connection ends without a `done` event.
    for pid in app.server.worker_pids():
        os.kill(pid, signal.SIGKILL)
    chat.wait_for_answer_marked("interrupted")  # the server marks it when its worker is found gone
    meta = page.locator(f"{LAST_ANSWER} .meta").text_content()
    assert meta is not None
    assert "Interrupted" in meta
    assert page.locator("#send").text_content() == "Send"


def test_an_upstream_error_shows_inline_and_the_next_message_works(
    chat: ChatPage, page: Page, chat_server, upstream
):
    app = chat_server(Behaviour(status=429, retry_after="1"))
    page.goto(app.url)
    chat.send("hello?")
    chat.wait_for_answer_stored("error")
    notice = page.locator(f"{LAST_ANSWER} .notice.error").text_content()
    assert notice is not None
    assert "rate limit" in notice

    upstream.set_behaviour(app.model, Behaviour())  # the model server recovers
    chat.send("again")
    chat.wait_for_answer_stored("complete")
    assert chat.shows(Behaviour().text)
    assert chat.problems == []


def test_a_rejected_request_says_why_once_and_puts_the_message_back_in_the_input(
    chat: ChatPage, page: Page, chat_server
):
    app = chat_server(CHATAPP_MAX_CONVERSATION_CHARS="40")
    page.goto(app.url)
    text = "x" * 60
    chat.send(text)
    page.wait_for_selector("#problem:not([hidden])")
    # Said once, in plain words; the message is not shown as sent, it is back in the input.
    problem = page.locator("#problem-text").text_content()
    assert problem is not None
    assert "too long" in problem
    assert page.locator("#log > .message").count() == 0
    assert page.locator("#log .notice.error").count() == 0
    assert page.input_value("#prompt") == text
    assert page.locator("#problem-retry").is_hidden()  # the same message would be refused again
    chat.send("short")
    chat.wait_for_answer_stored("complete")
    assert page.locator("#problem").is_hidden()


def test_model_output_is_shown_as_text_and_runs_nothing(chat: ChatPage, page: Page, chat_server):
    hostile = Behaviour(
        tokens=(
            "<img src=x onerror=alert(1)>",
            " <script>alert(2)</script>",
            ' <a href="javascript:alert(3)">click</a>',
            " [link](javascript:alert(4))",
        )
    )
    app = chat_server(hostile)
    page.goto(app.url)
    chat.send("be evil")
    assert chat.wait_for_answer_stored("complete") == hostile.text
    assert page.locator("#log img, #log script, #log a").count() == 0
    chat.after_next_paint()  # an error or dialog the painted text caused is reported by now
    assert chat.problems == []


def test_reasoning_shows_in_a_collapsed_thinking_section(chat: ChatPage, page: Page, chat_server):
    app = chat_server(Behaviour(reasoning=("First I consider", " the question.")))
    page.goto(app.url)
    chat.send("think first")
    chat.wait_for_answer_stored("complete")
    thinking = page.locator(f"{LAST_ANSWER} details.thinking")
    assert thinking.get_attribute("open") is None
    assert thinking.locator(".thinking-text").text_content() == "First I consider the question."


def test_new_chat_clears_the_conversation(chat: ChatPage, page: Page, chat_server, upstream):
    app = chat_server()
    page.goto(app.url)
    chat.send("remember this")
    chat.wait_for_answer_stored("complete")
    page.click("#new-chat")
    assert page.locator(".message").count() == 0
    chat.send("fresh start")
    chat.wait_for_answer_stored("complete")
    assert len(upstream.requests_for(app.model)[-1].body["messages"]) == 1


def test_works_on_a_phone_sized_screen(browser, chat_server):
    app = chat_server()
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, has_touch=True, is_mobile=True, bypass_csp=True
    )
    try:
        phone = ChatPage(context.new_page())
        phone.page.goto(app.url)
        phone.send("from my phone")  # on touch screens Enter is a new line
        assert phone.page.locator(".message").count() == 0
        phone.page.click("#send")
        phone.wait_for_answer_stored("complete")
        width = phone.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, "the page scrolls sideways"
    finally:
        context.close()


def test_the_page_works_with_the_demo_model_and_no_configuration(browser, artifacts, tmp_path):
    server = GunicornServer(
        {"CHATAPP_DEMO_TOKENS_PER_S": "400", "DATABASE_URL": f"sqlite:///{tmp_path}/chat.sqlite3"}
    ).start()
    try:
        for scheme in ("light", "dark"):
            context = browser.new_context(viewport={"width": 900, "height": 720}, color_scheme=scheme)
            try:
                chat = ChatPage(context.new_page())
                chat.page.goto(server.url)
                assert chat.page.input_value("#model-select") == "chatapp-demo"
                chat.send("What can you do?")
                text = chat.wait_for_answer_stored("complete")
                assert "What can you do?" in text
                assert "🚀" in text
                chat.page.screenshot(path=artifacts / f"chat-{scheme}.png")
            finally:
                context.close()
    finally:
        server.stop()
    assert (artifacts / "chat-light.png").stat().st_size > 10_000


def test_stop_before_the_first_token_ends_a_silent_upstream(
    chat: ChatPage, page: Page, chat_server, upstream
):
    app = chat_server(Behaviour(silent=True))
    page.goto(app.url)
    stop_requests = []
    page.on("request", lambda r: stop_requests.append(r.url) if r.url.endswith("/stop") else None)
    chat.send("think hard")
    record = upstream.wait_for_request(app.model)
    chat.wait_for_answer_started()  # the model says nothing
    stopped_at = chat.stop()
    chat.wait_for_answer_stored("stopped")
    assert_the_model_stopped(record, stopped_at)
    assert any("/api/chat/" in url for url in stop_requests)
    assert page.locator(".notice.error:visible").count() == 0
    assert chat.problems == []


def test_an_answer_stopped_before_its_first_token_goes_back_as_an_empty_assistant_turn(
    chat: ChatPage, page: Page, chat_server, upstream
):
    """The page left such a turn out, so two user messages followed each other in the history;
    docs/api.md says it is sent back as an empty assistant message."""
    app = chat_server(Behaviour(silent=True))
    page.goto(app.url)
    sent = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/messages") else None)
    chat.send("think hard")
    upstream.wait_for_request(app.model)
    chat.wait_for_answer_started()
    chat.stop()
    chat.wait_for_answer_stored("stopped")
    assert page.locator(f"{LAST_ANSWER} .meta").text_content() == "Stopped before any answer"
    assert page.locator(f"{LAST_ANSWER} .bubble").is_hidden(), "an empty bubble with '…' looks still typing"
    stopped_id = chat.last_answer.get_attribute("data-id")

    upstream.set_behaviour(app.model, Behaviour())
    chat.send("and now?")
    chat.wait_for_answer_stored("complete")
    expected = [
        {"role": "user", "content": "think hard"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "and now?"},
    ]
    # The page sends each message after the answer it shows; the server adds the history it stored.
    assert sent == [
        {"content": "think hard", "parent_id": None},
        {"content": "and now?", "parent_id": stopped_id},
    ]
    assert upstream.requests_for(app.model)[-1].body["messages"] == expected
    assert chat.problems == []


def test_new_chat_while_an_answer_streams_starts_an_empty_history(
    chat: ChatPage, page: Page, chat_server, upstream
):
    """The stopped answer finishes a moment after the click: it must not land in the new chat."""
    app = chat_server(Behaviour(tokens=tuple(f" word{i}" for i in range(300)), token_interval_s=0.05))
    page.goto(app.url)
    chat.send("tell me a long story")
    chat.wait_for_answer_longer_than(10)
    page.click("#new-chat")
    page.wait_for_selector("#send[data-mode=send]")

    upstream.set_behaviour(app.model, Behaviour())
    chat.send("fresh start")
    chat.wait_for_answer_stored("complete")
    fresh = {"role": "user", "content": "fresh start"}
    assert upstream.requests_for(app.model)[-1].body["messages"] == [fresh]


def test_auto_scroll_follows_the_stream_until_the_reader_scrolls_up(browser, chat_server):
    app = chat_server(Behaviour(tokens=tuple(f"line {i}\n" for i in range(400)), token_interval_s=0.02))
    context = browser.new_context(viewport={"width": 600, "height": 400}, bypass_csp=True)
    try:
        chat = ChatPage(context.new_page())
        page = chat.page
        page.goto(app.url)
        chat.send("a long answer please")
        distance = (
            "(() => { const s = document.getElementById('scroller');"
            " return s.scrollHeight - s.scrollTop - s.clientHeight; })()"
        )
        page.wait_for_function("document.getElementById('scroller').scrollTop > 200")
        assert page.evaluate(distance) < 48  # following

        page.evaluate("document.getElementById('scroller').scrollTop = 0")
        grown_from = page.evaluate("document.getElementById('scroller').scrollHeight")
        page.wait_for_function(f"document.getElementById('scroller').scrollHeight > {grown_from} + 200")
        assert page.evaluate("document.getElementById('scroller').scrollTop") == 0  # left where the reader is

        page.evaluate(
            "(() => { const s = document.getElementById('scroller'); s.scrollTop = s.scrollHeight; })()"
        )
        grown_from = page.evaluate("document.getElementById('scroller').scrollHeight")
        page.wait_for_function(f"document.getElementById('scroller').scrollHeight > {grown_from} + 200")
        assert page.evaluate(distance) < 48  # following again
    finally:
        context.close()


def test_a_fast_stream_is_painted_at_most_once_per_animation_frame(chat: ChatPage, page: Page, chat_server):
    fast = Behaviour(tokens=tuple(f" t{i}" for i in range(1000)), token_interval_s=0.001)
    app = chat_server(fast)
    page.goto(app.url)
    # A paint is a batch of changes to the log: the answer's text is rendered again, or grows.
    page.evaluate(
        """() => {
          window.paints = 0; window.frames = 0;
          new MutationObserver(() => { window.paints += 1; })
            .observe(document.getElementById("log"), {childList: true, characterData: true, subtree: true});
          const count = () => { window.frames++; requestAnimationFrame(count); };
          requestAnimationFrame(count);
        }"""
    )
    chat.send("fast please")
    chat.wait_for_answer_stored("complete")
    assert chat.shows(fast.text)
    paints, frames = page.evaluate("[window.paints, window.frames]")
    assert paints <= frames + 2, (paints, frames)
    assert paints < len(fast.tokens) / 3, "tokens were painted one by one"


def test_the_page_runs_under_its_content_security_policy_with_no_violation(browser, chat_server):
    app = chat_server(Behaviour(reasoning=("hmm",)))
    context = browser.new_context()  # the policy enforced, as in a person's browser
    try:
        chat = ChatPage(context.new_page())
        page = chat.page
        violations = CspViolations(page)
        console = []
        page.on("console", lambda message: console.append(message.text))
        response = page.goto(app.url)
        assert response is not None
        assert "default-src 'self'" in response.headers["content-security-policy"]
        chat.send("hello")
        chat.wait_for_answer_stored("complete")
        page.click(f"{LAST_ANSWER} details.thinking summary")
        page.click("#new-chat")
        chat.send("again")
        chat.wait_for_answer_stored("complete")
        assert violations.seen() == []
        assert not [c for c in console if "Content Security Policy" in c]
        assert chat.problems == []
    finally:
        context.close()


def test_sign_in_with_the_access_token_then_chat(chat: ChatPage, page: Page, chat_server):
    app = chat_server(CHATAPP_ACCESS_TOKEN="let-me-in-42")
    page.goto(app.url)
    assert page.url.endswith("/sign-in")
    page.fill("#token", "wrong")
    page.click("button[type=submit]")
    error = page.locator("#sign-in-error").text_content()
    assert error is not None
    assert "not right" in error
    page.fill("#token", "let-me-in-42")
    page.click("button[type=submit]")
    page.wait_for_selector("#prompt")
    chat.send("hello after signing in")
    chat.wait_for_answer_stored("complete")
    assert chat.shows(Behaviour().text)
    assert chat.problems == []
