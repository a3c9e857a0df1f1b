"""Stored conversations in the browser: the pages the server renders, the sidebar, and the controls
on each message, in a real headless Chromium against chatapp under gunicorn."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ChatappServers
from tests.e2e.chat_page import LAST_ANSWER, LAST_USER, ChatPage, CspViolations
from tests.support.fake_upstream import Behaviour, FakeUpstream

pytestmark = pytest.mark.e2e

SLOW = Behaviour(tokens=tuple(f"word{i} " for i in range(300)), token_interval_s=0.05)


def database_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'chat.sqlite3'}"


def test_a_new_chat_gets_its_own_address_and_a_reload_shows_it_from_the_html(
    chat: ChatPage, page: Page, chat_server, browser: Browser
):
    app = chat_server()
    page.goto(app.url)
    chat.send("remember me")
    chat.wait_for_answer_stored("complete")
    assert chat.shows(Behaviour().text)
    streamed = chat.answer_html()
    page.wait_for_url(re.compile(r"/c/[0-9a-f]{32}$"))

    # The history is in the HTML the server sends, before any script runs.
    html = page.request.get(page.url).text()
    assert "remember me" in html
    assert "Here is a line." in html

    page.reload()
    assert page.locator("#log > .message.user .message-text").text_content() == "remember me"
    # The server's plain text, rendered as Markdown by the page: as it was when it streamed.
    page.wait_for_selector(f"{LAST_ANSWER} .message-text.markdown")
    assert chat.answer_html() == streamed
    assert page.locator(LAST_ANSWER).get_attribute("data-state") == "complete"

    context = browser.new_context(java_script_enabled=False)
    try:
        still = context.new_page()
        still.goto(page.url)
        expect(still.locator("#log > .message")).to_have_count(2)
        question = still.locator("#log > .message.user").text_content()
        assert question is not None
        assert "remember me" in question
        answer = still.locator("#log > .message.assistant").text_content()
        assert answer is not None
        assert "Here is a line." in answer
        expect(still.locator("#conversation-list .conversation-link")).to_have_text(["remember me"])
    finally:
        context.close()
    assert chat.problems == []


def test_an_unknown_conversation_is_a_page_that_says_so_and_links_to_a_new_chat(page: Page, chat_server):
    app = chat_server()
    response = page.goto(f"{app.url}/c/0123456789abcdef0123456789abcdef")
    assert response is not None
    assert response.status == 404
    assert "text/html" in response.headers["content-type"]
    expect(page.locator("h1")).to_have_text("This conversation does not exist")
    page.click("text=Start a new chat")
    page.wait_for_selector("#prompt")
    assert page.url == f"{app.url}/"


def test_a_new_conversation_joins_the_top_of_the_sidebar_after_its_first_answer_and_links_switch(
    chat: ChatPage, page: Page, chat_server
):
    app = chat_server()
    page.goto(app.url)
    chat.send("the first chat")
    chat.wait_for_answer_stored("complete")
    first = chat.conversation_id()
    expect(page.locator("#conversation-list .conversation-link")).to_have_text(["the first chat"])

    page.click("#new-chat")
    page.wait_for_url(f"{app.url}/")
    chat.send("the second chat")
    chat.wait_for_answer_stored("complete")
    # Newest first, without a reload; the open one is marked.
    links = page.locator("#conversation-list .conversation-link")
    expect(links).to_have_text(["the second chat", "the first chat"])
    assert links.nth(0).get_attribute("aria-current") == "page"
    expect(page.locator("#conversation-title")).to_have_text("the second chat")

    links.nth(1).click()
    page.wait_for_url(f"{app.url}/c/{first}")
    assert chat.shown()[0] == "the first chat"
    expect(page.locator("#conversation-list [aria-current=page]")).to_have_text("the first chat")
    assert chat.problems == []


def test_rename_in_the_sidebar_is_kept(chat: ChatPage, page: Page, chat_server):
    app = chat_server()
    page.goto(app.url)
    chat.send("a title from the first message")
    chat.wait_for_answer_stored("complete")
    item = page.locator("#conversation-list .conversation").first
    item.locator("[data-action=rename]").click()
    page.fill(".rename-input", "My renamed chat")
    page.press(".rename-input", "Enter")
    expect(item.locator(".conversation-link")).to_have_text("My renamed chat")
    expect(page.locator("#status")).to_have_text("Renamed")

    page.reload()
    expect(page.locator("#conversation-list .conversation-link").first).to_have_text("My renamed chat")
    expect(page.locator("#conversation-title")).to_have_text("My renamed chat")
    assert page.title() == "My renamed chat · chatapp"


def test_delete_asks_first_then_removes_the_conversation_and_leaves_it(
    chat: ChatPage, page: Page, chat_server
):
    app = chat_server()
    page.goto(app.url)
    chat.send("short-lived")
    chat.wait_for_answer_stored("complete")
    doomed = page.url
    item = page.locator("#conversation-list .conversation").first

    item.locator("[data-action=delete]").click()
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("short-lived")
    dialog.locator("button[value=cancel]").click()
    expect(dialog).to_be_hidden()
    expect(item).to_be_visible()

    item.locator("[data-action=delete]").click()
    page.click("#delete-confirm")
    page.wait_for_url(f"{app.url}/")  # the open conversation is gone: a new chat
    expect(page.locator("#conversation-list .conversation")).to_have_count(0)
    assert page.request.get(doomed).status == 404
    assert chat.problems == []


def test_regenerate_keeps_the_first_answer_as_a_version_to_page_back_to(
    chat: ChatPage, page: Page, chat_server, upstream
):
    first = Behaviour(tokens=("The", " first", " answer."))
    app = chat_server(first)
    page.goto(app.url)
    chat.send("answer twice")
    assert chat.wait_for_answer_stored("complete") == "The first answer."

    upstream.set_behaviour(app.model, Behaviour(tokens=("Another", " answer.")))
    page.click(f"{LAST_ANSWER} [aria-label=Regenerate]")
    assert chat.wait_for_answer_stored("complete") == "Another answer."
    versions = page.locator(f"{LAST_ANSWER} .versions")
    expect(versions).to_have_text(re.compile(r"‹\s*2/2\s*›"))
    # The same question, asked again: the model saw no trace of the first answer.
    assert upstream.requests_for(app.model)[-1].body["messages"] == [
        {"role": "user", "content": "answer twice"}
    ]

    page.click(f"{LAST_ANSWER} [data-action=previous]")
    expect(versions).to_have_text(re.compile(r"1/2"))
    assert chat.shown() == ["answer twice", "The first answer."]

    page.reload()  # the version on display is kept on the server
    expect(page.locator(f"{LAST_ANSWER} .versions")).to_have_text(re.compile(r"‹\s*1/2\s*›"))
    assert chat.shown() == ["answer twice", "The first answer."]
    page.click(f"{LAST_ANSWER} [data-action=next]")
    expect(page.locator(f"{LAST_ANSWER} .message-text")).to_have_text("Another answer.")
    assert chat.problems == []


def test_edit_and_resend_keeps_the_old_branch_as_a_version(chat: ChatPage, page: Page, chat_server, upstream):
    app = chat_server(Behaviour(tokens=("Answer", " A.")))
    page.goto(app.url)
    chat.send("first question")
    chat.wait_for_answer_stored("complete")
    upstream.set_behaviour(app.model, Behaviour(tokens=("Answer", " B.")))
    chat.send("second question")
    chat.wait_for_answer_stored("complete")

    upstream.set_behaviour(app.model, Behaviour(tokens=("Answer", " C.")))
    first_question = page.locator("#log > .message.user").first
    first_question.locator("[data-action=edit]").click()
    page.fill(".edit-text", "edited question")
    page.press(".edit-text", "Enter")
    assert chat.wait_for_answer_stored("complete") == "Answer C."
    assert chat.shown() == ["edited question", "Answer C."]
    assert upstream.requests_for(app.model)[-1].body["messages"] == [
        {"role": "user", "content": "edited question"}
    ]
    expect(page.locator(LAST_USER).locator(".versions")).to_have_text(re.compile(r"2/2"))

    page.locator(LAST_USER).locator("[data-action=previous]").click()
    expect(page.locator("#log > .message")).to_have_count(4)
    assert chat.shown() == ["first question", "Answer A.", "second question", "Answer B."]
    page.reload()
    assert chat.shown() == ["first question", "Answer A.", "second question", "Answer B."]
    assert chat.problems == []


def test_retry_after_an_error_answers_again(chat: ChatPage, page: Page, chat_server, upstream):
    app = chat_server(Behaviour(status=429, retry_after="1"))
    page.goto(app.url)
    chat.send("are you there?")
    chat.wait_for_answer_stored("error")
    retry = page.locator(f"{LAST_ANSWER} .retry")
    expect(retry).to_be_visible()

    upstream.set_behaviour(app.model, Behaviour())
    retry.click()
    chat.wait_for_answer_stored("complete")
    assert chat.shows(Behaviour().text)
    expect(page.locator(f"{LAST_ANSWER} .versions")).to_have_text(re.compile(r"2/2"))
    expect(page.locator(f"{LAST_ANSWER} .retry")).to_be_hidden()

    page.locator(f"{LAST_ANSWER} [data-action=previous]").click()  # the failed answer is kept
    expect(page.locator(f"{LAST_ANSWER} .notice.error")).to_contain_text("rate limit")
    expect(page.locator(f"{LAST_ANSWER} .meta")).to_have_text("Failed")


def test_copy_puts_the_message_on_the_clipboard_and_says_so(browser: Browser, chat_server):
    app = chat_server()
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"], bypass_csp=True)
    try:
        chat = ChatPage(context.new_page())
        page = chat.page
        page.goto(app.url)
        chat.send("copy this")
        chat.wait_for_answer_stored("complete")
        page.click(f"{LAST_ANSWER} [data-action=copy]")
        expect(page.locator(f"{LAST_ANSWER} .copied")).to_be_visible()
        expect(page.locator(f"{LAST_ANSWER} .copied")).to_have_text("Copied")
        # The answer's Markdown, as the model wrote it (as ChatGPT copies it).
        assert page.evaluate("navigator.clipboard.readText()") == Behaviour().text
        expect(page.locator(f"{LAST_ANSWER} .copied")).to_be_hidden()  # the confirmation goes away
    finally:
        context.close()


def test_the_model_picker_sets_the_model_of_the_conversations_answers(
    browser: Browser, chatapp_server: ChatappServers, upstream: FakeUpstream, tmp_path: Path
):
    first, second = upstream.model(name="pick"), upstream.model(name="pick")
    server = chatapp_server(
        upstream, CHATAPP_MODEL=first, CHATAPP_MODELS=f"{first},{second}", DATABASE_URL=database_url(tmp_path)
    )
    context = browser.new_context(bypass_csp=True)
    try:
        chat = ChatPage(context.new_page())
        page = chat.page
        page.goto(server.url)
        expect(page.locator("#model-select option")).to_have_count(2)
        assert page.input_value("#model-select") == first

        page.select_option("#model-select", second)  # on a new chat: the conversation is created with it
        with page.expect_response(lambda r: r.url.endswith("/messages")) as sent:
            chat.send("which model?")
        chat.wait_for_answer_stored("complete")
        assert page.locator(LAST_ANSWER).get_attribute("data-model") == second
        start = sent.value.text().split("event: start\n", 1)[1].split("\n\n", 1)[0]
        assert json.loads(start.removeprefix("data: "))["model"] == second
        assert len(upstream.requests_for(second)) == 1

        page.select_option("#model-select", first)  # on a stored conversation: saved with PATCH
        expect(page.locator("#status")).to_have_text(f"New answers will come from {first}")
        page.reload()
        assert page.input_value("#model-select") == first
        chat.send("and now?")
        chat.wait_for_answer_stored("complete")
        assert page.locator(LAST_ANSWER).get_attribute("data-model") == first
        assert len(upstream.requests_for(first)) == 1
    finally:
        context.close()
        chatapp_server.retire(server)


def test_settings_are_kept_with_the_conversation_and_reach_the_model(
    chat: ChatPage, page: Page, chat_server, upstream
):
    app = chat_server()
    page.goto(app.url)
    chat.send("hello")
    chat.wait_for_answer_stored("complete")

    page.click("#settings-button")
    page.fill("#system-prompt", "Answer like a pirate.")
    page.fill("#temperature", "0.3")
    page.fill("#max-tokens", "50")
    page.click("#settings-save")
    expect(page.locator("#settings-dialog")).to_be_hidden()

    page.reload()
    page.click("#settings-button")
    assert page.input_value("#system-prompt") == "Answer like a pirate."
    assert page.input_value("#temperature") == "0.3"
    assert page.input_value("#max-tokens") == "50"
    page.click("#settings-cancel")

    chat.send("again")
    chat.wait_for_answer_stored("complete")
    body = upstream.requests_for(app.model)[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 50 or body.get("max_completion_tokens") == 50
    assert chat.problems == []


def test_a_rejected_setting_says_why_and_changes_nothing(chat: ChatPage, page: Page, chat_server):
    app = chat_server(CHATAPP_MAX_TOKENS_CAP="100")
    page.goto(app.url)
    chat.send("hello")
    chat.wait_for_answer_stored("complete")
    page.click("#settings-button")
    page.fill("#max-tokens", "500")
    page.click("#settings-save")
    expect(page.locator("#settings-error")).to_be_visible()
    expect(page.locator("#settings-dialog")).to_be_visible()
    page.click("#settings-cancel")
    page.reload()
    page.click("#settings-button")
    assert page.input_value("#max-tokens") == ""


def test_stop_then_reload_shows_the_partial_answer_marked_stopped(
    chat: ChatPage, page: Page, chat_server, browser: Browser
):
    app = chat_server(SLOW)
    page.goto(app.url)
    chat.send("a long story")
    chat.wait_for_answer_longer_than(20)
    page.keyboard.press("Escape")  # stops, as the Stop button does
    partial = chat.wait_for_answer_stored("stopped")
    assert 0 < len(partial) < len(SLOW.text)
    assert SLOW.text.startswith(partial)

    page.reload()
    assert page.locator(LAST_ANSWER).get_attribute("data-state") == "stopped"
    assert chat.answer_text() == partial
    expect(page.locator(f"{LAST_ANSWER} .meta")).to_have_text("Stopped")

    context = browser.new_context(java_script_enabled=False)
    try:
        still = context.new_page()
        still.goto(page.url)
        expect(still.locator("#log > .message.assistant .meta")).to_have_text("Stopped")
    finally:
        context.close()


def test_an_answer_streaming_in_another_tab_is_followed_until_it_ends(
    chat: ChatPage, page: Page, chat_server, upstream
):
    # 6 s: still streaming when the other tab has opened, on a slow machine too.
    parts = tuple(f" part{i}" for i in range(120))
    app = chat_server(Behaviour(tokens=parts, token_interval_s=0.05))
    page.goto(app.url)
    chat.send("take your time")
    chat.wait_for_answer_longer_than(10)
    other = page.context.new_page()
    try:
        other.goto(page.url)
        answer = other.locator(LAST_ANSWER)
        assert answer.get_attribute("data-state") == "streaming"
        expect(answer).to_have_attribute("data-state", "complete", timeout=15_000)
        expect(answer.locator(".message-text")).to_have_text("".join(parts), use_inner_text=False)
    finally:
        other.close()


def test_the_sidebar_is_a_drawer_on_a_phone(browser: Browser, chat_server):
    app = chat_server()
    context = browser.new_context(viewport={"width": 360, "height": 740}, has_touch=True, is_mobile=True)
    try:
        chat = ChatPage(context.new_page())
        page = chat.page
        page.goto(app.url)
        chat.send("from my phone", tap=True)
        chat.wait_for_answer_stored("complete")
        sidebar = page.locator("#sidebar")
        expect(sidebar).to_be_hidden()
        page.click("#menu-button")
        expect(sidebar).to_be_visible()
        assert page.get_attribute("#menu-button", "aria-expanded") == "true"
        expect(sidebar.locator(".conversation-link")).to_have_text(["from my phone"])
        page.keyboard.press("Escape")
        expect(sidebar).to_be_hidden()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, "the page scrolls sideways"
    finally:
        context.close()


def test_load_more_brings_older_conversations(page: Page, chat_server):
    app = chat_server()
    for i in range(32):
        created = page.request.post(f"{app.url}/api/conversations", data={"title": f"chat {i:02d}"})
        assert created.status == 201
    page.goto(app.url)
    links = page.locator("#conversation-list .conversation-link")
    expect(links).to_have_count(30)
    expect(links.first).to_have_text("chat 31")
    page.click("#load-more")
    expect(links).to_have_count(32)
    expect(links.last).to_have_text("chat 00")
    expect(page.locator("#load-more")).to_be_hidden()


def test_the_conversation_page_and_its_controls_run_under_the_content_security_policy(
    browser: Browser, chat_server, upstream
):
    app = chat_server(Behaviour(reasoning=("hmm",)))
    context = browser.new_context()  # the policy enforced, as in a person's browser
    try:
        chat = ChatPage(context.new_page())
        page = chat.page
        violations = CspViolations(page)
        page.goto(app.url)
        chat.send("hello")
        chat.wait_for_answer_stored("complete")
        page.reload()
        page.click(f"{LAST_ANSWER} [aria-label=Regenerate]")
        chat.wait_for_answer_stored("complete")
        page.click(f"{LAST_ANSWER} [data-action=previous]")
        expect(page.locator(f"{LAST_ANSWER} .versions")).to_have_text(re.compile(r"1/2"))
        page.click("#settings-button")
        page.click("#settings-cancel")
        page.locator("#conversation-list [data-action=rename]").first.click()
        page.press(".rename-input", "Escape")
        assert violations.seen() == []
        assert chat.problems == []
    finally:
        context.close()
