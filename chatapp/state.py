"""What one app instance holds for its whole life: settings, the model backend, the live streams,
and the conversation store (opened on first use, in the worker, after gevent patched it)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta

from flask import Flask

from .config import Settings
from .llm.base import Backend
from .model_catalog import ModelCatalog
from .store import Store, database_url, upgrade_to_head
from .streaming.coordination import Coordinator
from .streaming.recording import ORPHAN_AFTER_CHECKPOINTS, CheckpointWriter
from .streaming.registry import StreamRegistry
from .streaming.resumable import AnswerJobs

EXTENSION_KEY = "chatapp"

log = logging.getLogger(__name__)


@dataclass
class AppState:
    settings: Settings
    backend: Backend
    streams: StreamRegistry
    instance_path: str
    models: ModelCatalog
    coordinator: Coordinator
    answers: AnswerJobs
    _store: Store | None = field(default=None, init=False, repr=False)
    _checkpoints: CheckpointWriter | None = field(default=None, init=False, repr=False)
    _store_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def store(self) -> Store:
        """The conversation store. Opened (and migrated) on first use, so that an app that only
        relays `POST /api/chat` never touches a database; gunicorn's workers open it at start."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = self._open_store()
        return self._store

    @property
    def checkpoints(self) -> CheckpointWriter:
        """This process's writer of streaming answers' checkpoints."""
        if self._checkpoints is None:
            self._checkpoints = CheckpointWriter(self.store, self.settings.checkpoint_s)
        return self._checkpoints

    @property
    def orphan_age(self) -> timedelta:
        """How old an answer's last checkpoint must be, with its stream running nowhere, for the
        answer to count as orphaned by a worker that died."""
        return timedelta(seconds=self.settings.checkpoint_s * ORPHAN_AFTER_CHECKPOINTS)

    def _open_store(self) -> Store:
        url = database_url(self.settings.database_url, self.instance_path)
        upgrade_to_head(url)
        store = Store.open(url)
        marked = store.mark_orphans_interrupted(self.orphan_age, is_live=self.streams.is_running)
        if marked:
            log.info("marked %d answers interrupted: their worker went away mid-answer", len(marked))
        return store


def app_state(app: Flask) -> AppState:
    state: AppState = app.extensions[EXTENSION_KEY]
    return state
