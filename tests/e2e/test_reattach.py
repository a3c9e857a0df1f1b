"""Answers that outlive the page's connection (issue 12), in a real headless Chromium against chatapp
under gunicorn: a reload, a network cut and a stalled connection reattach to the answer, which
completes in place with exactly the text of an uninterrupted run; Stop works after a reattach,
while reconnecting, and says so when it fails; and a plain EventSource resumes with Last-Event-ID.

The fake upstream answers a model with distinct words at a steady pace, so the whole answer is
known in advance: a word lost or repeated anywhere breaks the equality."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.e2e.chat_page import LAST_ANSWER, ChatPage, assert_the_model_stopped
from tests.e2e.stall_proxy import StallProxy
from tests.support.fake_upstream import Behaviour
from tests.support.sse_client import post_chat

pytestmark = pytest.mark.e2e


# The heartbeat of the stalled-connection test: the page takes two intervals of silence for a dead
# connection.
HEARTBEAT_S = 1


def words(count: int, interval_s: float = 0.05) -> Behaviour:
    """An answer of `count` distinct words, one every `interval_s`."""
    return Behaviour(tokens=tuple(f"word{i} " for i in range(count)), token_interval_s=interval_s)


def watch_meta(page: Page) -> None:
    """Record every text the last answer's status line shows, with when (ms since the epoch), in
    `window.metaChanges`; and the answer's length when it first says "Reconnecting…"."""
    page.evaluate(
        """(selector) => {
            const meta = document.querySelector(selector + " .meta");
            const text = document.querySelector(selector + " .message-text");
            window.metaChanges = [];
            new MutationObserver(() => {
                window.metaChanges.push([meta.textContent, Date.now()]);
                if (meta.textContent === "Reconnecting…" && window.lengthWhenReconnecting === undefined) {
                    window.lengthWhenReconnecting = text.textContent.length;
                }
            }).observe(meta, { childList: true, characterData: true, subtree: true });
        }""",
        LAST_ANSWER,
    )


def test_a_reload_mid_answer_reattaches_and_the_answer_completes_in_place(
    chat: ChatPage, page: Page, chat_server, upstream
):
    behaviour = words(200)  # 10 s: still streaming after a reload on a slow machine
    app = chat_server(behaviour)
    page.goto(app.url)
    chat.send("a long answer, please")
    chat.wait_for_answer_longer_than(30)
    page.wait_for_url(re.compile(r"/c/[0-9a-f]{32}$"))
    reattaches: list[str] = []

    def note_reattach(request: Request) -> None:
        if "/api/streams/" in request.url:
            reattaches.append(request.url)

    page.on("request", note_reattach)

    page.reload()
    answer = page.locator(LAST_ANSWER)
    # The server's HTML marks the answer being written; the page follows it, with Stop.
    assert answer.get_attribute("data-state") == "streaming"
    stream_id = answer.get_attribute("data-stream-id")
    assert stream_id
    expect(page.locator("#send")).to_have_text("Stop")
    chat.wait_for_answer_stored("complete", timeout_ms=20_000)

    assert reattaches == [f"{app.url}/api/streams/{stream_id}?after=0"]
    expect(page.locator("#log > .message")).to_have_count(2)  # in place: no second answer
    assert chat.shows(behaviour.text)
    stored = chat.stored_answer()
    assert (stored["status"], stored["content"]) == ("complete", behaviour.text)
    assert len(upstream.requests_for(app.model)) == 1, "a reattach started another generation"
    expect(page.locator("#send")).to_have_text("Send")
    assert chat.problems == []


def test_a_network_cut_shows_reconnecting_then_the_whole_answer(
    chat: ChatPage, page: Page, chat_server, upstream
):
    behaviour = words(200)  # 10 s
    app = chat_server(behaviour)
    reattaches: list[dict[str, str]] = []
    failed: list[str] = []

    def note_reattach(request: Request) -> None:
        if "/api/streams/" in request.url:
            reattaches.append(request.headers)

    def note_failure(request: Request) -> None:
        if "/api/streams/" in request.url:
            failed.append(request.url)

    page.on("request", note_reattach)
    page.on("requestfailed", note_failure)
    page.goto(app.url)
    chat.send("a long answer, please")
    chat.wait_for_answer_longer_than(30)

    page.context.set_offline(True)
    meta = page.locator(f"{LAST_ANSWER} .meta")
    expect(meta).to_have_text("Reconnecting…")
    expect(page.locator("#status")).to_have_text("Reconnecting…")
    expect(page.locator("#send")).to_have_text("Stop")
    # The cut lasts while reattach attempts fail: three of them, each after its back-off (~3 s in all).
    while len(failed) < 3:
        page.wait_for_event("requestfailed", lambda r: "/api/streams/" in r.url)
    page.context.set_offline(False)

    chat.wait_for_answer_stored("complete", timeout_ms=20_000)
    assert chat.shows(behaviour.text)
    assert chat.stored_answer()["content"] == behaviour.text
    assert len(upstream.requests_for(app.model)) == 1
    # Each try says where the page was: the id of the last event it had.
    positions = {headers.get("last-event-id") for headers in reattaches}
    assert len(positions) == 1, reattaches
    assert re.fullmatch(r"[\w-]{22}:\d+", positions.pop() or ""), reattaches
    expect(meta).not_to_have_text("Reconnecting…")
    assert chat.problems == []


