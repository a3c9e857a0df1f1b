"""The API key stays on the server, out of the page, the streams and the log; so does message text."""

import urllib.request

from tests.conftest import FAKE_API_KEY
from tests.support.fake_upstream import Behaviour
from tests.support.sse_client import ask, post_chat


def test_the_api_key_reaches_neither_the_browser_nor_the_log(gunicorn_app, upstream):
    with urllib.request.urlopen(gunicorn_app.url + "/") as response:
        page = response.read().decode()
    models = [
        upstream.model(b)
        for b in (Behaviour(), Behaviour(status=401), Behaviour(status=400), Behaviour(drop_after=2))
    ]
    secret_words = "my bank PIN is 4921 and my diagnosis is private"
    streams = [post_chat(gunicorn_app.url, ask(model, secret_words)) for model in models]
    assert all(s.done is not None for s in streams)
    assert FAKE_API_KEY not in page
    assert all(FAKE_API_KEY.encode() not in s.body for s in streams)
    log = gunicorn_app.output()
    assert "stream end" in log  # the log is there, and was read
    assert FAKE_API_KEY not in log
    assert secret_words not in log  # message text is not logged either
    # The upstream did get it: the key is in use, just never shown.
    assert upstream.requests_for(models[0])[0].headers["authorization"] == f"Bearer {FAKE_API_KEY}"
