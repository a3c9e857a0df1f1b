"""Stored conversations in the browser: the pages the server renders, the sidebar, and the controls
on each message, in a real headless Chromium against chatapp under gunicorn."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.conftest import ChatappServers
from tests.support.fake_upstream import Behaviour, FakeUpstream

pytestmark = pytest.mark.e2e

LAST_ANSWER = "#log > .message.assistant:last-child"
LAST_USER = "#log > .message.user >> nth=-1"
SLOW = Behaviour(tokens=tuple(f"word{i} " for i in range(300)), token_interval_s=0.05)
# The Markdown of an answer as the page itself renders it (the module chat.js uses): answers are
# Markdown, so what they show is not the model's characters.
RENDERED = """async (text) => {
  const { renderMarkdown } = await import("/static/js/markdown.js");
  const box = document.createElement("div");
  box.append(renderMarkdown(text));
  return box.innerHTML;
}"""


def database_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'chat.sqlite3'}"


def send(page: Page, text: str) -> None:
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")


def wait_for_answer(page: Page, state: str) -> str:
    """The last answer's text once it is `state` and shows what the server stored."""
    try:
        page.wait_for_selector(f"{LAST_ANSWER}[data-state='{state}'][data-id]:not([data-syncing])")
    except PlaywrightTimeoutError:
        last = page.locator("#log > .message").last
        seen = last.evaluate("e => e.outerHTML.slice(0, 600)") if last.count() else "no message"
        pytest.fail(f"no {state} answer; the page says {page.locator('#status').text_content()!r}: {seen}")
    return page.locator(f"{LAST_ANSWER} .message-text").text_content()


def shows(page: Page, markdown: str) -> bool:
    """Does the last answer show exactly this Markdown, rendered?"""
    return page.locator(f"{LAST_ANSWER} .message-text").inner_html() == page.evaluate(RENDERED, markdown)


def conversation_id(page: Page) -> str:
    match = re.search(r"/c/([0-9a-f]+)$", page.url)
    assert match, f"not a conversation's address: {page.url}"
    return match.group(1)


def shown(page: Page) -> list[str]:
    return page.locator("#log > .message .message-text").all_text_contents()


def test_a_new_chat_gets_its_own_address_and_a_reload_shows_it_from_the_html(
    page: Page, chat_server, browser: Browser
):
    app = chat_server()
    page.goto(app.url)
    send(page, "remember me")
    wait_for_answer(page, "complete")
    assert shows(page, Behaviour().text)
    streamed = page.locator(f"{LAST_ANSWER} .message-text").inner_html()
    page.wait_for_url(re.compile(r"/c/[0-9a-f]{32}$"))

    # The history is in the HTML the server sends, before any script runs.
    html = page.request.get(page.url).text()
    assert "remember me" in html
    assert "Here is a line." in html

    page.reload()
    assert page.locator("#log > .message.user .message-text").text_content() == "remember me"
    # The server's plain text, rendered as Markdown by the page: as it was when it streamed.
    page.wait_for_selector(f"{LAST_ANSWER} .message-text.markdown")
    assert page.locator(f"{LAST_ANSWER} .message-text").inner_html() == streamed
    assert page.locator(LAST_ANSWER).get_attribute("data-state") == "complete"

    context = browser.new_context(java_script_enabled=False)
    try:
        still = context.new_page()
        still.goto(page.url)
        expect(still.locator("#log > .message")).to_have_count(2)
        assert "remember me" in still.locator("#log > .message.user").text_content()
        assert "Here is a line." in still.locator("#log > .message.assistant").text_content()
        expect(still.locator("#conversation-list .conversation-link")).to_have_text(["remember me"])
    finally:
        context.close()
    assert page.problems == []


def test_an_unknown_conversation_is_a_page_that_says_so_and_links_to_a_new_chat(page: Page, chat_server):
    app = chat_server()
    response = page.goto(f"{app.url}/c/0123456789abcdef0123456789abcdef")
    assert response.status == 404
    assert "text/html" in response.headers["content-type"]
    expect(page.locator("h1")).to_have_text("This conversation does not exist")
    page.click("text=Start a new chat")
    page.wait_for_selector("#prompt")
    assert page.url == f"{app.url}/"


def test_a_new_conversation_joins_the_top_of_the_sidebar_after_its_first_answer_and_links_switch(
    page: Page, chat_server
):
    app = chat_server()
    page.goto(app.url)
    send(page, "the first chat")
    wait_for_answer(page, "complete")
    first = conversation_id(page)
    expect(page.locator("#conversation-list .conversation-link")).to_have_text(["the first chat"])

    page.click("#new-chat")
    page.wait_for_url(f"{app.url}/")
    send(page, "the second chat")
    wait_for_answer(page, "complete")
    # Newest first, without a reload; the open one is marked.
    links = page.locator("#conversation-list .conversation-link")
    expect(links).to_have_text(["the second chat", "the first chat"])
    assert links.nth(0).get_attribute("aria-current") == "page"
    expect(page.locator("#conversation-title")).to_have_text("the second chat")

    links.nth(1).click()
    page.wait_for_url(f"{app.url}/c/{first}")
    assert shown(page)[0] == "the first chat"
    expect(page.locator("#conversation-list [aria-current=page]")).to_have_text("the first chat")
    assert page.problems == []


