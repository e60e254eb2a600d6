"""Stand-in for ``azureml.contrib.services.aml_request``, as azmlinfsrv ships its own copy.

``rawhttp`` flips a module-global flag instead of marking the function: azmlinfsrv decides the
input mode from that flag, so applying it to *any* function switches ``run()`` to raw mode. We keep
that (it is what Azure does); the loader resets the flag before each script load so scripts loaded
one after another in one test process do not leak into each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Request

_F = TypeVar("_F", bound=Callable[..., object])

_rawHttpRequested = False
_decorated: list[Callable[..., object]] = []
"""Functions ``rawhttp`` was applied to since the last reset, to warn when ``run`` is not one."""


def rawhttp(func: _F) -> _F:
    """Ask the server to call ``run()`` with the Flask request itself; ``func`` is unchanged."""
    global _rawHttpRequested
    _rawHttpRequested = True
    _decorated.append(func)
    return func


class AMLRequest(Request):
    """Only a type hint: at run time ``run()`` receives Flask's request proxy, not this class."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[call-arg]  # faithful: unusable without an environ
