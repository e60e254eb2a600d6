"""Server processes that end with the process that started them.

``modelstore serve`` is a gunicorn master with forked workers, and a local v2 endpoint starts a
server process per deployment and a router. A parent that is killed outright (``kill -9``, the
OOM killer, a CI runner's timeout) runs no clean-up, and its children would go on holding the
port, the model files and the CPU (a worker inside a long ``init()`` does not notice for as
long as ``init()`` runs). On Linux the kernel can signal a child when its parent exits
(``prctl(PR_SET_PDEATHSIG)``): the child then stops as on Ctrl-C, cleaning up what it owns.
Elsewhere this does nothing, and a child notices only when gunicorn next checks its parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PARENT_ENV = "MODELSTORE_PARENT_PID"
"""Set by a process for the children it starts, so each can tell whether it is already an
orphan by the time it asks for the signal."""
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, sig: int = signal.SIGINT) -> bool:
    """Ask for ``sig`` when the parent (``parent_pid``) exits; if it has exited already, send
    it now. Returns whether the kernel took the request. The signal goes with the parent's
    thread that started this process, so call it only in children started from a thread that
    lives as long as the parent (the main thread)."""
    if sig == signal.SIGINT and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started from a shell that ignores SIGINT (a background job, nohup): a stop request
        # would be dropped until a server installs its own handlers.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    armed = False
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os.kill(os.getpid(), sig)
    return armed


def die_with_starter() -> None:
    """``die_with_parent`` for a process started with ``PARENT_ENV`` in its environment."""
    text = os.environ.pop(PARENT_ENV, "")
    if text.isdigit():
        die_with_parent(int(text))
