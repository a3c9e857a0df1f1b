"""Opening the model's stream without holding the client in silence: `ModelOpener` sends the
request and waits for the model server's headers in a helper (a greenlet under gevent, a thread
under `flask run`), while the relay writes heartbeats; a slow server (a model loading) may take
minutes. Until the headers arrive there is no response to close, so a cancel interrupts the
helper instead."""

from __future__ import annotations

import threading
from typing import Any

from ..llm.base import ModelStream
from .greenlets import current_greenlet, interrupt


class ModelOpener:
    def __init__(self, model_stream: ModelStream, name: str) -> None:
        self._model_stream = model_stream
        self._name = name
        self._helper: Any | None = None  # the helper greenlet while it waits
        self._settled = threading.Event()
        self.failure: BaseException | None = None

    def start(self) -> None:
        threading.Thread(target=self._open, name=self._name, daemon=True).start()

    def wait(self, timeout_s: float) -> bool:
        """True once the model answered, failed (`failure`), or the opening was cancelled."""
        return self._settled.wait(timeout_s)

    def cancel(self) -> None:
        """End the wait: interrupt a helper still waiting for the headers, wake the relay."""
        if self._helper is not None:
            interrupt(self._helper)
        self._settled.set()

    def _open(self) -> None:
        self._helper = current_greenlet()
        try:
            self._model_stream.open()
        except BaseException as exc:  # handed to the relay; GreenletExit is cancel() interrupting
            self.failure = exc
        finally:
            self._helper = None
            self._settled.set()
