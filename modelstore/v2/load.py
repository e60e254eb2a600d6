"""Loading v2 YAML files into spec models, with one-line errors.

Each loader reads one file, validates it against the spec model with the file's folder as the
base for relative paths (as ``az ml`` resolves them), and turns the first problem, in file
order, into a :class:`~modelstore.errors.SpecError` naming the file, the key path, the line and
what is expected. Loading only reads: nothing is started, registered or written.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from modelstore.errors import SpecError
from modelstore.v2.common import AssetReference
from modelstore.v2.deployment_spec import (
    KubernetesOnlineDeploymentSpec,
    ManagedOnlineDeploymentSpec,
    OnlineDeploymentSpec,
)
from modelstore.v2.endpoint_spec import OnlineEndpointSpec
from modelstore.v2.model_spec import ModelSpec
from modelstore.v2.yamlfile import LineMapping, line_of, read_yaml_mapping

SpecT = TypeVar("SpecT", bound=BaseModel)


def load_model_spec(path: str | os.PathLike[str]) -> ModelSpec:
    """A ``model.yml`` as ``az ml model create -f`` reads it."""
    return _load(path, ModelSpec)


def load_endpoint_spec(path: str | os.PathLike[str]) -> OnlineEndpointSpec:
    """An online endpoint YAML as ``az ml online-endpoint create -f`` reads it."""
    return _load(path, OnlineEndpointSpec)


def load_deployment_spec(path: str | os.PathLike[str]) -> OnlineDeploymentSpec:
    """An online deployment YAML as ``az ml online-deployment create -f`` reads it.

    ``type: kubernetes`` gives a :class:`KubernetesOnlineDeploymentSpec`, anything else (or no
    ``type``) a :class:`ManagedOnlineDeploymentSpec`, as azure-ai-ml's loader decides.
    """
    shown = os.fspath(path)
    data = read_yaml_mapping(Path(shown), shown)
    kind = data.get("type")
    cls: type[OnlineDeploymentSpec] = (
        KubernetesOnlineDeploymentSpec
        if isinstance(kind, str) and kind.lower() == "kubernetes"
        else ManagedOnlineDeploymentSpec
    )
    return _validate(data, cls, shown)


def _load(path: str | os.PathLike[str], cls: type[SpecT]) -> SpecT:
    shown = os.fspath(path)
    return _validate(read_yaml_mapping(Path(shown), shown), cls, shown)


def _validate(data: LineMapping, cls: type[SpecT], shown: str) -> SpecT:
    base_dir = Path(os.path.abspath(shown)).parent
    try:
        return cls.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise _first_problem(exc, data, cls, shown) from None


def _first_problem(
    exc: ValidationError, data: LineMapping, cls: type[BaseModel], shown: str
) -> SpecError:
    """The problem that comes first in the file, as one :class:`SpecError`. A required key
    that is missing beside an unknown key of the same mapping is most likely that key
    misspelt (``pth:`` for ``path:``): the unknown key is reported, saying what it may be and
    that the other is required, since "required key is missing" alone hides the typo."""
    errors = exc.errors(include_url=False)
    unknown_in = {tuple(e["loc"][:-1]) for e in errors if e["type"] == "extra_forbidden"}
    missing = {str(e["loc"][-1]): tuple(e["loc"][:-1]) for e in errors if e["type"] == "missing"}
    located = []
    for order, error in enumerate(errors):
        keys, line = line_of(data, error["loc"])
        hidden = error["type"] == "missing" and tuple(error["loc"][:-1]) in unknown_in
        located.append((hidden, line, order, keys, error))
    _, line, _, keys, error = min(located, key=lambda item: item[:3])
    problem = _describe(error, cls)
    more = len(located) - 1
    if error["type"] == "extra_forbidden":
        meant = problem.removeprefix("unknown key; did you mean ").removesuffix("?")
        if missing.get(meant) == tuple(error["loc"][:-1]):
            problem += f" ({meant} is required)"
            more -= 1  # the missing key is this one, misspelt
    if more:
        problem += f" (and {more} more problem{'s' if more > 1 else ''} in this file)"
    return SpecError(shown, ".".join(keys), line, problem)


def _describe(error: ErrorDetails, cls: type[BaseModel]) -> str:
    """What is wrong and what is expected, in the words of the v2 schema."""
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(cls, error["loc"][:-1])
        key = str(error["loc"][-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        if close:
            return f"unknown key; did you mean {close[0]}?"
        return f"unknown key; expected one of: {', '.join(allowed)}"
    if kind == "missing":
        return "required key is missing"
    message: str = error["msg"]
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind in {"model_kind", "environment_kind"}:
        return f"{message}, got {_show(value)}"
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return f"expected a mapping of keys, got {_show(value)}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_show(value)}"
    limit = (error.get("ctx") or {}).get(_LIMITS.get(kind, ""), None)
    if limit is not None:
        return f"expected {_LIMIT_WORDS[kind]} {limit}, got {_show(value)}"
    if kind.startswith(("literal_", "string_")):
        text = message.replace("Input should be", "expected")
        text = text.replace("String should", "expected to")
        return f"{text}, got {_show(value)}"
    return f"{message}, got {_show(value)}"


_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "float_parsing": "a number",
    "float_type": "a number",
    "string_type": "a string",
    "list_type": "a list",
    "string_too_short": "a non-empty text",
}
_LIMITS = {
    "less_than_equal": "le",
    "greater_than_equal": "ge",
    "less_than": "lt",
    "greater_than": "gt",
}
_LIMIT_WORDS = {
    "less_than_equal": "at most",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "greater_than": "more than",
}


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _allowed_keys(cls: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model at ``loc`` accepts (following nested models and union tags)."""
    current: type[BaseModel] | None = cls
    for segment in loc:
        if current is None:
            break
        field = current.model_fields.get(str(segment))
        if field is not None:
            current = _model_in(field.annotation, None)
        else:  # a union tag, such as "inline"
            continue
    if current is None:
        return []
    return sorted(field.alias or name for name, field in current.model_fields.items())


def _model_in(annotation: Any, tag: str | None) -> type[BaseModel] | None:
    """The spec model inside an annotation such as ``X | None`` or a tagged union."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0], tag)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            found = _model_in(member, tag)
            if found is not None and found is not AssetReference:
                return found
    return None
