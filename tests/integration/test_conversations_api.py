"""Stored conversations under real gunicorn, with the real SDK against the fake upstream: what is kept,
what survives a restart and a killed worker, branches, and every bad input refused with nothing changed."""

from __future__ import annotations

import itertools
import os
import signal
import uuid
from typing import Any

import pytest

from harness.gunicorn import GunicornServer
from tests.conftest import upstream_env
from tests.support.fake_upstream import DEFAULT_TOKENS, Behaviour
from tests.support.json_client import call
from tests.support.sse_client import post_chat
from tests.support.waiting import wait_until

ANSWER = "".join(DEFAULT_TOKENS).replace("\r\n", "\r\n")
SLOW = tuple(f" w{i}" for i in range(400))


def new_database(request, folder, name):
    """An empty database: a SQLite file in `folder`, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{folder}/chat.sqlite3"
    return request.getfixturevalue("postgres").create_database(f"{name}_{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_database(request, tmp_path_factory):
    """This module's database; the tests run once on SQLite and once on PostgreSQL."""
    return new_database(request, tmp_path_factory.mktemp("db"), "api")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A database of the test's own, for one that starts servers itself."""
    return new_database(request, tmp_path, "own")


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/chat.sqlite3"


@pytest.fixture
def served(chatapp_server, upstream, shared_database):
    """chatapp on the fake upstream with this module's database (each test makes its own conversations)."""
    return chatapp_server(upstream, DATABASE_URL=shared_database, CHATAPP_CHECKPOINT_S="0.2")


def new_conversation(server, **fields):
    status, body = call("POST", f"{server.url}/api/conversations", fields)
    assert status == 201, body
    return body


def send(server, conversation_id, content, **fields):
    path = f"/api/conversations/{conversation_id}/messages"
    return post_chat(server.url, {"content": content, **fields}, path=path, timeout=30)


def regenerate(server, conversation_id, message_id, **fields):
    path = f"/api/conversations/{conversation_id}/messages/{message_id}/regenerate"
    return post_chat(server.url, fields, path=path, timeout=30)


def read(server, conversation_id):
    status, body = call("GET", f"{server.url}/api/conversations/{conversation_id}")
    assert status == 200, body
    return body


def test_an_answer_is_stored_with_what_it_cost(served, upstream):
    model = upstream.model(Behaviour())
    conversation = new_conversation(served, model=model)
    result = send(served, conversation["id"], "Hello there")
    start = result.named("start")[0].json()
    assert start["conversation_id"] == conversation["id"]
    assert result.done == {"finish_reason": "stop"}

    question, answer = read(served, conversation["id"])["messages"]
    assert (question["id"], question["role"], question["content"]) == (
        start["user_message_id"],
        "user",
        "Hello there",
    )
    assert answer["id"] == start["message_id"]
    assert answer["parent_id"] == question["id"]
    assert (answer["role"], answer["status"], answer["finish_reason"]) == ("assistant", "complete", "stop")
    assert answer["content"] == result.text == "".join(DEFAULT_TOKENS)
    assert answer["model"] == model
    assert answer["usage"]["estimated"] is False
    assert answer["usage"]["completion_tokens"] == len(DEFAULT_TOKENS)
    assert answer["ttft_ms"] is not None
    assert answer["duration_ms"] >= answer["ttft_ms"]
    assert answer["alternatives"] == [answer["id"]]


def test_the_title_comes_from_the_first_message_until_renamed(served, upstream):
    conversation = new_conversation(served, model=upstream.model())
    send(served, conversation["id"], "How do tides work, and why are there two a day?")
    assert read(served, conversation["id"])["title"].startswith("How do tides work")
    status, renamed = call(
        "PATCH", f"{served.url}/api/conversations/{conversation['id']}", {"title": "Tides"}
    )
    assert (status, renamed["title"]) == (200, "Tides")
    send(served, conversation["id"], "And spring tides?")
    assert read(served, conversation["id"])["title"] == "Tides"


def test_the_model_gets_the_stored_branch_with_the_system_prompt_first(served, upstream):
    model = upstream.model(Behaviour(tokens=("Sure.",)))
    conversation = new_conversation(served, model=model, system_prompt="Be brief.", temperature=0.5)
    send(served, conversation["id"], "one")
    send(served, conversation["id"], "two")
    sent = upstream.requests_for(model)[-1].body
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "two"},
    ]
    assert sent["temperature"] == 0.5


