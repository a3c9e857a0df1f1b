"""chatapp behind the shipped deploy/nginx.conf, under a real nginx: HTTP/2 over TLS towards the
client, tokens passed on at once and never compressed, aborts and stops that reach the model as
fast as without nginx, the client's address passed on to the app, and nginx's own limits answered
with the API's JSON errors."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator

import httpx2
import pytest

from harness.gunicorn import GunicornServer
from harness.nginx import NginxServer
from tests.conftest import ChatappServers, upstream_env
from tests.integration.test_stop import LONG, STRICT, assert_upstream_closed_soon
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.h2_client import H2Client
from tests.support.sse_client import SseDecoder, SseEvent, ask
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def app_server(chatapp_server: ChatappServers, upstream: FakeUpstream) -> GunicornServer:
    """chatapp as it runs behind one nginx: trusting one proxy's X-Forwarded-* headers."""
    return chatapp_server(upstream, CHATAPP_TRUSTED_PROXIES="1")


@pytest.fixture(scope="module")
def nginx(app_server: GunicornServer) -> Iterator[NginxServer]:
    with NginxServer([app_server.port]) as server:
        yield server


@pytest.fixture
def client(nginx: NginxServer) -> Iterator[httpx2.Client]:
    """An HTTP/2 client that trusts nginx's throwaway CA; it asks for gzip, as browsers do."""
    context = nginx.certificate.client_context()
    with httpx2.Client(http2=True, verify=context, base_url=nginx.url, timeout=10) as c:
        yield c


def read_events(response: httpx2.Response) -> list[SseEvent]:
    """The response's SSE events, each stamped with when its bytes arrived."""
    decoder = SseDecoder()
    return [event for chunk in response.iter_raw() for event in decoder.feed(chunk, time.monotonic())]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/", "text/html"), ("/static/js/sse.js", "javascript"), ("/static/css/chat.css", "text/css")],
)
def test_the_page_and_its_files_come_over_http2_compressed(client, path, content_type):
    response = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert content_type in response.headers["content-type"]
    assert response.headers["content-encoding"] == "gzip"


def test_a_chat_stream_comes_over_http2_token_by_token_and_never_compressed(client, upstream):
    behaviour = Behaviour(tokens=tuple(f" t{i}" for i in range(10)), token_interval_s=0.1)
    model = upstream.model(behaviour)
    request = {"json": ask(model), "headers": {"Accept-Encoding": "gzip"}}
    with client.stream("POST", "/api/chat", **request) as response:
        assert response.status_code == 200
        assert response.http_version == "HTTP/2"
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        events = read_events(response)

    tokens = [e for e in events if e.event == "token"]
    assert "".join(e.json()["text"] for e in tokens) == behaviour.text
    assert events[-1].json() == {"finish_reason": "stop"}
    # Ten tokens 0.1 s apart: buffered, they would all arrive together once the upstream ended.
    record = upstream.wait_for_request(model)
    # The upstream notes its end after its last write: the client may read `done` before that.
    assert record.ended.wait(10), "the upstream request never ended"
    assert record.ended_at is not None
    assert tokens[0].at < record.ended_at - 0.5
    assert tokens[-1].at - tokens[0].at > 0.5


def time_to_first_token(client: httpx2.Client, url: str, model: str) -> float:
    started = time.monotonic()
    first = None
    with client.stream("POST", url, json=ask(model)) as response:
        for event in read_events(response):
            if event.event == "token" and first is None:
                first = event.at - started
    assert first is not None, "no token"
    return first


def test_the_first_token_comes_about_as_soon_as_on_the_direct_path(client, app_server, upstream):
    """Medians of 15 requests each way, interleaved, each client on a warm connection: through nginx
    1.0-1.5 times the direct path's (on this machine idle or three times slower); a stall of the kind
    a proxy adds (Nagle's 40 ms against a delayed ACK, buffering) is several times it."""
    model = upstream.model(Behaviour(tokens=("a", "b", "c")))
    nginx_times, direct_times = [], []
    with httpx2.Client(timeout=10) as direct:
        time_to_first_token(direct, f"{app_server.url}/api/chat", model)  # warm-up: connections open
        time_to_first_token(client, "/api/chat", model)
        for _ in range(15):
            direct_times.append(time_to_first_token(direct, f"{app_server.url}/api/chat", model))
            nginx_times.append(time_to_first_token(client, "/api/chat", model))
    through_nginx, direct_median = statistics.median(nginx_times), statistics.median(direct_times)
    assert through_nginx < 3 * direct_median, (
        f"medians: through nginx {through_nginx * 1000:.1f} ms, direct {direct_median * 1000:.1f} ms"
    )


