"""The configured backend gets the settings that bound what its streams may hold."""

from chatapp.backends import make_backend
from chatapp.config import Settings
from chatapp.llm.openai_backend import OpenAIBackend


def test_the_upstream_limits_reach_the_openai_backend():
    settings = Settings.from_env(
        {"OPENAI_API_KEY": "k", "CHATAPP_MAX_UPSTREAM_LINE_BYTES": "65536", "CHATAPP_MAX_DELTA_CHARS": "2048"}
    )
    backend = make_backend(settings)
    assert isinstance(backend, OpenAIBackend)
    assert (backend.options.max_line_bytes, backend.options.max_delta_chars) == (65536, 2048)