def test_a_stalled_connection_is_taken_for_dead_after_two_heartbeats_and_reattached(
    chat: ChatPage, page: Page, chat_server, upstream
):
    """A connection that stays open but carries nothing (not even the heartbeats) never ends by
    itself: only the page's watch on the silence gets the answer back. The proxy freezes it."""
    behaviour = words(160)  # 8 s
    app = chat_server(behaviour, CHATAPP_HEARTBEAT_S=str(HEARTBEAT_S))
    with StallProxy(app.server.port) as proxy:
        page.goto(proxy.url)
        chat.send("a long answer, please")
        chat.wait_for_answer_longer_than(30)
        watch_meta(page)
        assert proxy.freeze_streams() == 1
        frozen_at = time.time() * 1000
        frozen_length = len(chat.answer_text())

        # The state can be brief (a quick reattach ends it), so the page records each change of it
        # rather than the test polling for it.
        reconnecting_at = page.wait_for_function(
            "() => window.metaChanges.find(([text]) => text === 'Reconnecting…')?.[1]", timeout=8_000
        ).json_value()
        noticed_after = (reconnecting_at - frozen_at) / 1000
        # Two heartbeat intervals of silence (the last bytes came just before the freeze: a word every
        # 50 ms), not an error. Below, room for the last word's gap; above, 3 s for a slow machine's page
        # to notice and say so (it takes a few ms here: 1.97 s in all).
        stall_s = 2 * HEARTBEAT_S
        assert 0.75 * stall_s < noticed_after < stall_s + 3, (
            f"the stall was noticed after {noticed_after:.2f} s"
        )
        assert page.evaluate("window.lengthWhenReconnecting") == frozen_length

        chat.wait_for_answer_stored("complete", timeout_ms=20_000)
        assert chat.shows(behaviour.text)
        assert chat.stored_answer()["content"] == behaviour.text
        assert len(upstream.requests_for(app.model)) == 1
    assert chat.problems == []


@pytest.mark.parametrize("reattach", ["reload", "network cut"])
def test_stop_after_a_reattach_ends_the_model_and_the_answer_is_stored_stopped(
    chat: ChatPage, page: Page, chat_server, upstream, reattach
):
    behaviour = words(300)  # 15 s
    app = chat_server(behaviour)
    page.goto(app.url)
    chat.send("a long answer, please")
    chat.wait_for_answer_longer_than(30)
    if reattach == "reload":
        page.reload()
    else:
        page.context.set_offline(True)
        expect(page.locator("#status")).to_have_text("Reconnecting…")
        page.context.set_offline(False)
        expect(page.locator("#status")).to_have_text("Reconnected")
    chat.wait_for_answer_longer_than(len(chat.answer_text()) + 20)  # following the answer again

    stopped_at = chat.stop()
    assert_the_model_stopped(upstream.wait_for_request(app.model), stopped_at)
    chat.wait_for_answer_stored("stopped", timeout_ms=20_000)
    stored = chat.stored_answer()
    assert stored["status"] == "stopped"
    assert 0 < len(stored["content"]) < len(behaviour.text)
    assert behaviour.text.startswith(stored["content"])
    assert chat.shows(stored["content"])
    expect(page.locator(f"{LAST_ANSWER} .meta")).to_contain_text("Stopped")
    assert chat.problems == []


def test_stop_while_reconnecting_ends_the_model(chat: ChatPage, page: Page, chat_server, upstream):
    """The reattach keeps failing (refused here) while the stop endpoint answers: Stop must not wait
    for the stream to come back."""
    behaviour = words(300)
    app = chat_server(behaviour)
    page.goto(app.url)
    chat.send("a long answer, please")
    chat.wait_for_answer_longer_than(30)
    page.route("**/api/streams/**", lambda route: route.abort("connectionrefused"))
    page.context.set_offline(True)  # the page drops its connection
    expect(page.locator(f"{LAST_ANSWER} .meta")).to_have_text("Reconnecting…")
    page.context.set_offline(False)

    stopped_at = chat.stop()
    assert_the_model_stopped(upstream.wait_for_request(app.model), stopped_at)
    chat.wait_for_answer_stored("stopped", timeout_ms=20_000)
    stored = chat.stored_answer()
    assert stored["status"] == "stopped"
    assert chat.shows(stored["content"])  # read back: the page missed the end of the stream
    expect(page.locator("#send")).to_have_text("Send")
    assert chat.problems == []