@pytest.mark.parametrize("how", ["reset-stream", "close-connection"])
@pytest.mark.parametrize(
    "behaviour",
    [Behaviour(tokens=LONG, token_interval_s=0.05), Behaviour(silent=True)],
    ids=["trickling", "silent-model"],
)
def test_an_abort_through_nginx_ends_the_upstream_request_within_a_second(nginx, upstream, behaviour, how):
    """`reset-stream` is a page aborting its fetch (RST_STREAM; the connection and the page's
    other streams stay), `close-connection` a closed laptop lid or a lost network. Milliseconds
    here, as without nginx (bench.stop_latency has the figures); a second tells those apart from
    an abort that waits for the answer's end or a heartbeat, on any machine."""
    model = upstream.model(behaviour)
    h2 = H2Client("127.0.0.1", nginx.https_port, nginx.certificate.client_context())
    try:
        body = json.dumps(ask(model)).encode()
        stream = h2.request("POST", "/api/chat", body, {"Content-Type": "application/json"})
        if behaviour.silent:
            h2.read_until(stream, lambda received: b"event: start" in received)
            assert wait_until(lambda: upstream.requests_for(model), 5)
        else:
            h2.read_until(stream, lambda received: received.count(b"event: token") >= 3)
        hung_up_at = time.monotonic()
        if how == "reset-stream":
            h2.reset(stream)
        else:
            h2.close()
        assert_upstream_closed_soon(upstream, model, hung_up_at, within_s=1.0)

        if how == "reset-stream":  # the connection still serves the page's other requests
            health = h2.request("GET", "/healthz")
            h2.read_to_end(health)
            assert h2.status[health] == 200
    finally:
        h2.close()


def test_the_stop_endpoint_through_nginx_answers_202_and_closes_the_upstream_within_a_second(
    client, upstream
):
    model = upstream.model(Behaviour(tokens=LONG, token_interval_s=0.05))
    decoder = SseDecoder()
    events: list[SseEvent] = []
    with client.stream("POST", "/api/chat", json=ask(model)) as response:
        chunks = response.iter_raw()
        for chunk in chunks:
            events.extend(decoder.feed(chunk))
            if any(e.event == "token" for e in events):
                break
        stream_id = events[0].json()["stream_id"]
        # On the same HTTP/2 connection as the stream, as the page sends it.
        asked_at = time.monotonic()
        stop = client.post(f"/api/chat/{stream_id}/stop", json={})
        assert (stop.status_code, stop.http_version) == (202, "HTTP/2")
        assert_upstream_closed_soon(upstream, model, asked_at, within_s=1.0)
        for chunk in chunks:
            events.extend(decoder.feed(chunk))
    assert events[-1].event == "done"
    assert events[-1].json() == {"finish_reason": "cancelled"}


def test_a_reader_who_stops_reading_through_nginx_is_cut_off_and_the_model_stopped(chatapp_server, upstream):
    """nginx does not read the answer ahead for a stalled reader: the app's write timeout fires
    (CHATAPP_WRITE_TIMEOUT_S=1) and ends the upstream, as it does without nginx."""
    strict_app = chatapp_server(upstream, CHATAPP_TRUSTED_PROXIES="1", **STRICT)
    model = upstream.model(Behaviour(tokens=tuple("x" * 200 for _ in range(50_000))))  # 10 MB
    with NginxServer([strict_app.port]) as proxy:
        h2 = H2Client("127.0.0.1", proxy.https_port, proxy.certificate.client_context())
        try:
            h2.request(
                "POST", "/api/chat", json.dumps(ask(model)).encode(), {"Content-Type": "application/json"}
            )
            record = upstream.wait_for_request(model)  # and never read a byte of the answer
            assert record.ended.wait(8), "the upstream is still streaming into a stalled reader"
            assert record.outcome == "client_closed"
        finally:
            h2.close()


@pytest.fixture
def limited_behind_nginx(upstream: FakeUpstream) -> Iterator[NginxServer]:
    """nginx before chatapp allowing one stream a minute per client; its own, so counts start at 0."""
    settings = upstream_env(upstream, CHATAPP_TRUSTED_PROXIES="1", CHATAPP_RATE_LIMIT="1/minute")
    with GunicornServer(settings) as app, NginxServer([app.port]) as proxy:
        yield proxy


