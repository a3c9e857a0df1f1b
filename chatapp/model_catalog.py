"""The models a person may pick: `CHATAPP_MODELS` when the operator set it, else what the model
server lists (`GET /v1/models`), cached, else just `CHATAPP_MODEL`."""

from __future__ import annotations

import logging
import threading
import time

from .config import Settings
from .llm.base import Backend

log = logging.getLogger(__name__)


class ModelCatalog:
    def __init__(self, settings: Settings, backend: Backend) -> None:
        self._settings = settings
        self._backend = backend
        self._listed: list[str] = []
        self._listed_at = -float("inf")
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """The choices, the default model first when the server lists it elsewhere."""
        s = self._settings
        if s.models:
            return list(s.models)
        with self._lock:  # one upstream call at a time; the others wait for its answer
            if time.monotonic() - self._listed_at >= s.models_cache_s:
                self._listed = self._list()
                self._listed_at = time.monotonic()
            listed = self._listed
        return [s.model, *sorted(name for name in listed if name != s.model)]

    def _list(self) -> list[str]:
        try:
            return self._backend.list_models()
        except Exception as exc:  # a server that cannot list its models still answers chats
            log.warning("could not list the model server's models: %s", type(exc).__name__)
            return []
