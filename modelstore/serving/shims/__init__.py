"""The ``azureml.contrib.services`` modules that azmlinfsrv injects, so scripts run without azureml.

azmlinfsrv registers its own ``aml_request``/``aml_response`` modules in ``sys.modules``; we do the
same with our copies, but only for names that no installed package provides: an installed
azureml-contrib-services (or azmlinfsrv) is never shadowed, and its own ``rawhttp`` flag is then
the one that counts.

``azureml.core`` and ``azureml.core.model`` are added the same way: Azure ML images have
azureml-core, so unmodified scripts import ``Model`` from there for ``Model.get_model_path``.
They are provided only when no ``azureml.core`` package can be found at all.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from modelstore.serving.shims import aml_request, aml_response, azureml_core, azureml_core_model

SHIMMED_MODULES: dict[str, ModuleType] = {
    "azureml.contrib.services.aml_request": aml_request,
    "azureml.contrib.services.aml_response": aml_response,
    "azureml_inference_server_http.api.aml_request": aml_request,
    "azureml_inference_server_http.api.aml_response": aml_response,
    "azureml.core": azureml_core,
    "azureml.core.model": azureml_core_model,
}
_OURS = {id(module) for module in SHIMMED_MODULES.values()}
_PROVIDED_WITH = {"azureml.core.model": "azureml.core"}
"""Names decided by their package: probing the package does not execute azureml-core's heavy
``__init__`` (finding ``azureml.core.model`` would), and any installed azureml-core wins."""


def _provided_by_a_package(name: str) -> bool:
    for probe in dict.fromkeys((name, _PROVIDED_WITH.get(name, name))):
        existing = sys.modules.get(probe)
        if existing is not None:
            return id(existing) not in _OURS
    try:
        return importlib.util.find_spec(_PROVIDED_WITH.get(name, name)) is not None
    except (ImportError, ValueError):
        return False


def install_import_shims() -> list[str]:
    """Register our modules under every name no installed package provides; return those names."""
    installed = []
    for name, module in SHIMMED_MODULES.items():
        if not _provided_by_a_package(name):
            sys.modules[name] = module
            installed.append(name)
    return installed


def _request_modules() -> list[ModuleType]:
    """Every loaded ``aml_request`` module whose ``rawhttp`` a script may have called."""
    modules = {id(aml_request): aml_request}
    for name in (
        "azureml.contrib.services.aml_request",
        "azureml_inference_server_http.api.aml_request",
    ):
        module = sys.modules.get(name)
        if module is not None:
            modules[id(module)] = module
    return list(modules.values())


def reset_rawhttp_flag() -> None:
    """Forget earlier ``@rawhttp`` uses, so the next loaded script's mode is its own."""
    for module in _request_modules():
        if hasattr(module, "_rawHttpRequested"):
            setattr(module, "_rawHttpRequested", False)  # noqa: B010 - any module's flag
    aml_request._decorated.clear()


def rawhttp_requested() -> bool:
    """True once ``rawhttp`` was applied to any function since the last reset."""
    return any(getattr(module, "_rawHttpRequested", False) for module in _request_modules())


def rawhttp_functions() -> list[str]:
    """Names of the functions our ``rawhttp`` was applied to since the last reset."""
    return [getattr(f, "__qualname__", repr(f)) for f in aml_request._decorated]


def rawhttp_applied_to(function: object) -> bool:
    """Whether our ``rawhttp`` was applied to ``function`` or a function it wraps."""
    chain: list[object] = []
    current: object | None = function
    while current is not None and len(chain) < 50:
        chain.append(current)
        current = getattr(current, "__wrapped__", None)
    return any(f is candidate for f in aml_request._decorated for candidate in chain)
