"""What one app instance holds for its whole life: settings, the model backend, the live streams."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from .config import Settings
from .llm.base import Backend
from .streams import StreamRegistry

EXTENSION_KEY = "chatapp"


@dataclass(frozen=True)
class AppState:
    settings: Settings
    backend: Backend
    streams: StreamRegistry


def app_state(app: Flask) -> AppState:
    return app.extensions[EXTENSION_KEY]
