"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Put ``os.environ`` back as it was after every test.

    ``modelstore serve`` and ``score`` set the variables azmlinfsrv sets (``AML_APP_ROOT``,
    ``AZUREML_MODEL_DIR``, ``AZUREML_ENTRY_SCRIPT``) in their own process, which is right for a
    command that becomes the server; run in-process through click's CliRunner, a refused one
    would leave them behind and turn a later test's "outside a deployment" into "inside one".
    """
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)