def test_rename_in_the_sidebar_is_kept(page: Page, chat_server):
    app = chat_server()
    page.goto(app.url)
    send(page, "a title from the first message")
    wait_for_answer(page, "complete")
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


def test_delete_asks_first_then_removes_the_conversation_and_leaves_it(page: Page, chat_server):
    app = chat_server()
    page.goto(app.url)
    send(page, "short-lived")
    wait_for_answer(page, "complete")
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
    assert page.problems == []


def test_regenerate_keeps_the_first_answer_as_a_version_to_page_back_to(page: Page, chat_server, upstream):
    first = Behaviour(tokens=("The", " first", " answer."))
    app = chat_server(first)
    page.goto(app.url)
    send(page, "answer twice")
    assert wait_for_answer(page, "complete") == "The first answer."

    upstream.set_behaviour(app.model, Behaviour(tokens=("Another", " answer.")))
    page.click(f"{LAST_ANSWER} [aria-label=Regenerate]")
    assert wait_for_answer(page, "complete") == "Another answer."
    versions = page.locator(f"{LAST_ANSWER} .versions")
    expect(versions).to_have_text(re.compile(r"‹\s*2/2\s*›"))
    # The same question, asked again: the model saw no trace of the first answer.
    assert upstream.requests_for(app.model)[-1].body["messages"] == [
        {"role": "user", "content": "answer twice"}
    ]

    page.click(f"{LAST_ANSWER} [data-action=previous]")
    expect(versions).to_have_text(re.compile(r"1/2"))
    assert shown(page) == ["answer twice", "The first answer."]

    page.reload()  # the version on display is kept on the server
    expect(page.locator(f"{LAST_ANSWER} .versions")).to_have_text(re.compile(r"‹\s*1/2\s*›"))
    assert shown(page) == ["answer twice", "The first answer."]
    page.click(f"{LAST_ANSWER} [data-action=next]")
    expect(page.locator(f"{LAST_ANSWER} .message-text")).to_have_text("Another answer.")
    assert page.problems == []


def test_edit_and_resend_keeps_the_old_branch_as_a_version(page: Page, chat_server, upstream):
    app = chat_server(Behaviour(tokens=("Answer", " A.")))
    page.goto(app.url)
    send(page, "first question")
    wait_for_answer(page, "complete")
    upstream.set_behaviour(app.model, Behaviour(tokens=("Answer", " B.")))
    send(page, "second question")
    wait_for_answer(page, "complete")

    upstream.set_behaviour(app.model, Behaviour(tokens=("Answer", " C.")))
    first_question = page.locator("#log > .message.user").first
    first_question.locator("[data-action=edit]").click()
    page.fill(".edit-text", "edited question")
    page.press(".edit-text", "Enter")
    assert wait_for_answer(page, "complete") == "Answer C."
    assert shown(page) == ["edited question", "Answer C."]
    assert upstream.requests_for(app.model)[-1].body["messages"] == [
        {"role": "user", "content": "edited question"}
    ]
    expect(page.locator(LAST_USER).locator(".versions")).to_have_text(re.compile(r"2/2"))

    page.locator(LAST_USER).locator("[data-action=previous]").click()
    expect(page.locator("#log > .message")).to_have_count(4)
    assert shown(page) == ["first question", "Answer A.", "second question", "Answer B."]
    page.reload()
    assert shown(page) == ["first question", "Answer A.", "second question", "Answer B."]
    assert page.problems == []


def test_retry_after_an_error_answers_again(page: Page, chat_server, upstream):
    app = chat_server(Behaviour(status=429, retry_after="1"))
    page.goto(app.url)
    send(page, "are you there?")
    wait_for_answer(page, "error")
    retry = page.locator(f"{LAST_ANSWER} .retry")
    expect(retry).to_be_visible()

    upstream.set_behaviour(app.model, Behaviour())
    retry.click()
    wait_for_answer(page, "complete")
    assert shows(page, Behaviour().text)
    expect(page.locator(f"{LAST_ANSWER} .versions")).to_have_text(re.compile(r"2/2"))
    expect(page.locator(f"{LAST_ANSWER} .retry")).to_be_hidden()

    page.locator(f"{LAST_ANSWER} [data-action=previous]").click()  # the failed answer is kept
    expect(page.locator(f"{LAST_ANSWER} .notice.error")).to_contain_text("rate limit")
    expect(page.locator(f"{LAST_ANSWER} .meta")).to_have_text("Failed")


