"""Under real gunicorn: a full worker sheds new streams with 503, and takes them again once one ends."""

from concurrent.futures import ThreadPoolExecutor

from tests.support.fake_upstream import Behaviour
from tests.support.sse_client import ask, post_chat
from tests.support.waiting import wait_until


def test_the_worker_cap_is_503_and_a_finished_stream_frees_its_place(chatapp_server, upstream):
    small_worker = chatapp_server(upstream, CHATAPP_MAX_STREAMS_PER_WORKER="3")
    silent = upstream.model(Behaviour(silent=True))
    hang_up = {"now": False}
    with ThreadPoolExecutor(3) as pool:
        held = [
            pool.submit(post_chat, small_worker.url, ask(silent), hang_up_when=lambda: hang_up["now"])
            for _ in range(3)
        ]
        assert wait_until(lambda: len(upstream.requests_for(silent)) == 3, 10)

        refused = post_chat(small_worker.url, ask(silent))
        assert refused.status == 503
        assert refused.error_json()["error"]["code"] == "server_busy"
        assert int(refused.headers["retry-after"]) > 0

        hang_up["now"] = True
        assert all(f.result(timeout=10).names == ["start"] for f in held)

    def admitted_again():
        result = post_chat(small_worker.url, ask(upstream.model()))
        return result.status == 200 and result.done == {"finish_reason": "stop"}

    assert wait_until(admitted_again, 5)
