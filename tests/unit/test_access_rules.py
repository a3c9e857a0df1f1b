"""Who may start and stop streams: same-site browsers and non-browser clients, within the caps."""

import pytest

from chatapp import create_app
from tests.conftest import FAST_DEMO

HI = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def capped():
    app = create_app(
        {**FAST_DEMO, "CHATAPP_MAX_STREAMS_PER_WORKER": "3", "CHATAPP_MAX_STREAMS_PER_CLIENT": "2"}
    )
    return app.test_client()


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "http://localhost:9999"},
    ],
)
def test_cross_site_requests_are_403(client, headers):
    for path in ("/api/chat", "/api/chat/some-id/stop"):
        response = client.post(path, json=HI, headers=headers)
        assert response.status_code == 403
        assert response.json["error"]["code"] == "cross_site_request"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {"Origin": "http://localhost"}],
)
def test_same_site_and_non_browser_requests_pass(client, headers):
    response = client.post("/api/chat", json={**HI, "max_tokens": 2}, headers=headers)
    assert response.status_code == 200


def test_stop_takes_only_json(client):
    response = client.post("/api/chat/some-id/stop", data="{}", content_type="text/plain")
    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_media_type"


def open_stream(client, address):
    response = client.post("/api/chat", json=HI, buffered=False, environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 200, response.get_data()
    return response


def test_a_client_over_its_stream_cap_gets_429_with_retry_after(capped):
    first, second = open_stream(capped, "10.0.0.1"), open_stream(capped, "10.0.0.1")
    refused = capped.post("/api/chat", json=HI, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "too_many_streams"
    assert int(refused.headers["Retry-After"]) > 0
    first.close()  # a stream ends: room again
    open_stream(capped, "10.0.0.1").close()
    second.close()


def test_a_full_worker_gets_503_with_retry_after(capped):
    streams = [open_stream(capped, a) for a in ("10.0.0.1", "10.0.0.2", "10.0.0.3")]
    refused = capped.post("/api/chat", json=HI, environ_base={"REMOTE_ADDR": "10.0.0.4"})
    assert refused.status_code == 503
    assert refused.json["error"]["code"] == "server_busy"
    assert int(refused.headers["Retry-After"]) > 0
    for stream in streams:
        stream.close()
    open_stream(capped, "10.0.0.4").close()


def test_behind_a_trusted_proxy_limits_count_the_forwarded_client():
    app = create_app({**FAST_DEMO, "CHATAPP_MAX_STREAMS_PER_CLIENT": "1", "CHATAPP_TRUSTED_PROXIES": "1"})
    client = app.test_client()
    via_proxy = {"REMOTE_ADDR": "127.0.0.1"}
    first = client.post(
        "/api/chat",
        json=HI,
        buffered=False,
        environ_base=via_proxy,
        headers={"X-Forwarded-For": "203.0.113.5"},
    )
    other = client.post(
        "/api/chat",
        json=HI,
        buffered=False,
        environ_base=via_proxy,
        headers={"X-Forwarded-For": "203.0.113.6"},
    )
    same = client.post(
        "/api/chat", json=HI, environ_base=via_proxy, headers={"X-Forwarded-For": "203.0.113.5"}
    )
    assert (first.status_code, other.status_code, same.status_code) == (200, 200, 429)
    first.close()
    other.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/conversations"),
        ("PATCH", "/api/conversations/abc"),
        ("DELETE", "/api/conversations/abc"),
        ("POST", "/api/conversations/abc/messages"),
        ("POST", "/api/conversations/abc/messages/def/regenerate"),
    ],
)
def test_cross_site_requests_to_the_conversation_api_are_403_and_change_nothing(client, method, path):
    before = client.get("/api/conversations").json
    response = client.open(
        path, method=method, json={"content": "hi"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 403
    assert response.json["error"]["code"] == "cross_site_request"
    assert client.get("/api/conversations").json == before
