"""The model side: one small interface (`base.py`) and one module per backend."""

from __future__ import annotations

from ..config import Settings
from .base import Backend


def make_backend(settings: Settings) -> Backend:
    """The backend the settings name. Imported lazily so the demo never loads the SDK."""
    if settings.backend == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(settings)
    from .demo_backend import DemoBackend

    return DemoBackend(settings)
