"""Loading ``score.py`` the way azmlinfsrv does, and deciding once how ``run()`` will be called.

The module is executed as ``entry_module`` and kept out of ``sys.modules`` (azmlinfsrv's
behaviour: ``if __name__ == "__main__"`` blocks do not run). The source is read with ``open()``
and compiled here rather than through an import loader, so a script written to a pyfakefs
filesystem loads too (the pytest plugin relies on it). Every failure is logged with azmlinfsrv's
text and raised as :class:`EntryScriptError` (exit code 3) with a one-line reason.
"""

from __future__ import annotations

import enum
import inspect
import logging
import os
import sys
import traceback
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelstore.errors import EntryScriptError
from modelstore.serving import stopping
from modelstore.serving.logs import SCRIPT_LOGGER, SERVER_LOGGER, make_print_to_logger
from modelstore.serving.settings import ServingSettings
from modelstore.serving.shims import (
    install_import_shims,
    rawhttp_applied_to,
    rawhttp_functions,
    rawhttp_requested,
    reset_rawhttp_flag,
)

ENTRY_MODULE_NAME = "entry_module"
REQUEST_HEADERS_PARAMETER = "request_headers"

logger = logging.getLogger(SCRIPT_LOGGER)
server_logger = logging.getLogger(SERVER_LOGGER)


class InputMode(enum.Enum):
    """How ``run()`` receives a request; fixed when the script is loaded (docs/server.md)."""

    RAW_REQUEST = "raw request"
    OBJECT = "object"
    JSON_STRING = "JSON string"


@dataclass(frozen=True)
class EntryScript:
    """A loaded entry script and the calling convention azmlinfsrv chose for its ``run()``."""

    path: Path
    module: types.ModuleType
    init: Callable[[], object]
    run: Callable[..., object]
    """The function the server calls: the driver module's ``run`` when there is one."""
    mode: InputMode
    data_parameter: str
    """The first parameter other than ``request_headers``: gets the string or the request."""
    object_parameters: tuple[inspect.Parameter, ...]
    """Object mode: the parameters filled from the JSON body, in signature order."""
    accepts_request_headers: bool

    def call_run(self, arguments: Mapping[str, Any], request_headers: dict[str, str]) -> Any:
        """Call ``run()`` by keyword, adding ``request_headers`` only if it declares it."""
        if self.accepts_request_headers:
            return self.run(**arguments, request_headers=request_headers)
        return self.run(**arguments)


def schema_util() -> types.ModuleType | None:
    """inference-schema's ``schema_util`` if a script imported it (an optional dependency)."""
    return sys.modules.get("inference_schema.schema_util")


def is_schema_decorated(function: Callable[..., object]) -> bool:
    util = schema_util()
    return bool(util is not None and util.is_schema_decorated(function))


def _forget_earlier_schemas() -> None:
    """inference-schema keys its registry by ``<module>.<function>``: every entry script is
    ``entry_module.run``, so a second script loaded in one process would inherit (or clash with:
    "output schema already defined") the first one's schemas. azmlinfsrv loads one script per
    process and never meets this; we drop the ``entry_module.*`` entries before each load."""
    util = schema_util()
    if util is None:
        return
    for registry in (util.__functions_schema__, util.__versions__):
        for key in [key for key in registry if key.startswith(f"{ENTRY_MODULE_NAME}.")]:
            del registry[key]


def extend_sys_path(settings: ServingSettings, script_path: Path) -> None:
    """Append the app root, its source directory, then the script's own folder (as in Azure)."""
    app_root = settings.app_root
    entries = [str(app_root)]
    if settings.source_directory:
        entries.append(os.path.join(str(app_root), settings.source_directory))
    entries.append(str(script_path.parent))
    for entry in entries:
        if entry not in sys.path:
            sys.path.append(entry)


def _fail(message: str, *, log_text: str | None = None) -> EntryScriptError:
    logger.error(log_text or message)
    return EntryScriptError(message)


