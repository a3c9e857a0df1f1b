"""Admission (chatapp/streaming/admission.py): this worker's caps on streams, in all and per client
(0: no cap), its refusal of everything once it drains, and `admitted()`, which takes a stream in
here and across processes as one step and gives both back when the request fails first."""

from __future__ import annotations

import pytest

from chatapp.streaming.admission import (
    Admission,
    ClientBusy,
    Refused,
    Release,
    ShuttingDown,
    WorkerFull,
    admitted,
)


class SharedCount:
    """What every process shares (the coordinator's count), with a per-client cap of `cap`."""

    def __init__(self, cap: int = 0) -> None:
        self.cap = cap
        self.held: dict[str, int] = {}

    def admit(self, client: str) -> Release:
        if self.cap and self.held.get(client, 0) >= self.cap:
            raise ClientBusy
        self.held[client] = self.held.get(client, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.held[client] -= 1

        return release


def admits(admission: Admission, client: str) -> bool:
    """Whether one more stream for `client` would be admitted now (given back at once if so)."""
    try:
        admission.admit(client)()
    except Refused:
        return False
    return True


def test_a_full_worker_refuses_the_next_stream_until_one_ends() -> None:
    admission = Admission(max_streams=2)
    first = admission.admit("a")
    admission.admit("b")

    with pytest.raises(WorkerFull):
        admission.admit("c")
    first()

    assert admits(admission, "c")


def test_a_client_at_its_cap_is_refused_while_others_are_admitted() -> None:
    admission = Admission(max_per_client=1)
    release = admission.admit("10.0.0.1")

    with pytest.raises(ClientBusy):
        admission.admit("10.0.0.1")
    assert admits(admission, "10.0.0.2")
    release()
    assert admits(admission, "10.0.0.1")


def test_zero_means_no_cap() -> None:
    admission = Admission(max_streams=0, max_per_client=0)

    releases = [admission.admit("one client") for _ in range(1000)]

    assert len(releases) == 1000


@pytest.mark.parametrize(
    ("caps", "refusal"),
    [({"max_streams": 1}, WorkerFull), ({"max_per_client": 1}, ClientBusy)],
    ids=["worker", "client"],
)
def test_releasing_twice_gives_back_one_stream(caps: dict[str, int], refusal: type[Refused]) -> None:
    """A response may call its release from more than one place (its end, its close): a second call
    must not free a slot that another stream then holds."""
    admission = Admission(**caps)
    release = admission.admit("a")

    release()
    release()
    admission.admit("a")

    with pytest.raises(refusal):
        admission.admit("a")


def test_a_closed_admission_refuses_everything_as_shutting_down() -> None:
    admission = Admission()  # no caps at all
    admission.close()

    with pytest.raises(ShuttingDown) as refused:
        admission.admit("a")
    assert isinstance(refused.value, Refused)


def test_admitted_keeps_both_counts_when_the_block_returns() -> None:
    local, shared = Admission(max_streams=1), SharedCount()

    with admitted(local, shared, "a") as release:
        pass

    assert shared.held == {"a": 1}
    assert not admits(local, "b"), "the stream's slot was given back although its response runs"
    release()
    assert shared.held == {"a": 0}
    assert admits(local, "b")


def test_admitted_gives_both_counts_back_when_the_block_raises() -> None:
    local, shared = Admission(max_streams=1), SharedCount()

    with pytest.raises(ValueError, match="bad body"), admitted(local, shared, "a"):
        raise ValueError("bad body")

    assert shared.held == {"a": 0}
    assert admits(local, "a")


def test_admitted_gives_the_local_count_back_when_the_shared_one_refuses() -> None:
    local, shared = Admission(max_streams=1), SharedCount(cap=1)
    shared.admit("a")  # the client's one stream, in another process

    with pytest.raises(ClientBusy), admitted(local, shared, "a"):
        pytest.fail("admitted a stream that the shared count refused")

    assert admits(local, "b")
