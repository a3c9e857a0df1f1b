"""Decoding an OpenAI chat-completion stream body: every kind of chunk real servers send."""

import json
from typing import cast

import pytest

from chatapp.llm.base import FailureKind, Finish, ReasoningDelta, StopReason, TextDelta, UpstreamError, Usage
from chatapp.llm.completion_events import CompletionEventDecoder


def chunk(delta=None, finish=None, **extra):
    body = {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(body)}"


def decode(*lines):
    """Decode a body made of these lines, fed in one piece."""
    return decode_pieces(["\n".join(lines).encode() + b"\n"])


def decode_pieces(pieces):
    decoder = CompletionEventDecoder()
    events = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    events.extend(decoder.end())
    return events


def test_an_openai_stream_with_usage():
    events = decode(
        chunk({"role": "assistant", "content": ""}),
        "",
        chunk({"content": "Hel"}),
        "",
        chunk({"content": "lo"}),
        "",
        chunk({}, "stop"),
        "",
        'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}',
        "",
        "data: [DONE]",
        "",
    )
    assert events == [TextDelta("Hel"), TextDelta("lo"), Usage(3, 2, 5), Finish(StopReason.STOP)]


def test_length_finish():
    assert decode(chunk({"content": "a"}, "length"), "", "data: [DONE]", "")[-1] == Finish(StopReason.LENGTH)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_deltas_are_their_own_events(field):
    events = decode(chunk({field: "think"}), "", chunk({"content": "say"}, "stop"), "")
    assert events[:2] == [ReasoningDelta("think"), TextDelta("say")]


def test_comments_and_other_fields_are_ignored():
    events = decode(": ping", "event: message", "id: 1", chunk({"content": "x"}, "stop"), "")
    assert events == [TextDelta("x"), Finish(StopReason.STOP)]


def test_data_split_over_several_lines_is_joined():
    events = decode('data: {"choices": [{"delta": {"content": "a"},', 'data: "finish_reason": "stop"}]}', "")
    assert events == [TextDelta("a"), Finish(StopReason.STOP)]


def test_done_without_finish_reason_is_a_normal_stop():
    assert decode(chunk({"content": "a"}), "", "data: [DONE]", "") == [
        TextDelta("a"),
        Finish(StopReason.STOP),
    ]


def test_running_usage_on_every_chunk_reports_the_last():
    events = decode(
        chunk({"content": "a"}, usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}),
        "",
        chunk({}, "stop", usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}),
        "",
    )
    assert events[-2:] == [Usage(1, 2, 3), Finish(StopReason.STOP)]


def test_ending_without_finish_or_done_is_incomplete():
    with pytest.raises(UpstreamError) as caught:
        decode(chunk({"content": "a"}), "")
    assert caught.value.kind is FailureKind.INCOMPLETE


def test_an_event_cut_off_by_the_end_of_the_body_is_not_decoded():
    with pytest.raises(UpstreamError) as caught:
        decode_pieces([chunk({"content": "a"}, "stop").encode()])  # no blank line after it
    assert caught.value.kind is FailureKind.INCOMPLETE


BODY = (
    chunk({"content": "é中🚀"}) + "\n\n" + chunk({"content": "b"}, "stop") + "\n\ndata: [DONE]\n\n"
).encode()
EXPECTED = [TextDelta("é中🚀"), TextDelta("b"), Finish(StopReason.STOP)]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_at_every_split_point(newline):
    body = BODY.replace(b"\n", newline)
    for cut in range(len(body) + 1):
        assert decode_pieces([body[:cut], body[cut:]]) == EXPECTED, (newline, cut)


def test_one_byte_at_a_time():
    body = BODY.replace(b"\n", b"\r\n")
    assert decode_pieces([body[i : i + 1] for i in range(len(body))]) == EXPECTED


def test_a_crlf_split_between_reads_is_one_line_end():
    """After httpx's LineDecoder tests: a CR ending one read and an LF starting the next."""
    pieces = [b"", chunk({"content": "a"}).encode() + b"\r", b"\n\r\ndata: [DONE]\r", b"\n\r\n"]
    assert decode_pieces(pieces) == [TextDelta("a"), Finish(StopReason.STOP)]