def test_a_dropped_connection_leaves_the_answer_to_finish_and_be_stored_whole(served, upstream):
    model = upstream.model(Behaviour(tokens=SLOW, token_interval_s=0.02))
    conversation = new_conversation(served, model=model)
    path = f"/api/conversations/{conversation['id']}/messages"
    result = post_chat(
        served.url, {"content": "count"}, path=path, stop_when=lambda r: len(r.named("token")) >= 10
    )
    assert result.done is None, "the client hung up before the end"

    answer = wait_for_final(served, conversation["id"])
    assert (answer["status"], answer["finish_reason"]) == ("complete", "stop")
    assert answer["content"] == "".join(SLOW)
    assert upstream.wait_for_request(model).outcome == "completed"


def test_a_stopped_answer_is_kept_as_seen_and_goes_back_as_history(served, upstream):
    model = upstream.model(Behaviour(tokens=SLOW, token_interval_s=0.02))
    conversation = new_conversation(served, model=model)
    path = f"/api/conversations/{conversation['id']}/messages"

    def stop_after_ten_tokens(result):
        if len(result.named("token")) == 10:
            stream_id = result.named("start")[0].json()["stream_id"]
            call("POST", f"{served.url}/api/chat/{stream_id}/stop", {})
        return False

    result = post_chat(served.url, {"content": "count"}, path=path, stop_when=stop_after_ten_tokens)
    upstream.wait_for_request(model).ended.wait(5)

    answer = wait_for_final(served, conversation["id"])
    assert answer["status"] == "stopped"
    assert answer["finish_reason"] == "cancelled"
    assert answer["content"] == result.text
    assert answer["content"]
    assert answer["usage"]["estimated"] is True

    quick = upstream.model(Behaviour(tokens=("ok",)))
    send(served, conversation["id"], "go on", model=quick)
    history = upstream.requests_for(quick)[-1].body["messages"]
    assert history[1] == {"role": "assistant", "content": answer["content"]}


def test_regenerate_keeps_the_earlier_answer_as_an_alternative(served, upstream):
    first, second = (
        upstream.model(Behaviour(tokens=("first",))),
        upstream.model(Behaviour(tokens=("second",))),
    )
    conversation = new_conversation(served, model=first)
    send(served, conversation["id"], "hi")
    old = read(served, conversation["id"])["messages"][1]
    result = regenerate(served, conversation["id"], old["id"], model=second)
    assert result.text == "second"

    question, new = read(served, conversation["id"])["messages"]
    assert new["content"] == "second"
    assert new["parent_id"] == question["id"]
    assert new["alternatives"] == [old["id"], new["id"]]
    shown = call("PATCH", f"{served.url}/api/conversations/{conversation['id']}", {"show": old["id"]})[1]
    assert [m["content"] for m in shown["messages"]] == ["hi", "first"]


def test_edit_and_resend_keeps_the_old_branch_as_an_alternative(served, upstream):
    model = upstream.model(Behaviour(tokens=("ok",)))
    conversation = new_conversation(served, model=model)
    send(served, conversation["id"], "first question")
    send(served, conversation["id"], "follow-up")
    original = read(served, conversation["id"])["messages"][0]

    send(served, conversation["id"], "first question, edited", parent_id=None)
    messages = read(served, conversation["id"])["messages"]
    assert [m["content"] for m in messages] == ["first question, edited", "ok"]
    assert messages[0]["alternatives"] == [original["id"], messages[0]["id"]]
    back = call("PATCH", f"{served.url}/api/conversations/{conversation['id']}", {"show": original["id"]})[1]
    assert [m["content"] for m in back["messages"]] == ["first question", "ok", "follow-up", "ok"]


def test_conversations_are_listed_newest_first_a_page_at_a_time(served, upstream):
    ids = [new_conversation(served, title=f"c{i}")["id"] for i in range(5)]
    status, page = call("GET", f"{served.url}/api/conversations?limit=3")
    assert status == 200
    assert [c["id"] for c in page["conversations"]] == ids[::-1][:3]
    rest = call("GET", f"{served.url}/api/conversations?limit=2&before={page['next_before']}")[1]
    assert [c["id"] for c in rest["conversations"]] == ids[::-1][3:]


def test_delete_removes_the_conversation(served, upstream):
    conversation = new_conversation(served, model=upstream.model())
    send(served, conversation["id"], "hi")
    assert call("DELETE", f"{served.url}/api/conversations/{conversation['id']}") == (204, None)
    status, body = call("GET", f"{served.url}/api/conversations/{conversation['id']}")
    assert (status, body["error"]["code"]) == (404, "conversation_not_found")


def snapshot(server):
    """Every conversation with its branch on display: what a bad request must leave as it was."""
    listed = call("GET", f"{server.url}/api/conversations?limit=100")[1]["conversations"]
    return [read(server, c["id"]) for c in listed]


