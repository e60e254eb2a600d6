"""Whether this server process has been asked to stop.

A worker told to quit (Ctrl-C reaches every process of the terminal's group; gunicorn's
SIGINT/SIGQUIT handler then raises ``SystemExit(0)`` wherever the worker is) may be inside the
user's ``init()``. That exception is the server stopping, not the script failing: the code that
runs ``init()`` asks here before it reports an ``init()`` failure. A flag in its own module,
so the worker (``server``) can set it and the app (``app``) read it without importing each
other.
"""

from __future__ import annotations

import threading

_requested = threading.Event()


def request() -> None:
    """Called by the worker's signal handlers, before they stop the worker."""
    _requested.set()


def requested() -> bool:
    return _requested.is_set()
