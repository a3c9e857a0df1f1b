"""Decoding an OpenAI stream body: every kind of chunk real servers send."""

import json

import pytest

from chatapp.llm.base import Finish, ReasoningDelta, TextDelta, UpstreamError, Usage
from chatapp.llm.chunks import ChunkDecoder


def chunk(delta=None, finish=None, **extra):
    body = {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(body)}"


def decode(*lines):
    decoder = ChunkDecoder()
    events = []
    for line in lines:
        events.extend(decoder.feed_line(line))
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
    assert events == [TextDelta("Hel"), TextDelta("lo"), Usage(3, 2, 5), Finish("stop")]


def test_length_finish():
    assert decode(chunk({"content": "a"}, "length"), "", "data: [DONE]", "")[-1] == Finish("length")


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_deltas_are_their_own_events(field):
    events = decode(chunk({field: "think"}), "", chunk({"content": "say"}, "stop"), "")
    assert events[:2] == [ReasoningDelta("think"), TextDelta("say")]


def test_comments_and_other_fields_are_ignored():
    events = decode(": ping", "event: message", "id: 1", chunk({"content": "x"}, "stop"), "")
    assert events == [TextDelta("x"), Finish("stop")]


def test_data_split_over_several_lines_is_joined():
    events = decode('data: {"choices": [{"delta": {"content": "a"},', 'data: "finish_reason": "stop"}]}', "")
    assert events == [TextDelta("a"), Finish("stop")]


def test_done_without_finish_reason_is_a_normal_stop():
    assert decode(chunk({"content": "a"}), "", "data: [DONE]", "") == [TextDelta("a"), Finish("stop")]


def test_running_usage_on_every_chunk_reports_the_last():
    events = decode(
        chunk({"content": "a"}, usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}),
        "",
        chunk({}, "stop", usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}),
        "",
    )
    assert events[-2:] == [Usage(1, 2, 3), Finish("stop")]


def test_ending_without_finish_or_done_is_incomplete():
    decoder = ChunkDecoder()
    list(decoder.feed_line(chunk({"content": "a"})))
    list(decoder.feed_line(""))
    with pytest.raises(UpstreamError) as caught:
        list(decoder.end())
    assert caught.value.code == "upstream_incomplete"


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
    assert caught.value.code == "upstream_malformed"


def test_an_error_object_in_the_stream_is_reported():
    with pytest.raises(UpstreamError) as caught:
        decode('data: {"error": {"message": "model overloaded"}}', "")
    assert caught.value.code == "upstream_server_error"
    assert "model overloaded" in caught.value.message