@pytest.fixture
def two_conversations(served, upstream):
    model = upstream.model(Behaviour(tokens=("ok",)))
    a, b = new_conversation(served, model=model), new_conversation(served, model=model)
    send(served, a["id"], "in a")
    send(served, b["id"], "in b")
    return read(served, a["id"]), read(served, b["id"])


BAD_REQUESTS = [
    # (method, path template, body, status, code)
    ("GET", "/api/conversations/nope", None, 404, "conversation_not_found"),
    ("POST", "/api/conversations/nope/messages", {"content": "x"}, 404, "conversation_not_found"),
    (
        "POST",
        "/api/conversations/{a}/messages",
        {"content": "x", "parent_id": "{b_answer}"},
        400,
        "invalid_parent",
    ),
    (
        "POST",
        "/api/conversations/{a}/messages",
        {"content": "x", "parent_id": "{a_question}"},
        400,
        "invalid_parent",
    ),
    ("POST", "/api/conversations/{a}/messages", {"content": "x" * 40_000}, 400, "message_too_long"),
    ("POST", "/api/conversations/{a}/messages", {"content": 5}, 400, "invalid_content"),
    ("POST", "/api/conversations/{a}/messages", {"content": "  "}, 400, "empty_message"),
    (
        "POST",
        "/api/conversations/{a}/messages",
        {"content": "x", "temperature": "hot"},
        400,
        "invalid_temperature",
    ),
    ("POST", "/api/conversations/{a}/messages", {"content": "x", "max_tokens": 0}, 400, "invalid_max_tokens"),
    ("POST", "/api/conversations/{a}/messages", [1, 2], 400, "invalid_body"),
    ("POST", "/api/conversations/{a}/messages", b"{not json", 400, "invalid_json"),
    ("POST", "/api/conversations/{a}/messages/{a_question}/regenerate", {}, 400, "not_an_answer"),
    ("POST", "/api/conversations/{a}/messages/nope/regenerate", {}, 404, "message_not_found"),
    ("POST", "/api/conversations/{a}/messages/{b_answer}/regenerate", {}, 404, "message_not_found"),
    ("PATCH", "/api/conversations/{a}", {"title": ""}, 400, "invalid_title"),
    ("PATCH", "/api/conversations/{a}", {"temperature": 3}, 400, "invalid_temperature"),
    ("PATCH", "/api/conversations/{a}", {"system_prompt": 7}, 400, "invalid_system_prompt"),
    ("PATCH", "/api/conversations/{a}", {"show": "{b_answer}"}, 404, "message_not_found"),
    ("PATCH", "/api/conversations/nope", {"title": "x"}, 404, "conversation_not_found"),
    ("DELETE", "/api/conversations/nope", None, 404, "conversation_not_found"),
    ("GET", "/api/conversations?limit=0", None, 400, "invalid_limit"),
    ("GET", "/api/conversations?before=yesterday", None, 400, "invalid_cursor"),
    ("POST", "/api/conversations", {"max_tokens": -1}, 400, "invalid_max_tokens"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), BAD_REQUESTS)
def test_a_bad_request_is_a_clear_4xx_and_changes_nothing(
    served, two_conversations, method, path, body, status, code
):
    a, b = two_conversations
    names = {
        "a": a["id"],
        "a_question": a["messages"][0]["id"],
        "b_answer": b["messages"][1]["id"],
    }
    if isinstance(body, dict):
        body = {k: v.format(**names) if isinstance(v, str) and "{" in v else v for k, v in body.items()}
    before = snapshot(served)
    got_status, got = call(method, served.url + path.format(**names), body)
    assert (got_status, got["error"]["code"]) == (status, code), got
    assert got["error"]["message"]
    assert snapshot(served) == before


def wait_for_final(server, conversation_id, timeout=10.0):
    answer = {}

    def final():
        answer.update(read(server, conversation_id)["messages"][-1])
        return answer["status"] != "streaming"

    assert wait_until(final, timeout), f"still streaming: {answer}"
    return answer


def test_a_conversation_survives_a_restart(upstream, database_url):
    env = upstream_env(upstream, DATABASE_URL=database_url)
    with GunicornServer(env) as server:
        conversation = new_conversation(server, model=upstream.model())
        send(server, conversation["id"], "remember me")
        before = read(server, conversation["id"])
    with GunicornServer(env) as server:
        assert read(server, conversation["id"]) == before


