"""Review findings on calling run(): a KeyboardInterrupt the script raises under the server."""

from __future__ import annotations

import signal
from pathlib import Path

import flask
import pytest

from modelstore.serving.app import create_app
from modelstore.serving.settings import ServingSettings

SCRIPT_ERROR = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERRUPTING = "def init():\n    pass\n\ndef run(data):\n    raise KeyboardInterrupt\n"


def make_app(tmp_path: Path) -> flask.Flask:
    script = tmp_path / "score.py"
    script.write_text(INTERRUPTING, encoding="utf-8")
    return create_app(ServingSettings(entry_script=script, app_root=tmp_path))


def test_a_keyboard_interrupt_raised_by_run_under_the_server_is_a_scoring_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under gunicorn SIGINT has gunicorn's handler, so a KeyboardInterrupt can only be the
    # script's own: it used to kill the worker with no answer (azmlinfsrv answers a 500).
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        client = make_app(tmp_path).test_client()
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
    client = make_app(tmp_path).test_client()
    with pytest.raises(KeyboardInterrupt):
        client.post("/score", data="x")
