"""The offline demo model: deterministic, prompt-dependent, paced, and honest about max_tokens."""

import re
import threading
import time

from chatapp.llm.base import BackendEvent, ChatRequest, Finish, Message, StopReason, TextDelta, Usage
from chatapp.llm.demo_backend import DEMO_MODEL, DemoBackend, compose_answer


def ask(text, *, max_tokens=None, history=()):
    return ChatRequest(messages=(*history, Message("user", text)), model=DEMO_MODEL, max_tokens=max_tokens)


def run(request, tokens_per_s=10_000.0, first_token_s=0.0):
    backend = DemoBackend(tokens_per_s, first_token_s)
    return read_all(backend.stream(request))


def read_all(stream, timeout=1.0):
    """Every event until Finish, as the relay reads them; [] reads past the deadline end it."""
    stream.open()
    events: list[BackendEvent] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (events and isinstance(events[-1], Finish)):
        events += stream.read(timeout)
    return events


def text_of(events):
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_same_conversation_gets_the_same_answer():
    assert text_of(run(ask("hello"))) == text_of(run(ask("hello")))


def test_different_prompts_get_different_answers():
    assert compose_answer(ask("tell me about cats")) != compose_answer(ask("tell me about dogs"))
    assert compose_answer(ask("hi")) != compose_answer(ask("hi", history=(Message("user", "earlier"),)))


def test_answer_is_readable_multi_sentence_text_with_unicode_and_newlines():
    text = text_of(run(ask("what is chatapp?")))
    assert "what is chatapp?" in text
    assert len(re.findall(r"[.!?](\s|$)", text)) >= 6
    assert "\n" in text
    assert any(ord(ch) > 0xFFFF for ch in text), "no 4-byte character (emoji)"
    assert any(0x4E00 <= ord(ch) <= 0x9FFF for ch in text), "no CJK character"


def test_long_enough_to_press_stop():
    tokens = [e for e in run(ask("hi")) if isinstance(e, TextDelta)]
    assert len(tokens) >= 120  # four seconds at the default 30 tokens/s


def test_finishes_with_usage_then_stop():
    events = run(ask("hi"))
    assert isinstance(events[-2], Usage)
    assert events[-1] == Finish(StopReason.STOP)
    assert events[-2].completion_tokens == sum(isinstance(e, TextDelta) for e in events)


def test_max_tokens_cuts_the_answer_with_finish_length():
    events = run(ask("hi", max_tokens=5))
    assert sum(isinstance(e, TextDelta) for e in events) == 5
    assert events[-1] == Finish(StopReason.LENGTH)


def test_paced_like_a_model():
    start = time.monotonic()
    run(ask("hi", max_tokens=10), tokens_per_s=100, first_token_s=0.2)
    assert time.monotonic() - start >= 0.2 + 9 / 100


def test_close_ends_the_stream_at_once():
    stream = DemoBackend(tokens_per_s=0.2, first_token_s=0).stream(ask("hi"))
    stream.open()
    assert stream.read(10.0)  # the first token is due at once
    threading.Timer(0.1, stream.close).start()
    start = time.monotonic()
    assert stream.read(10.0) == []  # the next is 5 s away: close() ends the wait
    assert time.monotonic() - start < 5 / 2


def test_tokens_that_are_due_arrive_in_one_read():
    stream = DemoBackend(tokens_per_s=100, first_token_s=0).stream(ask("hi"))
    stream.open()
    time.sleep(0.2)
    assert len(stream.read(1.0)) >= 15


def test_a_read_returns_nothing_when_no_token_is_due_within_its_timeout():
    stream = DemoBackend(tokens_per_s=30, first_token_s=5.0).stream(ask("hi"))
    stream.open()
    start = time.monotonic()
    assert stream.read(0.1) == []
    assert 0.09 <= time.monotonic() - start < 5.0 / 2  # its timeout, not the token's time


def test_the_demo_answers_as_itself():
    stream = DemoBackend(tokens_per_s=10_000, first_token_s=0).stream(ask("hi"))
    assert stream.model == stream.served_model == DEMO_MODEL