def test_a_worker_killed_mid_answer_leaves_it_interrupted_one_checkpoint_short_at_most(
    upstream, database_url
):
    interval_s, checkpoint_s = 0.02, 0.2
    model = upstream.model(Behaviour(tokens=SLOW, token_interval_s=interval_s))
    env = upstream_env(upstream, DATABASE_URL=database_url, CHATAPP_CHECKPOINT_S=str(checkpoint_s))
    with GunicornServer(env) as server:
        conversation = new_conversation(server, model=model)
        (worker,) = server.worker_pids()
        path = f"/api/conversations/{conversation['id']}/messages"
        result = post_chat(
            server.url, {"content": "go"}, path=path, stop_when=lambda r: len(r.named("token")) >= 80
        )
        os.kill(worker, signal.SIGKILL)
        # The answer runs nowhere now: the next read finds it orphaned once its checkpoint is old.
        answer = wait_for_final(server, conversation["id"], timeout=15)

    assert answer["status"] == "interrupted"
    received = [e.json()["text"] for e in result.named("token")]
    saved = answer["content"]
    assert "".join(received).startswith(saved)
    assert saved, "nothing was checkpointed in 1.6 s of answer"
    # At most one checkpoint interval of tokens (plus the time the kill took to land) is lost.
    lost = len(received) - saved.count(" w")
    assert lost <= (checkpoint_s + 0.2) / interval_s, f"{lost} tokens lost"


def test_the_models_offered_are_what_the_model_server_lists(served, upstream):
    listed = upstream.model(Behaviour(), name="listed")
    status, body = call("GET", f"{served.url}/api/models")
    assert status == 200
    assert body["default"] == "gpt-4o-mini"
    assert body["models"][0] == "gpt-4o-mini"
    assert listed in body["models"]


def test_the_models_offered_are_chatapp_models_when_the_operator_set_them(chatapp_server, upstream):
    server = chatapp_server(upstream, CHATAPP_MODELS="small,large")
    assert call("GET", f"{server.url}/api/models") == (
        200,
        {"models": ["small", "large"], "default": "small"},
    )


def test_a_locked_database_stalls_no_other_stream(chatapp_server, upstream, sqlite_url):
    """While another process holds SQLite's write lock, a conversation's write waits for it in a
    native thread: the worker's 50 other streams keep their pace. Their longest gap (50-230 ms here,
    the machine idle or loaded five times over) is judged against the lock's 1.5 s that a wait in
    the worker's hub would add to it."""
    import sqlite3
    import threading
    from concurrent.futures import ThreadPoolExecutor

    held_s = 1.5
    server = chatapp_server(upstream, DATABASE_URL=sqlite_url)
    steady = upstream.model(Behaviour(tokens=tuple(f" t{i}" for i in range(60)), token_interval_s=0.05))
    conversation = new_conversation(server, model=upstream.model())
    locked, released = threading.Event(), threading.Event()

    def hold_the_write_lock():
        db = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        locked.set()
        released.wait(10)
        db.execute("COMMIT")
        db.close()

    def blocked_send():
        assert locked.wait(10)
        return send(server, conversation["id"], "written once the lock is gone")

    with ThreadPoolExecutor(max_workers=52) as pool:
        streams = [
            pool.submit(
                post_chat, server.url, {"messages": [{"role": "user", "content": "x"}], "model": steady}
            )
            for _ in range(50)
        ]
        assert wait_until(lambda: len(upstream.requests_for(steady)) == 50, 10)
        holder = pool.submit(hold_the_write_lock)
        sent = pool.submit(blocked_send)
        assert locked.wait(10)
        threading.Timer(held_s, released.set).start()
        results = [s.result(timeout=30) for s in streams]
        holder.result(timeout=15)
        answered = sent.result(timeout=30)

    assert answered.done == {"finish_reason": "stop"}
    for result in results:
        times = [e.at for e in result.named("token")]
        assert len(times) == 60
        assert max(b - a for a, b in itertools.pairwise(times)) < held_s / 2


def test_the_stop_endpoint_ends_a_conversation_stream_and_keeps_what_was_said(served, upstream):
    model = upstream.model(Behaviour(tokens=SLOW, token_interval_s=0.02))
    conversation = new_conversation(served, model=model)
    path = f"/api/conversations/{conversation['id']}/messages"
    stopped: list[tuple[int, Any]] = []

    def stop_after_five_tokens(result):
        if len(result.named("token")) >= 5 and not stopped:
            stream_id = result.named("start")[0].json()["stream_id"]
            stopped.append(call("POST", f"{served.url}/api/chat/{stream_id}/stop", {}))
        return False

    result = post_chat(served.url, {"content": "count"}, path=path, stop_when=stop_after_five_tokens)
    assert stopped[0] == (202, {"stopped": True})
    assert result.done == {"finish_reason": "cancelled"}
    assert upstream.wait_for_request(model).ended.wait(2), "the upstream request is still open"
    answer = read(served, conversation["id"])["messages"][-1]
    assert (answer["status"], answer["content"]) == ("stopped", result.text)