def post_chat_from(
    nginx: NginxServer, address: str, model: str, headers: dict[str, str] | None = None
) -> int:
    """POST /api/chat to nginx from the local `address` (any of 127.0.0.0/8 reaches 127.0.0.1)."""
    context = nginx.certificate.client_context()
    transport = httpx2.HTTPTransport(http2=True, verify=context, local_address=address)
    with httpx2.Client(transport=transport, base_url=nginx.url, timeout=10) as c:
        return c.post("/api/chat", json=ask(model), headers=headers).status_code


def test_the_app_counts_clients_by_the_address_nginx_saw(limited_behind_nginx, upstream):
    """X-Forwarded-For reaches the app: without it every client would be nginx, 127.0.0.1."""
    model = upstream.model(Behaviour(tokens=("ok",)))
    assert post_chat_from(limited_behind_nginx, "127.0.0.2", model) == 200
    assert post_chat_from(limited_behind_nginx, "127.0.0.2", model) == 429
    assert post_chat_from(limited_behind_nginx, "127.0.0.3", model) == 200
    # A client cannot pick its own address: the app takes the one nginx appended.
    spoofed = {"X-Forwarded-For": "10.9.8.7"}
    assert post_chat_from(limited_behind_nginx, "127.0.0.3", model, spoofed) == 429


def test_a_same_origin_post_through_nginx_passes_and_a_cross_site_one_does_not(client, nginx, upstream):
    """X-Forwarded-Host carries the port the browser sent, which the app compares with Origin."""
    model = upstream.model(Behaviour(tokens=("ok",)))
    same_site = client.post("/api/chat", json=ask(model), headers={"Origin": nginx.url})
    assert same_site.status_code == 200
    cross_site = client.post("/api/chat", json=ask(model), headers={"Origin": "https://elsewhere.example"})
    assert cross_site.status_code == 403
    assert cross_site.json()["error"]["code"] == "cross_site_request"


def test_a_body_over_the_limit_is_refused_by_nginx_with_the_api_error(nginx):
    # Over HTTP/1.1: httpx sends a whole HTTP/2 body before it reads the answer, and nginx, which
    # answered at the headers, grants no flow-control window for the rest (browsers read at once).
    body = b'{"messages": "' + b"x" * (1024 * 1024) + b'"}'
    with httpx2.Client(verify=nginx.certificate.client_context(), base_url=nginx.url, timeout=10) as http1:
        response = http1.post("/api/chat", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_plain_http_redirects_to_https(nginx):
    response = httpx2.get(f"{nginx.http_url}/c/some-id?x=1", follow_redirects=False, timeout=10)
    assert response.status_code in (301, 308)
    assert response.headers["location"] == "https://127.0.0.1/c/some-id?x=1"


def test_one_address_gets_64_requests_in_progress_and_then_the_api_429(upstream):
    """deploy/nginx.conf's `limit_conn`, which does the app's per-address connection cap behind a
    proxy: the 65th request in progress from one address gets the API's JSON 429, another address
    is served. The app's own per-client caps are off here, so every refusal is nginx's."""
    settings = upstream_env(
        upstream, CHATAPP_TRUSTED_PROXIES="1", CHATAPP_MAX_STREAMS_PER_CLIENT="0", CHATAPP_RATE_LIMIT=""
    )
    silent = upstream.model(Behaviour(silent=True))
    body = json.dumps(ask(silent)).encode()
    json_type = {"Content-Type": "application/json"}
    with GunicornServer(settings) as app, NginxServer([app.port]) as proxy:
        h2 = H2Client("127.0.0.1", proxy.https_port, proxy.certificate.client_context())
        try:
            held = [h2.request("POST", "/api/chat", body, json_type) for _ in range(64)]
            for stream in held:
                h2.read_until(stream, lambda received: b"event: start" in received)
            assert {h2.status[stream] for stream in held} == {200}

            refused = h2.request("POST", "/api/chat", body, json_type)
            answer = h2.read_to_end(refused)
            assert h2.status[refused] == 429
            assert json.loads(answer)["error"]["code"] == "too_many_connections"
            assert h2.headers[refused]["retry-after"] == "5"
            assert post_chat_from(proxy, "127.0.0.2", upstream.model(Behaviour(tokens=("ok",)))) == 200
        finally:
            h2.close()
