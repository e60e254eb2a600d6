"""Building the scoring app for in-process tests, through the public serving API only."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import flask

from modelstore.serving.app import create_app
from modelstore.serving.settings import ServingSettings


def make_client(tmp_path: Path, source: str, **settings: Any) -> flask.testing.FlaskClient:
    """A test client of the app serving ``source`` (dedented) as ``tmp_path/score.py``, with
    ``tmp_path`` as the app root and ``settings`` as ServingSettings fields."""
    script = tmp_path / "score.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    app = create_app(ServingSettings(entry_script=script, app_root=tmp_path, **settings))
    return app.test_client()
