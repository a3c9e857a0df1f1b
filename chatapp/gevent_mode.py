"""Whether this process runs under gevent's monkey-patching: the one test, for the streaming engine
and the store alike.

A gunicorn gevent worker patches itself after the fork and before it imports the app, so the
answer never changes once the app runs; outside gunicorn (`flask run`, the tests' own process)
nothing is patched and every helper falls back to plain threads. Looked up in `sys.modules`, so
a process without gevent never imports it.
"""

from __future__ import annotations

import sys


def gevent_patched() -> bool:
    """True when gevent has made this process's sockets cooperative (a gunicorn gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("socket"))
