"""modelstore: build and test Azure ML model deployments on your own machine.

The public names are imported lazily, so that ``from modelstore import get_model_path`` inside a
``score.py`` does not pull in SQLAlchemy, Flask or pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelstore.deployment import Deployment
    from modelstore.modelversion import ModelVersion
    from modelstore.registry import Registry
    from modelstore.resolve import Model, get_model_path

__all__ = ["Deployment", "Model", "ModelVersion", "Registry", "get_model_path"]

_LAZY = {
    "Registry": "modelstore.registry",
    "ModelVersion": "modelstore.modelversion",
    "Deployment": "modelstore.deployment",
    "get_model_path": "modelstore.resolve",
    "Model": "modelstore.resolve",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelstore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
