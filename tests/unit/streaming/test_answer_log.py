"""AnswerLog: what a reattaching reader replays from a position, and how it follows what comes after."""

from __future__ import annotations

import threading
import time
from typing import cast

import pytest

from chatapp.streaming.answer_log import KEEP_ALIVE, AnswerLog, Chunk, data_after, frames_after, sequence_of

STREAM = "q3Zb2f0n8E6Hn1hVQ7bA2w"


def frame(sequence: int, event: str = "token", data: str = '{"text":"x"}') -> bytes:
    return f"id: {STREAM}:{sequence}\nevent: {event}\ndata: {data}\n\n".encode()


def frames(first: int, last: int) -> bytes:
    return b"".join(frame(n) for n in range(first, last + 1))


def log_of(*spans: tuple[int, int]) -> AnswerLog:
    """A log holding one chunk per (first, last) span, as one relay read each."""
    answer_log = AnswerLog(STREAM)
    for first, last in spans:
        answer_log.append(frames(first, last), last)
    return answer_log


def test_sequence_of_reads_the_id_line():
    assert sequence_of(frame(42)) == 42


@pytest.mark.parametrize(
    ("position", "expected"),
    [(0, (1, 4)), (1, (2, 4)), (2, (3, 4)), (3, (4, 4)), (4, None), (9, None)],
    ids=["before", "after-first", "inside", "before-last", "at-end", "past-end"],
)
def test_frames_after_cuts_a_chunk_at_an_event_boundary(position, expected):
    assert frames_after(frames(1, 4), position) == (frames(*expected) if expected else b"")


def test_frames_after_reads_the_sequence_from_the_id_line_whatever_the_data_holds():
    """The sequence comes from the id line only, however the data looks."""
    tricky = frame(5, data='{"text":"a: 1\\n\\nb"}')
    assert frames_after(frame(4) + tricky, 4) == tricky


CHUNKS = [Chunk(1, 3, frames(1, 3)), Chunk(4, 4, frames(4, 4)), Chunk(5, 8, frames(5, 8))]


@pytest.mark.parametrize(
    ("position", "first_index", "expected"),
    [
        (0, 0, (1, 8)),  # from the start
        (2, 0, (3, 8)),  # inside the first chunk
        (3, 1, (4, 8)),  # at a chunk boundary
        (4, 2, (5, 8)),  # a one-event chunk read
        (6, 2, (7, 8)),  # inside the last chunk
        (8, 3, None),  # at the end
        (20, 3, None),  # past the end
    ],
)
def test_a_position_maps_to_the_first_chunk_holding_what_follows_and_to_the_exact_frames(
    position, first_index, expected
):
    answer_log = AnswerLog(STREAM)
    answer_log.chunks = list(CHUNKS)
    assert answer_log.first_index_after(position) == first_index
    assert data_after(CHUNKS[first_index:], position) == (frames(*expected) if expected else b"")


def test_append_numbers_a_chunk_from_the_last_sequence_and_wakes_a_waiter():
    answer_log = log_of((1, 2))
    assert answer_log.chunks == [Chunk(1, 2, frames(1, 2))]
    woken = threading.Event()

    def wait_then_wake() -> None:
        if answer_log.wait(1, 5):
            woken.set()

    threading.Thread(target=wait_then_wake, daemon=True).start()
    time.sleep(0.05)  # the waiter is waiting (if not yet, wait() returns at once: the same outcome)
    answer_log.append(frames(3, 5), 5)
    assert woken.wait(2)
    assert (answer_log.chunks[-1].first, answer_log.chunks[-1].last, answer_log.last) == (3, 5, 5)


def test_wait_returns_false_after_its_timeout_when_nothing_came():
    answer_log = log_of((1, 2))
    started = time.monotonic()
    assert answer_log.wait(1, 0.05) is False
    assert time.monotonic() - started >= 0.05
    assert answer_log.wait(0, 0.05) is True  # a chunk at that index is there already


def test_follow_replays_from_a_position_inside_a_chunk_then_ends_after_end():
    answer_log = log_of((1, 3), (4, 6))
    answer_log.end()
    assert list(answer_log.follow(2, heartbeat_s=1)) == [frames(3, 6)]
    assert list(answer_log.follow(6, heartbeat_s=1)) == []
    assert list(answer_log.follow(99, heartbeat_s=1)) == []


def test_follow_waits_for_new_chunks_with_keep_alives_and_ends_after_end():
    answer_log = log_of((1, 2))
    reader = answer_log.follow(1, heartbeat_s=0.05)
    assert next(reader) == frames(2, 2)
    assert next(reader) == KEEP_ALIVE  # nothing came for a heartbeat

    def write_then_end() -> None:
        time.sleep(0.02)
        answer_log.append(frames(3, 4), 4)
        time.sleep(0.02)
        answer_log.append(frames(5, 5), 5)
        answer_log.end()

    threading.Thread(target=write_then_end, daemon=True).start()
    rest = [chunk for chunk in reader if chunk != KEEP_ALIVE]
    assert b"".join(rest) == frames(3, 5)


def test_two_followers_get_the_same_bytes():
    answer_log = log_of((1, 1))
    results: list[bytes] = [b"", b""]

    def read(i: int) -> None:
        results[i] = b"".join(c for c in answer_log.follow(0, heartbeat_s=0.05) if c != KEEP_ALIVE)

    readers = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    for thread in readers:
        thread.start()
    for first in range(2, 40, 3):
        answer_log.append(frames(first, first + 2), first + 2)
        time.sleep(0.001)
    answer_log.end()
    for thread in readers:
        thread.join(5)
    assert results == [frames(1, 40)] * 2


def test_readers_are_counted_and_the_log_notes_since_when_nobody_reads():
    answer_log = log_of((1, 1))
    assert answer_log.unread_since is not None  # nobody yet
    # follow() is a generator (typed as an Iterator): close() ends it, as a client hanging up does.
    reader = answer_log.follow(0, heartbeat_s=1)
    next(reader)
    # mypy keeps unread_since narrowed to float across follow(), which clears it (python/mypy#13240).
    assert (answer_log.readers, cast(float | None, answer_log.unread_since)) == (1, None)
    before = time.monotonic()
    reader.close()
    assert answer_log.readers == 0
    assert answer_log.unread_since is not None
    assert answer_log.unread_since >= before


def test_end_is_recorded_once():
    answer_log = log_of((1, 1))
    assert not answer_log.ended
    answer_log.end()
    ended_at = answer_log.ended_at
    answer_log.end()
    # mypy keeps ended narrowed to False across end() (python/mypy#13240).
    assert cast(bool, answer_log.ended)
    assert answer_log.ended_at == ended_at
