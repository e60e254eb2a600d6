"""Calling run(): a KeyboardInterrupt the script raises is a 500 under the server only."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from serving_helpers import make_client

SCRIPT_ERROR = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERRUPTING = "def init():\n    pass\n\ndef run(data):\n    raise KeyboardInterrupt\n"


def test_a_keyboard_interrupt_raised_by_run_under_the_server_is_a_scoring_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under gunicorn SIGINT has gunicorn's handler, so a KeyboardInterrupt can only be the
    # script's own: it used to kill the worker with no answer (azmlinfsrv answers a 500).
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        client = make_client(tmp_path, INTERRUPTING)
        response = client.post("/score", data="x")
        assert response.status_code == 500
        assert response.get_json() == {"message": SCRIPT_ERROR}
        assert response.headers["x-ms-run-function-failed"] == "True"
        assert client.get("/").status_code == 200
    finally:
        signal.signal(signal.SIGINT, previous)


def test_with_pythons_own_sigint_handler_a_keyboard_interrupt_still_stops_the_caller(
    tmp_path: Path,
) -> None:
    # modelstore score and pytest: Ctrl-C during run() must abort, not print a 500.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    client = make_client(tmp_path, INTERRUPTING)
    with pytest.raises(KeyboardInterrupt):
        client.post("/score", data="x")
