"""Stored conversations' answers over HTTP, for the tests of resuming and stopping them: start one,
stop or reattach to it by its stream id, read what was stored, and check a sequence of events."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.support.json_client import call
from tests.support.sse_client import SseEvent, StreamResult, post_chat
from tests.support.waiting import wait_until


def new_conversation(base_url: str, model: str) -> str:
    status, body = call("POST", f"{base_url}/api/conversations", {"model": model})
    assert status == 201, body
    conversation_id: str = body["id"]
    return conversation_id


def send(
    base_url: str,
    conversation_id: str,
    content: str = "go",
    *,
    stop_when: Callable[[StreamResult], bool] | None = None,
    timeout: float = 30.0,
) -> StreamResult:
    """Send a message; its answer streams back (read to the end, or until `stop_when` hangs up)."""
    path = f"/api/conversations/{conversation_id}/messages"
    return post_chat(base_url, {"content": content}, path=path, stop_when=stop_when, timeout=timeout)


def tokens_at_least(n: int) -> Callable[[StreamResult], bool]:
    """A `stop_when` that hangs up once `n` tokens arrived."""
    return lambda result: len(result.named("token")) >= n


def stream_id_of(result: StreamResult) -> str:
    stream_id: str = result.named("start")[0].json()["stream_id"]
    return stream_id


def stop(base_url: str, stream_id: str) -> tuple[int, Any]:
    """`POST /api/chat/<stream_id>/stop` as the page sends it."""
    return call("POST", f"{base_url}/api/chat/{stream_id}/stop", {})


def stored_answer(base_url: str, conversation_id: str) -> dict[str, Any]:
    status, body = call("GET", f"{base_url}/api/conversations/{conversation_id}")
    assert status == 200, body
    answer: dict[str, Any] = body["messages"][-1]
    return answer


def final_answer(base_url: str, conversation_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The stored answer once it is no longer `streaming`."""
    answer: dict[str, Any] = {}

    def ended() -> bool:
        answer.update(stored_answer(base_url, conversation_id))
        status: str = answer["status"]
        return status != "streaming"

    assert wait_until(ended, timeout), f"still streaming after {timeout} s: {answer}"
    return answer


def sequence_of(event: SseEvent) -> int:
    assert event.id is not None, f"an event without an id: {event}"
    return int(event.id.rsplit(":", 1)[1])


def wire(events: Sequence[SseEvent]) -> list[tuple[str | None, str, str]]:
    """What a client can tell events apart by: id, name and data (not when they arrived)."""
    return [(e.id, e.event, e.data) for e in events]


def assert_one_gapless_answer(events: Sequence[SseEvent], stream_id: str, text: str, finish: str) -> None:
    """`events` are one whole answer, from `start` to its `done`: ids `<stream_id>:1..n` with no gap
    and no repeat, the tokens joined are `text`, and it ends with `finish`."""
    ids = [e.id for e in events]
    assert ids == [f"{stream_id}:{n}" for n in range(1, len(events) + 1)], ids
    assert all(a < b for a, b in itertools.pairwise(sequence_of(e) for e in events))
    assert events[0].event == "start"
    assert [e.event for e in events].count("done") == 1
    assert events[-1].event == "done"
    assert events[-1].json() == {"finish_reason": finish}
    assert "".join(e.json()["text"] for e in events if e.event == "token") == text


class Background:
    """An answer read to its end in a thread of its own, watched while it streams. `read` is
    `post_chat` or `follow_stream` with its arguments bound but for `stop_when`."""

    def __init__(self, read: Callable[..., StreamResult]) -> None:
        self.live: StreamResult | None = None
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._future = self._pool.submit(read, stop_when=self._watch)

    def _watch(self, result: StreamResult) -> bool:
        self.live = result
        return False

    def tokens(self) -> int:
        return 0 if self.live is None else len(self.live.named("token"))

    def wait_for_tokens(self, n: int, timeout: float = 10.0) -> None:
        assert wait_until(lambda: self.tokens() >= n or self._future.done(), timeout), (
            f"{self.tokens()} tokens after {timeout} s"
        )
        assert self.tokens() >= n, self._future.result()

    @property
    def stream_id(self) -> str:
        assert self.live is not None, "nothing arrived yet"
        return stream_id_of(self.live)

    def result(self, timeout: float = 30.0) -> StreamResult:
        try:
            return self._future.result(timeout)
        finally:
            self._pool.shutdown(wait=False)
