"""The app's start-up work, done once per serving process in one named step, never as a side effect
of reading an attribute or answering a request.

`start_up` runs where the app is created (`create_app`: in each gunicorn worker, after gevent has
patched it, since `preload_app` is off; or under `flask run`): it migrates the conversation
store's schema to head, opens the store, marks the answers that a dead worker left `streaming`
as `interrupted`, and starts the loop that checkpoints streaming answers and goes on marking
orphans (streaming/recording.py).
"""

from __future__ import annotations

import logging

from .state import AppState
from .store import Store, database_url, upgrade_to_head
from .streaming.recording import CheckpointWriter

log = logging.getLogger(__name__)


def start_up(state: AppState) -> None:
    url = database_url(state.settings.database_url, state.instance_path)
    upgrade_to_head(url)
    store = Store.open(url)
    checkpoints = CheckpointWriter(store, state.settings.checkpoint_s, is_live=state.streams.is_running)
    checkpoints.mark_orphans()
    checkpoints.start()
    state.opened(store, checkpoints)