def _read_source(path: Path, *, log: bool = True) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        if log:
            server_logger.error("No such file or directory.")
            server_logger.error(traceback.format_exc())
        # ``path`` is already absolute; how a relative one was resolved depends on the caller
        # (the CLI: the current folder, as azmlinfsrv; ``from_environ``: the app root).
        raise EntryScriptError(
            f"entry script {path} does not exist; pass the path of your score.py"
        ) from None
    except OSError as exc:
        if log:
            server_logger.error(traceback.format_exc())
        raise EntryScriptError(
            f"entry script {path} cannot be read ({exc.strerror or exc}); pass a readable file"
        ) from None


AZUREML_IMPORT_HINT = (
    " (hint: no azureml package is installed; without one only these forms work:"
    " `from azureml.contrib.services.aml_request import AMLRequest, rawhttp` and"
    " `from azureml.contrib.services.aml_response import AMLResponse`, as in azmlinfsrv, and"
    " `from azureml.core.model import Model` or `from azureml.core import Model` for"
    " Model.get_model_path (also `from modelstore import Model`); for anything else pip install"
    " the azureml package the script imports)"
)
"""Why an ``azureml`` import failed: the generic advice (a module beside the script) is wrong."""


def _import_hint(exc: BaseException, path: Path) -> str:
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return ""
    top = exc.name.split(".")[0]
    if exc.name == "azureml":
        return AZUREML_IMPORT_HINT
    if top == "azureml":
        return f" (hint: {exc.name} is not installed; pip install the azureml package providing it)"
    return (
        f" (hint: '{top}' is neither installed nor a module beside the script in {path.parent}; "
        f"pip install it, or put {top}.py next to the script or under the app root)"
    )


