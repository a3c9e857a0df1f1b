"""Every invalid chat request gets its exact status and stable code, and never reaches the model."""

from dataclasses import replace

import pytest

from chatapp import create_app
from chatapp.state import EXTENSION_KEY
from tests.conftest import FAST_DEMO

LIMITS = {
    **FAST_DEMO,
    "CHATAPP_MAX_MESSAGES": "3",
    "CHATAPP_MAX_MESSAGE_CHARS": "50",
    "CHATAPP_MAX_CONVERSATION_CHARS": "80",
    "CHATAPP_MAX_BODY_BYTES": "2000",
    "CHATAPP_MAX_TOKENS_CAP": "100",
    "CHATAPP_MODELS": "chatapp-demo,other-model",
}


class ForbiddenBackend:
    """Turns any request that reaches the model into a 500, which fails the status assertions."""

    def stream(self, request):
        raise AssertionError("an invalid request reached the backend")


@pytest.fixture
def strict_client():
    app = create_app(LIMITS)
    state = app.extensions[EXTENSION_KEY]
    app.extensions[EXTENSION_KEY] = replace(state, backend=ForbiddenBackend())
    return app.test_client()


def user(content="hi"):
    return {"role": "user", "content": content}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "invalid_json"),
        (b'{"messages": [', "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
        (b"[1, 2]", "invalid_body"),
        (b'"a string"', "invalid_body"),
        (b"{}", "missing_messages"),
        (b'{"messages": []}', "missing_messages"),
        (b'{"messages": "hi"}', "missing_messages"),
        (b'{"messages": ["hi"]}', "invalid_message"),
        (b'{"messages": [{"role": "bot", "content": "hi"}]}', "invalid_role"),
        (b'{"messages": [{"content": "hi"}]}', "invalid_role"),
        (b'{"messages": [{"role": "user", "content": 5}]}', "invalid_content"),
        (b'{"messages": [{"role": "user", "content": ["hi"]}]}', "invalid_content"),
        (b'{"messages": [{"role": "user"}]}', "invalid_content"),
        (b'{"messages": [{"role": "user", "content": ""}]}', "empty_message"),
        (b'{"messages": [{"role": "user", "content": "  \\n "}]}', "empty_message"),
        (
            b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}',
            "last_message_not_user",
        ),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', "invalid_max_tokens"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 101}', "invalid_max_tokens"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1.5}', "invalid_max_tokens"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": true}', "invalid_max_tokens"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "10"}', "invalid_max_tokens"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": -0.1}', "invalid_temperature"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 2.5}', "invalid_temperature"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}', "invalid_temperature"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "model": ""}', "invalid_model"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "model": 3}', "invalid_model"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "model": "gpt-9"}', "unknown_model"),
    ],
)
def test_invalid_body_is_400_with_its_code(strict_client, body, code):
    response = strict_client.post("/api/chat", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([user("a")] * 4, "too_many_messages"),
        ([user("x" * 51)], "message_too_long"),
        ([user("x" * 45), {"role": "assistant", "content": "y" * 40}, user("z")], "conversation_too_long"),
    ],
)
def test_limits_are_400_with_their_codes(strict_client, messages, code):
    response = strict_client.post("/api/chat", json={"messages": messages})
    assert response.status_code == 400
    assert response.json["error"]["code"] == code


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(strict_client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = strict_client.post("/api/chat", data=b'{"messages": []}', headers=headers)
    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_media_type"


def test_json_with_charset_parameter_is_accepted():
    client = create_app(FAST_DEMO).test_client()
    response = client.post(
        "/api/chat",
        data=b'{"messages": [{"role": "user", "content": "hi"}]}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"


def test_body_over_the_byte_limit_is_413(strict_client):
    body = b'{"messages": [{"role": "user", "content": "' + b"x" * 3000 + b'"}]}'
    response = strict_client.post("/api/chat", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json["error"]["code"] == "body_too_large"


def test_unknown_route_and_wrong_method_are_json(strict_client):
    missing = strict_client.get("/api/nope")
    assert (missing.status_code, missing.json["error"]["code"]) == (404, "not_found")
    wrong = strict_client.get("/api/chat")
    assert (wrong.status_code, wrong.json["error"]["code"]) == (405, "method_not_allowed")
    assert "POST" in wrong.headers["Allow"]


def test_the_demo_offers_its_one_model(client):
    assert client.get("/api/models").get_json() == {"models": ["chatapp-demo"], "default": "chatapp-demo"}
