"""One call of ``run()``: turning the request into arguments, the time limit, the response.

The three input modes, the ``SCORING_TIMEOUT_MS`` limit and the conversion of return values are
azmlinfsrv's (docs/server.md); the handful of opt-in fixes (numpy JSON, validation 400) are switched
by :class:`ServingSettings`.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub
import contextvars
import inspect
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

import flask

from modelstore.serving.loader import EntryScript, InputMode
from modelstore.serving.logs import SCRIPT_LOGGER
from modelstore.serving.shims.aml_response import AMLResponse

logger = logging.getLogger(SCRIPT_LOGGER)


class InputRejected(Exception):
    """The request cannot be turned into ``run()`` arguments (400/415); run() is not called."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class MethodNotHandled(Exception):
    """``OPTIONS``/``HEAD`` on ``/score`` for a script that is not ``@rawhttp``."""


class ScriptFailed(Exception):
    """``run()`` (or inference-schema's conversion inside it) raised."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


class ScriptTimedOut(Exception):
    """``run()`` did not return within ``SCORING_TIMEOUT_MS`` (or raised ``TimeoutError``)."""

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(f"Scoring timeout after {timeout_ms} ms")
        self.timeout_ms = timeout_ms


@dataclass(frozen=True)
class TimedResult:
    elapsed_ms: float
    output: Any


# --- input ------------------------------------------------------------------------------------


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def query_as_body(request: flask.Request) -> dict[str, Any]:
    """The query string read as a JSON object: values parsed as JSON when they are, repeated
    keys become lists (azmlinfsrv's rule for GET /score)."""
    parsed: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        parsed[key] = (
            _json_or_text(values[0]) if len(values) == 1 else [_json_or_text(v) for v in values]
        )
    return parsed


def _object_arguments(script: EntryScript, body: dict[str, Any]) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    for parameter in script.object_parameters:
        value = body.get(parameter.name, parameter.default)
        if value is inspect.Parameter.empty:
            raise InputRejected(
                400, f"A value is not provided for the {parameter.name!r} parameter."
            )
        arguments[parameter.name] = value
    return arguments


def _object_body(request: flask.Request) -> dict[str, Any]:
    if not request.is_json:
        raise InputRejected(415, "Expects Content-Type to be application/json")
    raw = request.get_data()
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        if raw:
            raise InputRejected(400, f"POST body could not be decoded as JSON: {exc}") from None
        raise InputRejected(400, "POST body is empty. Expecting a JSON dictionary.") from None
    except UnicodeDecodeError as exc:  # json.loads of bytes that are not UTF-8/16/32
        raise InputRejected(400, f"POST body could not be decoded as JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InputRejected(400, "POST body should be a JSON dictionary.")
    return body


FORM_MIMETYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
"""The content types Werkzeug parses into ``request.form``/``files``."""


def _body_as_data(request: flask.Request) -> bytes:
    """``request.data``: the body, or ``b""`` when Werkzeug parses it as a form.

    ``request.data`` builds a form parser on every call even for JSON; only form bodies need it
    (their parse errors, e.g. too many parts, must still surface), the rest is ``get_data()``.
    """
    # Only a Content-Type containing "form" can name a form type; the rest skip parsing it.
    if "form" in request.environ.get("CONTENT_TYPE", "").lower() and (
        request.mimetype in FORM_MIMETYPES
    ):
        return request.data
    return request.get_data()


def run_arguments(script: EntryScript, request: flask.Request) -> dict[str, Any]:
    """The keyword arguments of ``run()`` for this request, per the script's input mode."""
    if script.mode is InputMode.RAW_REQUEST:
        return {script.data_parameter: flask.request}
    if request.method == "GET":
        query = query_as_body(request)
        if script.mode is InputMode.JSON_STRING:
            return {script.data_parameter: json.dumps(query)}
        return _object_arguments(script, query)
    if request.method != "POST":
        raise MethodNotHandled(request.method)
    if script.mode is InputMode.JSON_STRING:
        try:
            return {script.data_parameter: str(_body_as_data(request), "utf-8")}
        except UnicodeDecodeError as exc:
            raise InputRejected(400, f"Input cannot be decoded as UTF-8: {exc}") from None
    return _object_arguments(script, _object_body(request))


# --- the time limit ---------------------------------------------------------------------------


def _raise_timeout(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError


def alarm_usable() -> bool:
    """SIGALRM works only on the main thread of a POSIX process (azmlinfsrv's condition)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _call_with_alarm(call: Callable[[], Any], timeout_ms: int) -> TimedResult:
    """azmlinfsrv's limit: an ITIMER_REAL alarm raising ``TimeoutError`` inside ``run()``.

    A timer already armed by someone else (pytest-timeout, for one) is re-armed afterwards with
    the time it had left, instead of being cancelled. The handlers are swapped with ``_signal``,
    the C function behind ``signal.signal``: the wrapper's enum conversion of a Python handler
    raises and catches a ValueError, some 2 us on each of the two calls every request makes.
    """
    previous_handler = _signal.signal(_signal.SIGALRM, _raise_timeout)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, timeout_ms / 1000)
    started = time.perf_counter()
    try:
        try:
            output = call()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except TimeoutError:
        raise ScriptTimedOut(timeout_ms) from None
    except (Exception, SystemExit) as exc:
        raise ScriptFailed(exc) from exc
    except KeyboardInterrupt as exc:
        if _signal.getsignal(_signal.SIGINT) is signal.default_int_handler:
            raise  # Ctrl-C (modelstore score, pytest): stop, do not answer
        # Under gunicorn SIGINT has its own handler: the script raised this itself. Answered
        # like sys.exit() instead of killing the worker with no answer at all.
        raise ScriptFailed(exc) from exc
    finally:
        elapsed_s = time.perf_counter() - started
        _signal.signal(_signal.SIGALRM, previous_handler)
        if previous_delay > 0:
            remaining = max(previous_delay - elapsed_s, 0.001)
            signal.setitimer(signal.ITIMER_REAL, remaining, previous_interval)
    return TimedResult(elapsed_s * 1000, output)


def _call_in_helper_thread(call: Callable[[], Any], timeout_ms: int) -> TimedResult:
    """The limit off the main thread (threaded servers), where no signal can interrupt run().

    run() executes in a daemon thread holding a copy of this request's context (so ``flask.request``
    and ``g`` work there); the request is answered with the timeout error on time. A run() that
    never returns keeps its thread busy; this is logged, as Python cannot stop a thread.
    """
    context = contextvars.copy_context()
    outcome: dict[str, Any] = {}

    def target() -> None:
        started = time.perf_counter()
        try:
            outcome["output"] = context.run(call)
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            outcome["elapsed_ms"] = (time.perf_counter() - started) * 1000

    worker = threading.Thread(target=target, name="modelstore-run", daemon=True)
    worker.start()
    worker.join(timeout_ms / 1000)
    if worker.is_alive():
        logger.error(
            "run() is still running after %d ms; answered with a timeout, "
            "its thread is left to finish",
            timeout_ms,
        )
        raise ScriptTimedOut(timeout_ms)
    error = outcome.get("error")
    if isinstance(error, TimeoutError):
        raise ScriptTimedOut(timeout_ms)
    # Signals reach the main thread only: a KeyboardInterrupt here is the script's own.
    if isinstance(error, (Exception, SystemExit, KeyboardInterrupt)):
        raise ScriptFailed(error) from error
    if error is not None:
        raise error
    return TimedResult(outcome["elapsed_ms"], outcome.get("output"))


def call_with_timeout(call: Callable[[], Any], timeout_ms: int) -> TimedResult:
    """``call`` under ``SCORING_TIMEOUT_MS``: SIGALRM on the main thread, else a helper thread."""
    if alarm_usable():
        return _call_with_alarm(call, timeout_ms)
    return _call_in_helper_thread(call, timeout_ms)


def invoke_run(
    script: EntryScript, arguments: dict[str, Any], timeout_ms: int, request: flask.Request
) -> TimedResult:
    """``run()`` under the time limit; the headers are copied only for a script that takes
    ``request_headers``."""
    headers = dict(request.headers) if script.accepts_request_headers else {}
    return call_with_timeout(lambda: script.call_run(arguments, headers), timeout_ms)


# --- inference-schema validation errors (opt-in 400) ------------------------------------------


def _traceback_frames(tb: TracebackType | None) -> Iterator[FrameType]:
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def _innermost_function(run: Callable[..., object]) -> Callable[..., object]:
    function: Any = run
    while hasattr(function, "__wrapped__"):
        function = function.__wrapped__
    return function  # type: ignore[no-any-return]


def is_schema_validation_error(script: EntryScript, error: BaseException) -> bool:
    """True when inference-schema rejected the input before the script's own ``run`` started:
    a ValueError whose traceback passes through inference-schema but never enters ``run``'s body."""
    if script.mode is not InputMode.OBJECT or not isinstance(error, ValueError):
        return False
    user_code = getattr(_innermost_function(script.run), "__code__", None)
    frames = list(_traceback_frames(error.__traceback__))
    entered_run = any(frame.f_code is user_code for frame in frames)
    in_schema = any("inference_schema" in frame.f_code.co_filename for frame in frames)
    return in_schema and not entered_run


# --- output -----------------------------------------------------------------------------------


def numpy_aware_default(value: Any) -> Any:
    """``json.dumps`` fallback for numpy/pandas values (opt-in: ``--numpy-json``).

    DataFrames become a list of row objects (``orient="records"``), other numpy/pandas values
    their ``tolist()``/``item()``; anything else stays unserialisable.
    """
    module = type(value).__module__ or ""
    if module.startswith(("numpy", "pandas")):
        if hasattr(value, "columns") and hasattr(value, "to_dict"):
            return value.to_dict(orient="records")
        if callable(getattr(value, "tolist", None)):
            return value.tolist()
        if callable(getattr(value, "item", None)):
            return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class JsonAnswer(flask.Response):
    """The answer for a value ``run()`` returned: a Flask response that skips Werkzeug's
    header fix-ups when they cannot change anything.

    ``get_wsgi_headers`` copies every header (validating each again) to rewrite ``Location``/
    ``Content-Location`` and to add or drop ``Content-Length`` for 1xx/204/304 answers. A 200
    with a ``Content-Length`` and neither location header comes out of it unchanged, so the
    headers are handed over as they are; any other case takes Werkzeug's path.
    """

    def get_wsgi_headers(self, environ: Any) -> Any:
        if self.status_code != 200:
            return super().get_wsgi_headers(environ)
        has_length = False
        for name, _ in self.headers:
            lowered = name.lower()
            if lowered == "content-length":
                has_length = True
            elif lowered in ("location", "content-location"):
                return super().get_wsgi_headers(environ)
        if not has_length:
            return super().get_wsgi_headers(environ)
        return self.headers


def to_response(output: Any, *, numpy_json: bool) -> flask.Response:
    """A Response is sent as is (flagged failed if >= 500); anything else is ``json.dumps``-ed.

    An unserialisable value raises ``TypeError``/``ValueError`` here, which the app answers with
    the internal-error 500, as azmlinfsrv does.
    """
    if isinstance(output, flask.Response):
        logger.info("run() output is HTTP Response")
        if output.status_code >= 500:
            output.headers["x-ms-run-function-failed"] = "True"
        return output
    if output is None:
        return AMLResponse(None, 200, json_str=True)
    body = json.dumps(output, default=numpy_aware_default if numpy_json else None)
    response = JsonAnswer(body, status=200, content_type="application/json")
    response.headers["x-ms-run-function-failed"] = "False"
    return response
