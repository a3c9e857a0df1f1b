"""The wire vocabulary: every name defined once, every model-side outcome mapped, docs/api.md in step."""

import re
from pathlib import Path

import pytest

from chatapp.llm.base import FailureKind, StopReason, Usage
from chatapp.protocol import (
    ErrorCode,
    Event,
    EventWriter,
    FinishReason,
    StreamErrorCode,
    finish_reason_for,
    new_stream_id,
    stream_error_code,
)
from tests.support.sse_client import SseDecoder

API_DOC = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()


def documented_codes(heading: str) -> set[str]:
    """The backticked codes in the first column of the table under `heading` in docs/api.md."""
    section = API_DOC.split(heading, 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


def test_every_way_the_model_side_fails_has_a_stream_error_code():
    assert {stream_error_code(kind) for kind in FailureKind} == set(StreamErrorCode) - {
        StreamErrorCode.INTERNAL_ERROR
    }


def test_every_stop_reason_of_a_model_is_a_finish_reason():
    assert [finish_reason_for(reason) for reason in StopReason] == [FinishReason.STOP, FinishReason.LENGTH]


def test_internal_error_is_the_same_code_in_a_body_and_in_a_stream():
    # As str, which both are: mypy's strict equality takes members of two StrEnums for unequal.
    in_a_stream: str = StreamErrorCode.INTERNAL_ERROR
    in_a_body: str = ErrorCode.INTERNAL_ERROR
    assert in_a_stream == in_a_body == "internal_error"


def test_the_error_event_codes_are_those_docs_api_md_lists():
    assert documented_codes("#### `error` event codes") == {str(code) for code in StreamErrorCode}


def test_every_error_body_code_is_documented():
    mentioned = set(re.findall(r'`(?:\d{3} )?([a-z_]+)`|"code": "([a-z_]+)"', API_DOC))
    mentioned = {word for pair in mentioned for word in pair if word}
    assert {str(code) for code in ErrorCode} <= mentioned


def test_every_event_name_is_documented():
    assert documented_codes("Then come these events") == {str(name) for name in Event}


def test_the_writer_numbers_events_from_one_with_the_stream_id():
    writer = EventWriter("abc")
    frames = (
        writer.start("m") + writer.token("Hi") + writer.usage(Usage(1, 2, 3)) + writer.done(FinishReason.STOP)
    )
    events = list(SseDecoder().feed(frames))
    assert [(e.id, e.event) for e in events] == [
        ("abc:1", "start"),
        ("abc:2", "token"),
        ("abc:3", "usage"),
        ("abc:4", "done"),
    ]
    assert events[0].json() == {"stream_id": "abc", "model": "m"}
    assert events[2].json() == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert writer.sequence == 4


@pytest.mark.parametrize(
    ("served", "payload"),
    [(None, {"finish_reason": "stop"}), ("llama-3.2-3b", {"finish_reason": "stop", "model": "llama-3.2-3b"})],
)
def test_done_names_the_model_only_when_another_one_answered(served, payload):
    (event,) = SseDecoder().feed(EventWriter("s").done(FinishReason.STOP, served))
    assert event.json() == payload


def test_error_events_carry_code_and_message():
    (event,) = SseDecoder().feed(EventWriter("s").error(StreamErrorCode.UPSTREAM_TIMEOUT, "too slow"))
    assert (event.event, event.json()) == ("error", {"code": "upstream_timeout", "message": "too slow"})


def test_stream_ids_are_22_url_safe_characters():
    ids = {new_stream_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)