def test_a_failed_stop_is_said_and_stop_still_works(chat: ChatPage, page: Page, chat_server, upstream):
    behaviour = words(300)
    app = chat_server(behaviour)
    unavailable = {"error": {"code": "shared_state_unavailable", "message": "Redis cannot be reached."}}

    def refuse(route: Route) -> None:
        route.fulfill(status=503, json=unavailable, headers={"Retry-After": "1"})

    page.route("**/api/chat/*/stop", refuse)
    page.goto(app.url)
    chat.send("a long answer, please")
    chat.wait_for_answer_longer_than(30)
    page.click("#send")

    expect(page.locator("#problem-text")).to_contain_text("Could not stop the answer")
    expect(page.locator("#status")).to_have_text("Could not stop the answer")
    # The answer goes on, and can still be stopped.
    chat.wait_for_answer_longer_than(len(chat.answer_text()) + 20)
    assert page.locator(LAST_ANSWER).get_attribute("data-state") == "streaming"
    expect(page.locator("#send")).to_have_text("Stop")
    record = upstream.wait_for_request(app.model)
    assert not record.ended.is_set()

    page.unroute("**/api/chat/*/stop", refuse)
    stopped_at = chat.stop()
    assert_the_model_stopped(record, stopped_at)
    chat.wait_for_answer_stored("stopped", timeout_ms=20_000)
    expect(page.locator("#problem")).to_be_hidden()
    assert chat.problems == []


COLLECT = """(url) => {
  window.collected = { events: [], opens: 0, errors: 0 };
  const source = new EventSource(url);
  for (const name of ["start", "reasoning", "token", "usage", "error", "done"]) {
    source.addEventListener(name, (event) => {
      // An EventSource fires its own `error` (a plain Event) when its connection fails.
      if (!(event instanceof MessageEvent)) return;
      window.collected.events.push({ name, id: event.lastEventId, data: event.data });
      if (name === "done") source.close();
    });
  }
  source.onopen = () => window.collected.opens++;
  source.onerror = () => window.collected.errors++;
}"""


def test_an_event_source_resumes_with_last_event_id_when_its_connection_is_cut(
    page: Page, chat_server, upstream
):
    """The browser's own reconnect (not a second EventSource) sends Last-Event-ID, and the stream
    goes on from there: every id once, in order, none missing."""
    behaviour = words(120)  # 6 s
    app = chat_server(behaviour)
    conversation = page.request.post(f"{app.url}/api/conversations", data={}).json()["id"]
    # Started by a client that goes away at once: the answer goes on without it.
    started = post_chat(
        app.url,
        {"content": "a long answer, please"},
        path=f"/api/conversations/{conversation}/messages",
        stop_when=lambda result: bool(result.named("start")),
    )
    stream_id = started.named("start")[0].json()["stream_id"]

    with StallProxy(app.server.port) as proxy:
        page.goto(proxy.url)
        page.evaluate(COLLECT, f"/api/streams/{stream_id}")
        page.wait_for_function("window.collected.events.filter((e) => e.name === 'token').length >= 10")
        assert proxy.cut_streams() == 1
        page.wait_for_function("window.collected.events.at(-1)?.name === 'done'", timeout=20_000)
        collected = page.evaluate("window.collected")
        reads = [
            headers for line, headers in proxy.requests if line.startswith(f"GET /api/streams/{stream_id}")
        ]

    # One EventSource, that reconnected by itself.
    assert collected["opens"] == 2
    assert collected["errors"] >= 1
    assert len(reads) == 2
    assert "last-event-id" not in reads[0]
    resumed_from = reads[1]["last-event-id"]
    ids = [event["id"] for event in collected["events"]]
    assert resumed_from in ids[:-1], "the reconnect did not resume from an event received"
    sequences = [int(event_id.rsplit(":", 1)[1]) for event_id in ids]
    assert sequences == list(range(1, len(sequences) + 1)), "a gap or a repeat"
    assert all(event_id.startswith(f"{stream_id}:") for event_id in ids)
    names = [event["name"] for event in collected["events"]]
    assert names[0] == "start"
    assert names[-1] == "done"
    text = "".join(json.loads(e["data"])["text"] for e in collected["events"] if e["name"] == "token")
    assert text == behaviour.text
    assert len(upstream.requests_for(app.model)) == 1
