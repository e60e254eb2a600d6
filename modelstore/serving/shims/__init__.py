"""The ``azureml.contrib.services`` modules that azmlinfsrv injects, so scripts run without azureml.

azmlinfsrv registers its own ``aml_request``/``aml_response`` modules in ``sys.modules``; we do the
same with our copies, but only for names that no installed package provides: an installed
azureml-contrib-services (or azmlinfsrv) is never shadowed, and its own ``rawhttp`` flag is then
the one that counts.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from modelstore.serving.shims import aml_request, aml_response

SHIMMED_MODULES: dict[str, ModuleType] = {
    "azureml.contrib.services.aml_request": aml_request,
    "azureml.contrib.services.aml_response": aml_response,
    "azureml_inference_server_http.api.aml_request": aml_request,
    "azureml_inference_server_http.api.aml_response": aml_response,
}
_OURS = {id(module) for module in SHIMMED_MODULES.values()}


def _provided_by_a_package(name: str) -> bool:
    existing = sys.modules.get(name)
    if existing is not None:
        return id(existing) not in _OURS
    try:
        return importlib.util.find_spec(name) is not None
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
