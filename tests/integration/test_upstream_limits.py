"""What one upstream answer may make a worker hold, under real gunicorn with one gevent worker: a line
that never ends, or a delta over the limit, ends that one stream with `upstream_malformed` and closes
its upstream connection, while another stream on the same worker keeps its pace.

"Keeps its pace" is judged against the same stream beside ordinary answers, measured in the same
test: a paced stream's longest gap is mostly this machine's load (25-40 ms here, 130-260 ms with
the machine three times slower), while the regressions pinned here stalled it ten times that or
for good."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from chatapp.llm.completion_events import MAX_DELTA_CHARS
from chatapp.llm.event_stream_lines import MAX_LINE_BYTES
from harness.gunicorn import GunicornServer
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.sse_client import StreamResult, ask, post_chat
from tests.support.waiting import wait_until

MB = 1_000_000
PACE_S = 0.02  # the paced stream's token interval
PACED_FOR_S = 2.5  # long enough to run before, during and after the abuse
# The longest gap beside the abuse may be this many times the one beside ordinary answers.
STALL_FACTOR = 4


def paced_beside(
    app: GunicornServer, upstream: FakeUpstream, abuse: Callable[[], list[StreamResult]]
) -> tuple[StreamResult, list[StreamResult]]:
    """Run `abuse` while a stream paced at PACE_S runs on the same worker; both results."""
    paced = upstream.model(Behaviour(tokens=("t",) * round(PACED_FOR_S / PACE_S), token_interval_s=PACE_S))
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(post_chat, app.url, ask(paced))
        upstream.wait_for_request(paced)
        record = upstream.requests_for(paced)[0]
        assert wait_until(lambda: record.sent_bytes > 2000)  # a few tokens in: it streams
        abused = abuse()
        result = running.result(timeout=30)
    tokens = [e.at for e in result.named("token")]
    assert result.done == {"finish_reason": "stop"}
    assert tokens[0] < min(r.opened_at for r in abused)
    assert max(r.closed_at for r in abused) < tokens[-1], "the abuse outlasted the paced stream"
    return result, abused


def max_gap_s(result: StreamResult) -> float:
    return max(b.at - a.at for a, b in itertools.pairwise(result.named("token")))


def at_once(app: GunicornServer, model: str, count: int) -> list[StreamResult]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: post_chat(app.url, ask(model)), range(count)))


def reference_gap_s(app: GunicornServer, upstream: FakeUpstream, count: int) -> float:
    """The paced stream's longest gap beside `count` ordinary answers starting at once: the same
    work without the abuse, on this machine as loaded as it is now (two token intervals at least)."""
    ordinary = upstream.model()
    paced, _ = paced_beside(app, upstream, lambda: at_once(app, ordinary, count))
    return max(max_gap_s(paced), 2 * PACE_S)


def assert_ended_by_the_limit(result: StreamResult, limit: str) -> None:
    assert result.names[0] == "start"
    assert result.names[-2:] == ["error", "done"]
    assert result.named("error")[0].json()["code"] == "upstream_malformed"
    assert limit in result.named("error")[0].json()["message"]
    assert result.done == {"finish_reason": "error"}


def peak_rss_mb(pid: int) -> float:
    """The most memory the process has held at once (VmHWM), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert found is not None, status
    return int(found.group(1)) * 1024 / MB


def test_a_100_mb_line_without_an_end_ends_only_its_own_stream(gunicorn_app, upstream):
    """The issue's reproduction: such a line froze the worker until gunicorn killed it, cutting every
    stream on it. Now it is cut at the line limit, the other stream keeps its 20 ms pace, and the
    upstream sees its connection closed long before it has sent the 100 MB."""
    (worker,) = gunicorn_app.worker_pids()
    endless = upstream.model(Behaviour(long_delta_chars=100 * MB, delta_never_ends=True))
    peak_before = peak_rss_mb(worker)
    reference_s = reference_gap_s(gunicorn_app, upstream, 1)

    paced, (abused,) = paced_beside(gunicorn_app, upstream, lambda: at_once(gunicorn_app, endless, 1))

    assert_ended_by_the_limit(abused, f"{MAX_LINE_BYTES:,} bytes")
    assert max_gap_s(paced) < STALL_FACTOR * reference_s, (max_gap_s(paced), reference_s)
    record = upstream.requests_for(endless)[0]
    assert record.ended.wait(5)
    assert record.outcome == "client_closed"
    assert record.sent_bytes < 40 * MB
    assert peak_rss_mb(worker) - peak_before < 64
    assert gunicorn_app.worker_pids() == [worker]
    after = post_chat(gunicorn_app.url, ask(upstream.model()))
    assert (after.text, after.done) == (Behaviour().text, {"finish_reason": "stop"})


def test_ten_5_mb_deltas_at_once_end_with_the_error_without_stalling_another_stream(gunicorn_app, upstream):
    """The issue's reproduction: ten 5 MB deltas at once stalled the other streams of the worker by
    320-430 ms (ten times their gap beside ten ordinary answers) and added 164-203 MB to it. Each is
    now refused at the line limit, about 4 ms of the worker's time spread over its reads: the paced
    stream's largest gap stays what it is beside ten ordinary answers starting at once."""
    (worker,) = gunicorn_app.worker_pids()
    huge = upstream.model(Behaviour(long_delta_chars=5 * MB))
    peak_before = peak_rss_mb(worker)
    reference_s = reference_gap_s(gunicorn_app, upstream, 10)

    paced, abused = paced_beside(gunicorn_app, upstream, lambda: at_once(gunicorn_app, huge, 10))

    for result in abused:
        assert_ended_by_the_limit(result, f"{MAX_LINE_BYTES:,} bytes")
    assert max_gap_s(paced) < STALL_FACTOR * reference_s, (max_gap_s(paced), reference_s)
    assert peak_rss_mb(worker) - peak_before < 64
    assert gunicorn_app.worker_pids() == [worker]


def test_a_delta_over_the_limit_ends_its_stream(gunicorn_app, upstream):
    """Twice the limit, in a line well under the line limit: the delta's own limit refuses it."""
    result = post_chat(gunicorn_app.url, ask(upstream.model(Behaviour(long_delta_chars=2 * MAX_DELTA_CHARS))))
    assert_ended_by_the_limit(result, f"{MAX_DELTA_CHARS:,} characters")
    assert result.text == ""


def test_a_whole_answer_in_one_delta_under_the_limit_is_relayed_whole(gunicorn_app, upstream):
    """As a non-streaming model behind a streaming proxy sends it: no limit stands in its way."""
    behaviour = Behaviour(long_delta_chars=MAX_DELTA_CHARS - 1000)
    result = post_chat(gunicorn_app.url, ask(upstream.model(behaviour)))
    assert result.text == "x" * (MAX_DELTA_CHARS - 1000) + behaviour.text
    assert result.done == {"finish_reason": "stop"}
