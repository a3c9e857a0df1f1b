"""With CHATAPP_ACCESS_TOKEN set, only a signed-in session may use the chat."""

import importlib.util
from pathlib import Path

import pytest

from chatapp import create_app
from tests.conftest import FAST_DEMO

TOKEN = "open-sesame-123"
HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture
def private():
    return create_app({**FAST_DEMO, "CHATAPP_ACCESS_TOKEN": TOKEN, "SECRET_KEY": "k" * 32}).test_client()


def test_without_a_session_the_api_is_401_and_the_page_asks_for_the_token(private):
    api = private.post("/api/chat", json=HI)
    assert api.status_code == 401
    assert api.json["error"]["code"] == "unauthorized"
    stop = private.post("/api/chat/x/stop", json={})
    assert stop.status_code == 401
    page = private.get("/")
    assert page.status_code == 302
    assert page.headers["Location"].endswith("/sign-in")
    assert private.get("/healthz").status_code == 200
    with private.get("/static/css/chat.css") as stylesheet:  # closed: a file response holds the file open
        assert stylesheet.status_code == 200


def test_a_wrong_token_is_refused(private):
    response = private.post("/sign-in", data={"token": "guess"})
    assert response.status_code == 401
    assert "not right" in response.get_data(as_text=True)
    assert private.post("/api/chat", json=HI).status_code == 401


def test_the_right_token_signs_in_with_a_safe_cookie(private):
    response = private.post("/sign-in", data={"token": TOKEN})
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert TOKEN not in cookie
    assert private.post("/api/chat", json=HI).status_code == 200
    assert private.get("/").status_code == 200


def test_sign_in_from_another_site_is_403(private):
    response = private.post("/sign-in", data={"token": TOKEN}, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403


def test_without_a_token_configured_everything_is_open_and_sign_in_goes_home(client):
    assert client.post("/api/chat", json=HI).status_code == 200
    assert client.get("/sign-in").status_code == 302


def load_gunicorn_conf():
    spec = importlib.util.spec_from_file_location(
        "gunicorn_conf", Path(__file__).parents[2] / "gunicorn.conf.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeServer:
    def __init__(self, bind):
        self.cfg = type("Cfg", (), {"bind": bind})()
        self.warnings: list[str] = []
        self.log = type("Log", (), {"warning": lambda _, *args: self.warnings.append(args[0] % args[1:])})()


@pytest.mark.parametrize(
    ("bind", "warned"),
    [
        (["0.0.0.0:8000"], True),
        (["[::]:8000"], True),
        (["10.1.2.3:80"], True),
        (["127.0.0.1:8000"], False),
        (["localhost:8000"], False),
        (["[::1]:8000"], False),
        (["unix:/run/chatapp.sock"], False),
    ],
)
def test_start_up_warns_when_listening_beyond_loopback_without_a_token(monkeypatch, bind, warned):
    monkeypatch.delenv("CHATAPP_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("SECRET_KEY", "set")  # the config file fills it in otherwise
    conf = load_gunicorn_conf()
    server = FakeServer(bind)
    conf.when_ready(server)
    assert bool(server.warnings) is warned
    if warned:
        assert "CHATAPP_ACCESS_TOKEN" in server.warnings[0]


def test_signing_in_returns_to_the_conversation_that_was_asked_for(private):
    asked = private.get("/c/abc123")
    assert asked.status_code == 302
    assert asked.headers["Location"].endswith("/sign-in?next=/c/abc123")
    form = private.get("/sign-in?next=/c/abc123").get_data(as_text=True)
    assert 'name="next" value="/c/abc123"' in form
    signed_in = private.post("/sign-in", data={"token": TOKEN, "next": "/c/abc123"})
    assert signed_in.headers["Location"] == "/c/abc123"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_signing_in_never_sends_a_person_to_another_site(private, target):
    signed_in = private.post("/sign-in", data={"token": TOKEN, "next": target})
    assert signed_in.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/conversations"),
        ("POST", "/api/conversations"),
        ("GET", "/api/conversations/abc"),
        ("POST", "/api/conversations/abc/messages"),
        ("GET", "/api/models"),
    ],
)
def test_without_a_session_the_conversation_api_is_401(private, method, path):
    response = private.open(path, method=method, json={})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_without_a_session_a_conversation_page_asks_for_the_token(private):
    assert private.get("/c/abc").status_code == 302
