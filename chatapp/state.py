"""What one app instance holds for its whole life: its settings and its model backend."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from .config import Settings
from .llm.base import Backend

EXTENSION_KEY = "chatapp"


@dataclass(frozen=True)
class AppState:
    settings: Settings
    backend: Backend


def app_state(app: Flask) -> AppState:
    return app.extensions[EXTENSION_KEY]