@pytest.mark.parametrize(
    "line",
    [
        'data: {"choices": [{"delta": {"content": "x"',
        "data: [1, 2]",
        'data: {"choices": "nope"}',
        'data: {"choices": [], "usage": {"prompt_tokens": "many"}}',
    ],
)
def test_malformed_chunks_are_upstream_malformed(line):
    with pytest.raises(UpstreamError) as caught:
        decode(line, "")
    assert caught.value.kind is FailureKind.MALFORMED


def test_an_error_object_in_the_stream_is_reported():
    with pytest.raises(UpstreamError) as caught:
        decode('data: {"error": {"message": "model overloaded"}}', "")
    assert caught.value.kind is FailureKind.SERVER_ERROR
    assert "model overloaded" in caught.value.message


def test_events_before_a_malformed_one_in_the_same_read_are_kept():
    decoder = CompletionEventDecoder()
    body = f"{chunk({'content': 'kept'})}\n\ndata: {{not json\n\n".encode()
    assert decoder.feed(body) == [TextDelta("kept")]
    with pytest.raises(UpstreamError) as caught:
        decoder.feed(b"")
    assert caught.value.kind is FailureKind.MALFORMED


def test_the_served_model_is_the_one_the_chunks_name():
    """llama.cpp's server answers any model name with its own: the chunks say which one answered."""
    decoder = CompletionEventDecoder()
    assert decoder.served_model is None
    decoder.feed(f"{chunk({'content': 'a'}, model='llama-3.2-3b')}\n\n".encode())
    # mypy keeps served_model narrowed to None across feed(), which sets it (python/mypy#13240).
    assert cast(str | None, decoder.served_model) == "llama-3.2-3b"
    decoder.feed(f"{chunk({}, 'stop', model='')}\n\n".encode())
    assert decoder.served_model == "llama-3.2-3b"


def test_no_served_model_when_the_chunks_name_none():
    decoder = CompletionEventDecoder()
    decoder.feed(f"{chunk({'content': 'a'}, 'stop')}\n\ndata: [DONE]\n\n".encode())
    assert decoder.served_model is None


def test_a_line_over_the_limit_is_upstream_malformed():
    decoder = CompletionEventDecoder(max_line_bytes=4096)
    with pytest.raises(UpstreamError) as caught:
        decoder.feed(b'data: {"choices": [{"delta": {"content": "' + b"x" * 5000)
    assert caught.value.kind is FailureKind.MALFORMED
    assert "4,096 bytes" in caught.value.message


def test_events_before_an_over_long_line_in_the_same_read_are_kept():
    decoder = CompletionEventDecoder(max_line_bytes=4096)
    body = f"{chunk({'content': 'kept'})}\n\n{chunk({'content': 'x' * 5000})}\n\n".encode()
    assert decoder.feed(body) == [TextDelta("kept")]
    with pytest.raises(UpstreamError) as caught:
        decoder.check()
    assert caught.value.kind is FailureKind.MALFORMED


def test_a_malformed_chunk_before_an_over_long_line_is_the_error_reported():
    decoder = CompletionEventDecoder(max_line_bytes=4096)
    with pytest.raises(UpstreamError) as caught:
        decoder.feed(b"data: {not json\n\ndata: " + b"x" * 5000)
    assert "could not read" in caught.value.message


@pytest.mark.parametrize("field", ["content", "reasoning_content", "reasoning"])
def test_a_delta_over_the_limit_is_upstream_malformed(field):
    decoder = CompletionEventDecoder(max_delta_chars=1000)
    with pytest.raises(UpstreamError) as caught:
        decoder.feed(f"{chunk({field: 'x' * 1001})}\n\n".encode())
    assert caught.value.kind is FailureKind.MALFORMED
    assert "1,000 characters" in caught.value.message


@pytest.mark.parametrize("text", ["x" * 1000, "é" * 1000, "🚀" * 1000], ids=["ascii", "latin", "emoji"])
def test_a_delta_at_the_limit_is_relayed_however_many_bytes_it_takes(text):
    """Characters, not bytes: JSON escapes (json.dumps writes é as \\u00e9, 🚀 as two) do not count."""
    decoder = CompletionEventDecoder(max_delta_chars=1000)
    assert decoder.feed(f"{chunk({'content': text})}\n\n".encode()) == [TextDelta(text)]


def test_a_large_payload_with_small_deltas_is_not_a_large_delta():
    decoder = CompletionEventDecoder(max_delta_chars=1000)
    body = f"{chunk({'content': 'a'}, system_fingerprint='f' * 5000)}\n\n".encode()
    assert decoder.feed(body) == [TextDelta("a")]
