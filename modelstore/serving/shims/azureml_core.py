"""Stand-in for the ``azureml.core`` package, used only when azureml-core is not installed:
``from azureml.core import Model`` gets the same stand-in as ``azureml.core.model``; any other
name fails with one line saying azureml-core is missing."""

from __future__ import annotations

from typing import NoReturn

from modelstore.serving.shims import azureml_core_model as model
from modelstore.serving.shims.azureml_core_model import Model, unavailable_text

__all__ = ["Model", "model"]


def __getattr__(name: str) -> NoReturn:
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(unavailable_text(f"azureml.core.{name}"), name="azureml.core")
