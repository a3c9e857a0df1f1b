"""The configured model backend: `Settings` in, a `Backend` out.

The one place where the web side's settings meet the model side, so that
`chatapp/llm/` takes plain values and knows nothing of the environment.
"""

from __future__ import annotations

from .config import Settings
from .llm.base import Backend


def make_backend(settings: Settings) -> Backend:
    """The backend the settings name. Imported lazily so the demo never loads the SDK."""
    if settings.backend == "openai":
        from .llm.openai_backend import OpenAIBackend, OpenAIOptions

        return OpenAIBackend(
            OpenAIOptions(
                api_key=settings.openai_api_key,
                base_url=settings.openai_base_url,
                connect_timeout_s=settings.upstream_connect_timeout_s,
                idle_s=settings.upstream_idle_s,
                max_retries=settings.upstream_max_retries,
                max_line_bytes=settings.max_upstream_line_bytes,
                max_delta_chars=settings.max_delta_chars,
            )
        )
    from .llm.demo_backend import DemoBackend

    return DemoBackend(settings.demo_tokens_per_s, settings.demo_first_token_s)
