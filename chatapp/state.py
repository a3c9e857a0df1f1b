"""What one app instance holds for its whole life: settings, the model backend, admission and the
live streams, the coordinator, resumable answers, and the conversation store (opened by the
start-up step, startup.py, never by reading an attribute)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flask import Flask

from .backends import make_backend
from .config import Settings
from .llm.base import Backend
from .model_catalog import ModelCatalog
from .store import Store
from .streaming.admission import Admission
from .streaming.coordination import Coordinator, make_coordinator
from .streaming.recording import CheckpointWriter
from .streaming.registry import Cause, StreamRegistry
from .streaming.resumable import AnswerJobs

EXTENSION_KEY = "chatapp"


class NotStarted(RuntimeError):
    """The store was asked for before the start-up step opened it."""


@dataclass
class AppState:
    settings: Settings
    backend: Backend
    admission: Admission
    streams: StreamRegistry
    instance_path: str
    models: ModelCatalog
    coordinator: Coordinator
    answers: AnswerJobs
    _store: Store | None = field(default=None, init=False, repr=False)
    _checkpoints: CheckpointWriter | None = field(default=None, init=False, repr=False)

    def opened(self, store: Store, checkpoints: CheckpointWriter) -> None:
        """The start-up step opened the store (startup.start_up)."""
        self._store, self._checkpoints = store, checkpoints

    @property
    def store(self) -> Store:
        """The conversation store."""
        if self._store is None:
            raise NotStarted("the conversation store is not open: chatapp.startup.start_up() opens it")
        return self._store

    @property
    def checkpoints(self) -> CheckpointWriter:
        """This process's writer of streaming answers' checkpoints."""
        if self._checkpoints is None:
            raise NotStarted("the checkpoint writer is not running: chatapp.startup.start_up() starts it")
        return self._checkpoints

    def drain(self, deadline: float) -> int:
        """The worker exits: admit no new stream, let running ones finish until `deadline`
        (monotonic), then cancel the rest; how many were cancelled."""
        self.admission.close()
        return self.streams.drain(max(deadline, time.monotonic()))


def build_state(settings: Settings, instance_path: str) -> AppState:
    """The engine of one app instance, wired: the backend, admission, the registry of live streams
    (which tells the coordinator what runs here), the coordinator (which has this process stop its
    streams when another asks), and resumable answers. Nothing is opened yet (startup.py)."""
    backend = make_backend(settings)
    streams = StreamRegistry(
        write_timeout_s=settings.write_timeout_s, tick_s=min(1.0, settings.heartbeat_s / 4)
    )
    coordinator = make_coordinator(settings)
    streams.announcer = coordinator
    coordinator.listen(lambda stream_id: streams.cancel(stream_id, Cause.STOPPED))
    return AppState(
        settings=settings,
        backend=backend,
        admission=Admission(settings.max_streams_per_worker, settings.max_streams_per_client),
        streams=streams,
        instance_path=instance_path,
        models=ModelCatalog(settings, backend),
        coordinator=coordinator,
        answers=AnswerJobs(
            streams,
            coordinator,
            retention_s=settings.stream_retention_s,
            unread_max_s=settings.detached_max_s,
        ),
    )


def app_state(app: Flask) -> AppState:
    state: AppState = app.extensions[EXTENSION_KEY]
    return state