def test_copy_puts_the_message_on_the_clipboard_and_says_so(browser: Browser, chat_server):
    app = chat_server()
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"], bypass_csp=True)
    try:
        page = context.new_page()
        page.goto(app.url)
        send(page, "copy this")
        wait_for_answer(page, "complete")
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
        page = context.new_page()
        page.goto(server.url)
        expect(page.locator("#model-select option")).to_have_count(2)
        assert page.input_value("#model-select") == first

        page.select_option("#model-select", second)  # on a new chat: the conversation is created with it
        with page.expect_response(lambda r: r.url.endswith("/messages")) as sent:
            send(page, "which model?")
        wait_for_answer(page, "complete")
        assert page.locator(LAST_ANSWER).get_attribute("data-model") == second
        start = sent.value.text().split("event: start\n", 1)[1].split("\n\n", 1)[0]
        assert json.loads(start.removeprefix("data: "))["model"] == second
        assert len(upstream.requests_for(second)) == 1

        page.select_option("#model-select", first)  # on a stored conversation: saved with PATCH
        expect(page.locator("#status")).to_have_text(f"New answers will come from {first}")
        page.reload()
        assert page.input_value("#model-select") == first
        send(page, "and now?")
        wait_for_answer(page, "complete")
        assert page.locator(LAST_ANSWER).get_attribute("data-model") == first
        assert len(upstream.requests_for(first)) == 1
    finally:
        context.close()
        chatapp_server.retire(server)


def test_settings_are_kept_with_the_conversation_and_reach_the_model(page: Page, chat_server, upstream):
    app = chat_server()
    page.goto(app.url)
    send(page, "hello")
    wait_for_answer(page, "complete")

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

    send(page, "again")
    wait_for_answer(page, "complete")
    body = upstream.requests_for(app.model)[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 50 or body.get("max_completion_tokens") == 50
    assert page.problems == []


def test_a_rejected_setting_says_why_and_changes_nothing(page: Page, chat_server):
    app = chat_server(CHATAPP_MAX_TOKENS_CAP="100")
    page.goto(app.url)
    send(page, "hello")
    wait_for_answer(page, "complete")
    page.click("#settings-button")
    page.fill("#max-tokens", "500")
    page.click("#settings-save")
    expect(page.locator("#settings-error")).to_be_visible()
    expect(page.locator("#settings-dialog")).to_be_visible()
    page.click("#settings-cancel")
    page.reload()
    page.click("#settings-button")
    assert page.input_value("#max-tokens") == ""


def test_stop_then_reload_shows_the_partial_answer_marked_stopped(page: Page, chat_server, browser: Browser):
    app = chat_server(SLOW)
    page.goto(app.url)
    send(page, "a long story")
    page.wait_for_function(f"document.querySelector('{LAST_ANSWER} .message-text')?.textContent.length > 20")
    page.keyboard.press("Escape")  # stops, as the Stop button does
    partial = wait_for_answer(page, "stopped")
    assert 0 < len(partial) < len(SLOW.text)
    assert SLOW.text.startswith(partial)

    page.reload()
    assert page.locator(LAST_ANSWER).get_attribute("data-state") == "stopped"
    assert page.locator(f"{LAST_ANSWER} .message-text").text_content() == partial
    expect(page.locator(f"{LAST_ANSWER} .meta")).to_have_text("Stopped")

    context = browser.new_context(java_script_enabled=False)
    try:
        still = context.new_page()
        still.goto(page.url)
        expect(still.locator("#log > .message.assistant .meta")).to_have_text("Stopped")
    finally:
        context.close()


def test_an_answer_streaming_in_another_tab_is_followed_until_it_ends(page: Page, chat_server, upstream):
    app = chat_server(Behaviour(tokens=tuple(f" part{i}" for i in range(60)), token_interval_s=0.05))
    page.goto(app.url)
    send(page, "take your time")
    page.wait_for_function(f"document.querySelector('{LAST_ANSWER} .message-text')?.textContent.length > 10")
    other = page.context.new_page()
    try:
        other.goto(page.url)
        answer = other.locator(LAST_ANSWER)
        assert answer.get_attribute("data-state") == "streaming"
        expect(answer).to_have_attribute("data-state", "complete", timeout=15_000)
        expect(answer.locator(".message-text")).to_have_text(
            "".join(f" part{i}" for i in range(60)), use_inner_text=False
        )
    finally:
        other.close()


def test_the_sidebar_is_a_drawer_on_a_phone(browser: Browser, chat_server):
    app = chat_server()
    context = browser.new_context(viewport={"width": 360, "height": 740}, has_touch=True, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(app.url)
        page.fill("#prompt", "from my phone")
        page.click("#send")
        wait_for_answer(page, "complete")
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
        page = context.new_page()
        page.add_init_script(
            """window.cspViolations = [];
               document.addEventListener("securitypolicyviolation",
                 (e) => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));"""
        )
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(app.url)
        send(page, "hello")
        wait_for_answer(page, "complete")
        page.reload()
        page.click(f"{LAST_ANSWER} [aria-label=Regenerate]")
        wait_for_answer(page, "complete")
        page.click(f"{LAST_ANSWER} [data-action=previous]")
        expect(page.locator(f"{LAST_ANSWER} .versions")).to_have_text(re.compile(r"1/2"))
        page.click("#settings-button")
        page.click("#settings-cancel")
        page.locator("#conversation-list [data-action=rename]").first.click()
        page.press(".rename-input", "Escape")
        assert page.evaluate("() => window.cspViolations") == []
        assert errors == []
    finally:
        context.close()
