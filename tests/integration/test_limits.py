"""Under real gunicorn: a full worker sheds new streams with 503, and takes them again once one ends."""

import pytest

from tests.conftest import upstream_env
from tests.support.fake_upstream import Behaviour
from tests.support.gunicorn_runner import GunicornServer
from tests.support.sse_client import post_chat
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def small_worker(upstream):
    with GunicornServer(upstream_env(upstream, CHATAPP_MAX_STREAMS_PER_WORKER="3")) as server:
        yield server


def test_the_worker_cap_is_503_and_a_finished_stream_frees_its_place(small_worker, upstream):
    from concurrent.futures import ThreadPoolExecutor

    silent = upstream.model(Behaviour(silent=True))
    ask = {"messages": [{"role": "user", "content": "hi"}], "model": silent}
    hang_up = {"now": False}
    with ThreadPoolExecutor(3) as pool:
        held = [
            pool.submit(post_chat, small_worker.url, ask, hang_up_when=lambda: hang_up["now"])
            for _ in range(3)
        ]
        assert wait_until(lambda: len(upstream.requests_for(silent)) == 3, 10)

        refused = post_chat(small_worker.url, ask)
        assert refused.status == 503
        assert refused.error_json()["error"]["code"] == "server_busy"
        assert int(refused.headers["retry-after"]) > 0

        hang_up["now"] = True
        assert all(f.result(timeout=10).names == ["start"] for f in held)

    def admitted_again():
        result = post_chat(
            small_worker.url, {"messages": [{"role": "user", "content": "hi"}], "model": upstream.model()}
        )
        return result.status == 200 and result.done == {"finish_reason": "stop"}

    assert wait_until(admitted_again, 5)
