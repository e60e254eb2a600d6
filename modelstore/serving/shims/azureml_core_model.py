"""Stand-in for ``azureml.core.model``, used only when azureml-core is not installed.

Azure ML images ship azureml-core, so public entry scripts write
``from azureml.core.model import Model`` and call ``Model.get_model_path(...)``. Locally that
import is the only thing that would stop them, so modelstore provides what an entry script uses
(the static ``get_model_path``, with the SDK's signature) and makes everything else fail with
one line that says azureml-core is missing, instead of a half-working imitation.
"""

from __future__ import annotations

from typing import Any, NoReturn

from modelstore.errors import BadArgumentTypeError
from modelstore.resolve import Model as _ModelstoreModel

__all__ = ["Model"]

_OFFERED = (
    "modelstore stands in for azureml-core here (it is not installed) and offers only "
    "Model.get_model_path(model_name, version=None, _workspace=None)"
)


def unavailable_text(what: str) -> str:
    """The one line for anything of azureml-core that the stand-in does not offer."""
    return f"{what} is not available: {_OFFERED}; pip install azureml-core to use it"


class _StandInType(type):
    def __getattr__(cls, name: str) -> NoReturn:
        # Only missing attributes reach here; dunder probes (copy, pickle, inspect) must keep
        # getting a plain AttributeError.
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(unavailable_text(f"azureml.core.model.Model.{name}"))


class Model(_ModelstoreModel, metaclass=_StandInType):
    """``azureml.core.model.Model`` for entry scripts: ``Model.get_model_path`` resolves the
    deployed models exactly as azureml-core does (``_workspace`` is ignored: nothing is ever
    downloaded); constructing a Model or any other attribute fails with a clear error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise BadArgumentTypeError(unavailable_text("azureml.core.model.Model(...)"))


def __getattr__(name: str) -> NoReturn:
    """``from azureml.core.model import InferenceConfig``: an ImportError with our line (an
    AttributeError would be replaced by Python's generic "cannot import name")."""
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(unavailable_text(f"azureml.core.model.{name}"), name="azureml.core.model")
