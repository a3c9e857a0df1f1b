"""Every response carries the headers that let the browser enforce a strict policy."""

import pytest


@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("GET", "/healthz"), ("GET", "/nope")])
def test_security_headers_on_pages_and_errors(client, method, path):
    response = client.open(path, method=method)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_security_headers_on_the_stream(client):
    response = client.post(
        "/api/chat", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "text/event-stream"


def test_the_page_has_no_inline_script_or_handler(client):
    html = client.get("/").get_data(as_text=True)
    assert "<script>" not in html
    assert " onclick=" not in html
    assert " onload=" not in html
    assert '<script type="module" src="/static/js/chat.js">' in html
    assert '<script type="application/json" id="chatapp-config">' in html