def _compile(path: Path, source: bytes, *, log: bool = True) -> types.CodeType:
    try:
        return compile(source, str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        # A NUL byte in the source is a SyntaxError without a line from Python 3.11.4 on, and a
        # ValueError ("source code string cannot contain null bytes") before.
        if log:
            server_logger.error(traceback.format_exc())
        lineno = getattr(exc, "lineno", None)
        where = f" at line {lineno}" if lineno is not None else ""
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise EntryScriptError(
            f"entry script {path} has a syntax error{where}: {reason}; fix it and start again"
        ) from None


def check_entry_script(path: str | os.PathLike[str]) -> None:
    """Read and compile the script without running it, raising the same
    :class:`EntryScriptError` as :func:`load_entry_script` would, and logging nothing.

    A server calls it before it binds its port and starts workers, so a missing script or a
    syntax error is one line and exit code 3 at once, rather than a server that announces itself
    and then dies in every worker.
    """
    script_path = Path(os.path.abspath(path))
    _compile(script_path, _read_source(script_path, log=False), log=False)


def _execute(path: Path, source: bytes) -> types.ModuleType:
    code = _compile(path, source)
    module = types.ModuleType(ENTRY_MODULE_NAME)
    module.__file__ = str(path)
    # azmlinfsrv sends print() to the azmlinfsrv.print logger; inside one module is enough to keep
    # a test process's own print() untouched (servers also call redirect_print_process_wide()).
    module.__dict__["print"] = make_print_to_logger()
    try:
        exec(code, module.__dict__)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        if stopping.requested():  # Ctrl-C while the script imported: stopping, not failing
            raise SystemExit(0) from None
        server_logger.error(traceback.format_exc())
        raise EntryScriptError(
            f"entry script {path} failed while importing: {type(exc).__name__}: {exc}"
            f"{_import_hint(exc, path)}"
        ) from None
    return module


def _entry_functions(module: types.ModuleType, path: Path) -> tuple[Callable[[], object], Any]:
    for name in ("init", "run"):
        if not hasattr(module, name):
            text = f"User script at {path} does not have a {name}() function defined."
            raise _fail(
                f"{text} Define `def {name}(...)` at the top level of the script.", log_text=text
            )
    run = module.run
    driver = getattr(module, "driver_module", None)
    if isinstance(driver, types.ModuleType) and hasattr(driver, "run"):
        if getattr(driver, "__file__", None) is None:
            raise _fail(
                f"driver_module of {path} has no __file__ (azmlinfsrv fails to boot on it); "
                "make driver_module a module imported from a file"
            )
        run = driver.run
        logger.info("Found driver script at %s and the score script at %s", path, driver.__file__)
    else:
        logger.info("Found user script at %s", path)
    init: Callable[[], object] = module.init
    return init, run


def _analyse_run(
    run: Any, path: Path
) -> tuple[InputMode, str, tuple[inspect.Parameter, ...], bool]:
    try:
        parameters = list(inspect.signature(run).parameters.values())
    except (TypeError, ValueError):
        raise _fail(
            f"run in {path} is not a function (it is {type(run).__name__}); define `def run(data):`"
        ) from None
    allowed = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(parameter.kind not in allowed for parameter in parameters):
        text = "run() cannot accept positional-only arguments, *args, or **kwargs."
        raise _fail(f"{text} Name every parameter, e.g. `def run(data):`.", log_text=text)
    accepts_headers = any(p.name == REQUEST_HEADERS_PARAMETER for p in parameters)
    data_parameters = tuple(p for p in parameters if p.name != REQUEST_HEADERS_PARAMETER)
    if not data_parameters:
        if accepts_headers:
            text = 'run() needs to accept an argument other than "request_headers".'
        else:
            text = "run() needs to accept an argument for input data."
        raise _fail(f"{text} Declare it as `def run(data):`.", log_text=text)
    raw = rawhttp_requested()
    decorated = is_schema_decorated(run)
    if raw and decorated:
        text = "run() cannot be decorated with both @rawhttp and @input_schema"
        raise _fail(f"{text}; keep only one of them.", log_text=text)
    if raw:
        mode = InputMode.RAW_REQUEST
        logger.info(
            "run() is decorated with @rawhttp. Server will invoke it with the flask request object."
        )
        others = rawhttp_functions()
        if others and not rawhttp_applied_to(run):
            logger.warning(
                "@rawhttp was applied to %s, not to run(); like azmlinfsrv, run() still receives "
                "the raw request. Decorate run() itself to make that explicit.",
                ", ".join(others),
            )
    elif decorated:
        mode = InputMode.OBJECT
        names = ", ".join(p.name for p in data_parameters)
        logger.info(
            "run() is decorated with @input_schema. Server will invoke it with the following "
            "arguments: %s.",
            names,
        )
    else:
        mode = InputMode.JSON_STRING
        logger.info("run() is not decorated. Server will invoke it with the input in JSON string.")
    return mode, data_parameters[0].name, data_parameters, accepts_headers


def load_entry_script(path: str | os.PathLike[str], settings: ServingSettings) -> EntryScript:
    """Execute the script as a fresh ``entry_module`` and check it as azmlinfsrv does.

    Raises :class:`EntryScriptError` (exit code 3) for a missing script, a syntax or import
    error, a missing ``init``/``run``, a ``run()`` signature the server cannot call, or
    ``@rawhttp`` combined with ``@input_schema``.
    """
    script_path = Path(os.path.abspath(path))
    install_import_shims()
    extend_sys_path(settings, script_path)
    reset_rawhttp_flag()
    _forget_earlier_schemas()
    source = _read_source(script_path)
    module = _execute(script_path, source)
    init, run = _entry_functions(module, script_path)
    mode, data_parameter, parameters, accepts_headers = _analyse_run(run, script_path)
    return EntryScript(
        path=script_path,
        module=module,
        init=init,
        run=run,
        mode=mode,
        data_parameter=data_parameter,
        object_parameters=parameters,
        accepts_request_headers=accepts_headers,
    )
