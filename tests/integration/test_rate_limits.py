"""Rate limits on starting streams: 429 JSON with Retry-After; per process in memory, shared through Redis."""

import pytest

from chatapp import create_app
from harness.gunicorn import GunicornServer
from harness.redis import RedisServer
from tests.conftest import FAST_DEMO
from tests.support.sse_client import ask, post_chat

HI = ask(max_tokens=1)


def post(client, address="10.0.0.7"):
    return client.post("/api/chat", json=HI, environ_base={"REMOTE_ADDR": address})


def stop(client, address="10.0.0.7"):
    return client.post("/api/chat/any/stop", json={}, environ_base={"REMOTE_ADDR": address})


def test_over_the_limit_is_429_json_with_retry_after():
    client = create_app({**FAST_DEMO, "CHATAPP_RATE_LIMIT": "2/minute"}).test_client()
    assert [post(client).status_code for _ in range(2)] == [200, 200]
    refused = post(client)
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert post(client, address="10.0.0.8").status_code == 200  # per client


def test_stopping_is_never_limited():
    """The address that used up its limit on starting streams can still stop them, more often than
    the limit allows (the stop route's answer here is 404: no stream by that id, not 429)."""
    client = create_app({**FAST_DEMO, "CHATAPP_RATE_LIMIT": "2/minute"}).test_client()
    assert [post(client).status_code for _ in range(3)] == [200, 200, 429]
    assert [stop(client).status_code for _ in range(3)] == [404, 404, 404]


@pytest.fixture
def redis():
    with RedisServer() as server:
        yield server


def two_servers(env):
    return GunicornServer({**FAST_DEMO, **env}).start(), GunicornServer({**FAST_DEMO, **env}).start()


def statuses(servers_in_turn):
    return [post_chat(server.url, HI).status for server in servers_in_turn]


def test_in_memory_each_process_counts_alone():
    a, b = two_servers({"CHATAPP_RATE_LIMIT": "3/minute"})
    try:
        assert statuses([a, b, a, b]) == [200, 200, 200, 200]
    finally:
        a.stop()
        b.stop()


def test_with_redis_the_limit_is_shared_by_every_process(redis):
    a, b = two_servers({"CHATAPP_RATE_LIMIT": "3/minute", "CHATAPP_RATELIMIT_STORAGE_URI": redis.uri})
    try:
        assert statuses([a, b, a]) == [200, 200, 200]
        refused = post_chat(b.url, HI)
    finally:
        a.stop()
        b.stop()
    assert refused.status == 429
    assert refused.error_json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) > 0
