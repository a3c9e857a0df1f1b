"""Whatever a client sends, the answer is a 4xx JSON error or a well-formed stream: never a 500 or a hang."""

import json
from urllib.parse import quote

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chatapp import create_app
from tests.conftest import FAST_DEMO
from tests.support.sse_client import SseDecoder

APP = create_app({**FAST_DEMO, "CHATAPP_MAX_BODY_BYTES": "200000"})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "user", "assistant", "bot", ""]) | json_values,
            "content": st.text(max_size=300) | json_values,
        }
    ),
    max_size=6,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"messages": messages},
        optional={"model": json_values, "max_tokens": json_values, "temperature": json_values},
    ).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=500),
)


def assert_clean_answer(response):
    assert response.status_code != 500
    if response.status_code == 200:
        assert response.mimetype == "text/event-stream"
        events = list(SseDecoder().feed(response.get_data()))
        assert events[0].event == "start"
        assert events[-1].event == "done"
    else:
        assert 400 <= response.status_code < 500
        assert response.mimetype == "application/json"
        error = response.get_json()["error"]
        assert isinstance(error["code"], str)
        assert isinstance(error["message"], str)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
@example(body=b"[" * 100_000)  # nesting deeper than any parser should follow
@example(body=b'{"messages": [{"role": "user", "content": "' + b"x" * 300_000 + b'"}]}')
@example(body=b"\xff\xfe\x00")
@example(body=b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}')  # a lone surrogate
@example(body=json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).encode())
def test_chat_answers_anything_cleanly(body):
    with APP.test_client() as client:
        assert_clean_answer(client.post("/api/chat", data=body, content_type="application/json"))


@settings(max_examples=100, deadline=None)
@given(stream_id=st.text(min_size=1, max_size=200), body=st.binary(max_size=100))
@example(stream_id="0/", body=b"")  # regression: a doubled slash was a 308 redirect with an HTML body
def test_stop_answers_anything_cleanly(stream_id, body):
    with APP.test_client() as client:
        response = client.post(
            f"/api/chat/{quote(stream_id, safe='')}/stop", data=body, content_type="application/json"
        )
    assert response.status_code in (404, 405)
    assert response.get_json()["error"]["code"] in ("stream_not_found", "not_found", "method_not_allowed")
