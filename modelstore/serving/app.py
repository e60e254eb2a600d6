"""The Flask app that answers like azmlinfsrv: routes, request ids, headers, errors, CORS.

``create_app`` loads the entry script, runs ``init()`` once and returns a plain Flask app; the
WSGI server (``modelstore serve``) and the pytest plugin's test client both use it, so tests and
the server share one code path. The safe fixes (docs/server.md) are on: a JSON 413 body limit,
and JSON bodies with request ids and the server-version header on routing 404/405 and on
over-long request lines (414) and headers (431).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import flask
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge, RequestTimeout

from modelstore.errors import EntryScriptError
from modelstore.serving import stopping
from modelstore.serving.diagnose import explain_init_failure
from modelstore.serving.invoke import (
    InputRejected,
    MethodNotHandled,
    ScriptFailed,
    ScriptTimedOut,
    invoke_run,
    is_schema_validation_error,
    run_arguments,
    to_response,
)
from modelstore.serving.loader import EntryScript, load_entry_script
from modelstore.serving.logs import SERVER_LOGGER, log_model_dir_tree
from modelstore.serving.settings import ServingSettings
from modelstore.serving.shims.aml_response import SPLIT_HEADER_VALUES_CONFIG, AMLResponse
from modelstore.serving.swagger import DEFAULT_VERSION, SwaggerDocuments, SwaggerNotFound

logger = logging.getLogger(SERVER_LOGGER)

SERVER_VERSION = "azmlinfsrv/1.5.1"
"""The ``x-ms-server-version`` value: the azmlinfsrv release whose behaviour we reproduce."""
REQUEST_ID_LIMIT = 100
REQUEST_LINE_LIMIT = 4094
HEADER_FIELD_LIMIT = 8190
"""gunicorn's default limits, which azmlinfsrv answers with HTML 414/431 pages; we answer them
with JSON when the server lets such requests through (a safe fix)."""
EXTENSION_KEY = "modelstore.serving"
SCRIPT_ERROR = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL_ERROR = "An unexpected internal error occurred. Check the logs for more info."


@dataclass(frozen=True)
class ServingState:
    """What the routes need, stored on ``app.extensions``."""

    settings: ServingSettings
    script: EntryScript
    swagger: SwaggerDocuments


def serving_state(app: flask.Flask | None = None) -> ServingState:
    state: ServingState = (app or flask.current_app).extensions[EXTENSION_KEY]
    return state


def error_response(
    status: int, message: str, *, run_function_failed: bool = False
) -> flask.Response:
    """azmlinfsrv's error shape: ``{"message": ...}``, JSON, with ``x-ms-run-function-failed``."""
    return AMLResponse(
        {"message": message}, status, json_str=True, run_function_failed=run_function_failed
    )


def frontend_timeout_message(timeout_ms: int) -> str:
    """The 408 body of a v2 endpoint's front end. Azure documents the status, not the body:
    this text is modelstore's, naming the setting to change (docs/azureml-v2.md)."""
    return (
        f"Request timed out after {timeout_ms} ms: the deployment's "
        "request_settings.request_timeout_ms was reached before run() answered; raise it "
        "(at most 180000) or make run() faster"
    )


# --- the request body limit (a safe fix) ---------------------------------------------------


def body_limit_message(limit: int) -> str:
    mib = limit / (1024 * 1024)
    size = f"{mib:g} MiB" if mib >= 1 else f"{limit} bytes"
    return (
        f"Request body is larger than this server's limit of {size}. Send a smaller body, "
        "or restart the server with a larger --max-body."
    )


class BodyTooLarge(RequestEntityTooLarge):
    """A chunked body grew past the limit while being read (wherever it was read from)."""


class MalformedBody(BadRequest):
    """The body's framing is broken (a malformed chunk, a body cut short): raised by the server
    while the app reads it, answered 400 wherever it was read from."""


class BodyReadTimedOut(RequestTimeout):
    """The rest of the body did not arrive by the server's read deadline (answered 408)."""


BODY_ERRORS = (BodyTooLarge, MalformedBody, BodyReadTimedOut)
"""Failures of reading the request body: answered with their own status even when the script
met them (a ``@rawhttp`` script reads the body itself)."""


class CappedInput:
    """``wsgi.input`` of a chunked request, raising :class:`BodyTooLarge` past ``limit`` bytes."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._read = 0

    def _count(self, data: bytes) -> bytes:
        self._read += len(data)
        if self._read > self._limit:
            raise BodyTooLarge(description=body_limit_message(self._limit))
        return data

    def read(self, size: int | None = -1) -> bytes:
        wanted = self._limit + 1 - self._read if size is None or size < 0 else size
        return self._count(self._stream.read(min(wanted, self._limit + 1 - self._read)))

    def readline(self, size: int | None = -1) -> bytes:
        cap = self._limit + 1 - self._read
        return self._count(
            self._stream.readline(cap if size is None or size < 0 else min(size, cap))
        )

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


def _body_error(error: BaseException | None) -> HTTPException | None:
    """The body-reading failure behind ``error`` (its cause chain), if there is one."""
    seen = 0
    while error is not None and seen < 20:
        if isinstance(error, BODY_ERRORS):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


# --- request hooks ----------------------------------------------------------------------------
# These run on every request, so they read the WSGI environ directly (the same keys Werkzeug's
# ``request.headers`` would look up) and bind the ``flask.request``/``flask.g`` proxies once:
# each proxy access costs a context-variable lookup, and a trivial request used some forty.

_TRACE_ID_KEY = "HTTP_TRACEID"
"""Where the ``TraceId`` header lives in the environ (``request.headers`` maps it there too)."""
_NOT_HEADERS = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})
_BODY_HEADERS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})


def _current_request() -> flask.Request:
    request: flask.Request = flask.request._get_current_object()  # type: ignore[attr-defined]
    return request


def _current_g() -> Any:
    return flask.g._get_current_object()


def new_request_id() -> str:
    """``str(uuid.uuid4())`` without building a ``UUID`` object (a third of the cost): 16 random
    bytes with the version-4 and RFC 4122 variant bits set, in the same 8-4-4-4-12 hex form."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _assign_request_ids(environ: dict[str, Any], g: Any) -> flask.Response | None:
    """The three request-id headers (docs/server.md), and the 431s for over-long ones."""
    g.request_id = g.client_request_id = g.legacy_client_request_id = ""
    request_id = environ.get("HTTP_X_REQUEST_ID")
    if request_id is None:
        request_id = new_request_id()
    if len(request_id) > REQUEST_ID_LIMIT:
        return error_response(431, f"x-request-id must not exceed {REQUEST_ID_LIMIT} characters")
    g.request_id = request_id
    legacy = environ.get("HTTP_X_MS_REQUEST_ID", "")
    client = environ.get("HTTP_X_MS_CLIENT_REQUEST_ID", "")
    if legacy:
        logger.warning(
            "x-ms-request-id header has been deprecated and will be removed from future versions "
            "of the server. Please use x-ms-client-request-id."
        )
        client = client or legacy
    else:
        legacy = client or request_id
    if len(legacy) > REQUEST_ID_LIMIT or len(client) > REQUEST_ID_LIMIT:
        return error_response(
            431,
            "x-ms-request-id and x-ms-client-request-id must not exceed "
            f"{REQUEST_ID_LIMIT} characters",
        )
    g.legacy_client_request_id = legacy
    g.client_request_id = client
    return None


def _enforce_body_limit(
    request: flask.Request, environ: dict[str, Any], limit: int | None
) -> flask.Response | None:
    if limit is None:
        return None
    length = request.content_length
    if length is not None:
        if length > limit:
            # Answered without reading the body, so the connection cannot be reused: say so
            # (the WSGI server then closes it) rather than leave a pipelining client stranded.
            refused = error_response(413, body_limit_message(limit))
            refused.headers["Connection"] = "close"
            return refused
        return None
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() or environ.get(
        "wsgi.input_terminated"
    ):
        environ["wsgi.input"] = CappedInput(environ["wsgi.input"], limit)
    return None


def _request_line_length(environ: dict[str, Any]) -> int:
    uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not uri:
        query = environ.get("QUERY_STRING", "")
        uri = quote(environ.get("PATH_INFO", "")) + (f"?{query}" if query else "")
    method = environ.get("REQUEST_METHOD", "")
    return len(f"{method} {uri} {environ.get('SERVER_PROTOCOL', 'HTTP/1.1')}")


def _header_name(environ_key: str) -> str:
    """The header name ``request.headers`` shows for an environ key (``HTTP_X_A`` -> ``X-A``)."""
    name = environ_key[5:] if environ_key.startswith("HTTP_") else environ_key
    return name.replace("_", "-").title()


def _enforce_line_and_header_limits(environ: dict[str, Any]) -> flask.Response | None:
    if _request_line_length(environ) > REQUEST_LINE_LIMIT:
        return error_response(
            414,
            f"Request line is longer than {REQUEST_LINE_LIMIT} bytes. Shorten the URL: send "
            "large inputs in the request body.",
        )
    # The headers of ``request.headers``, in its order, without building their names.
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            if key in _NOT_HEADERS:
                continue
            name_length = len(key) - 5
        elif key in _BODY_HEADERS and value:
            name_length = len(key)
        else:
            continue
        if name_length + 2 + len(value) > HEADER_FIELD_LIMIT:
            name = _header_name(key)
            return error_response(
                431,
                f"Header {name!r} is longer than {HEADER_FIELD_LIMIT} bytes. Send a shorter value.",
            )
    return None


def _add_common_headers(
    response: flask.Response, environ: dict[str, Any], g: Any, server_version_header: bool
) -> None:
    """Server version, request ids and the ``TraceId`` echo, on every response (docs/server.md)."""
    headers = response.headers
    if server_version_header:
        headers.add("x-ms-server-version", SERVER_VERSION)
    request_id = getattr(g, "request_id", None)
    if request_id:
        headers["x-request-id"] = request_id
    legacy = getattr(g, "legacy_client_request_id", None)
    if legacy:
        headers["x-ms-request-id"] = legacy
    client = getattr(g, "client_request_id", None)
    if client:
        headers["x-ms-client-request-id"] = client
    trace_id = environ.get(_TRACE_ID_KEY)
    if trace_id is not None:
        headers.add("TraceId", trace_id)


_REQUEST_LINE_FORMAT = "%s %s %s %.3fms %s"


def _log_request(response: flask.Response, request: flask.Request, g: Any) -> None:
    """``<METHOD> <path>[?<query>] <status> <ms>ms <length|N/A>`` for /score and /swagger.json.

    The record is made directly (``makeRecord`` + ``handle``) rather than through
    ``logger.info``, which would walk the stack for the caller's file and line on every request.
    """
    if not getattr(g, "api_name", None) or not logger.isEnabledFor(logging.INFO):
        return
    started = getattr(g, "started", None)
    elapsed_ms = 0.0 if started is None else (time.perf_counter() - started) * 1000
    path = request.path
    query = request.query_string
    if query:
        path += f"?{query.decode(errors='replace')}"
    length = "N/A" if response.is_streamed else response.calculate_content_length()
    arguments = (request.method, path, response.status_code, elapsed_ms, length)
    logger.handle(
        logger.makeRecord(
            logger.name, logging.INFO, __file__, 0, _REQUEST_LINE_FORMAT, arguments, None,
            "_log_request",
        )
    )  # fmt: skip


def _http_error(error: HTTPException) -> flask.Response:
    """Routing 404/405 and body-limit 413 as JSON (azmlinfsrv's text; no ``Allow`` header)."""
    return error_response(error.code or 500, error.description or error.name)


def _unhandled_error(error: Exception) -> flask.Response:
    logger.error("Encountered Exception: %s", traceback.format_exc())
    return error_response(500, INTERNAL_ERROR)


# --- routes -----------------------------------------------------------------------------------


def _health() -> str:
    return "Healthy"


class _RequestPath:
    """The hooks and views of one app, bound to its :class:`ServingState` when the app is built,
    so a request never looks the state up through ``current_app``."""

    def __init__(self, state: ServingState) -> None:
        self.state = state
        self.script = state.script
        self.settings = state.settings

    def before_request(self) -> flask.Response | None:
        request = _current_request()
        g = _current_g()
        g.started = time.perf_counter()
        environ = request.environ
        return (
            _assign_request_ids(environ, g)
            or _enforce_line_and_header_limits(environ)
            or _enforce_body_limit(request, environ, self.settings.max_body_bytes)
        )

    def after_request(self, response: flask.Response) -> flask.Response:
        """The common headers first, then the log line (the order of the former two hooks)."""
        request = _current_request()
        g = _current_g()
        _add_common_headers(response, request.environ, g, self.settings.server_version_header)
        _log_request(response, request, g)
        return response

    def swagger(self) -> flask.Response:
        request = _current_request()
        _current_g().api_name = "/swagger.json"
        version = request.args.get("version")
        try:
            document = self.state.swagger.get(DEFAULT_VERSION if version is None else version)
        except SwaggerNotFound as exc:
            return error_response(404, exc.message)
        return AMLResponse(document, 200, json_str=True)

    def score(self) -> flask.Response:
        request = _current_request()
        _current_g().api_name = "/score"
        script = self.script
        settings = self.settings
        try:
            arguments = run_arguments(script, request)
        except InputRejected as exc:
            return error_response(exc.status, exc.message)
        except MethodNotHandled:
            if request.method == "OPTIONS":
                return AMLResponse("", 200)
            return error_response(405, "Method not allowed")
        frontend = settings.frontend_timeout()
        limit = settings.request_timeout_ms if frontend else settings.scoring_timeout_ms
        try:
            result = invoke_run(script, arguments, limit or settings.scoring_timeout_ms, request)
        except ScriptTimedOut as exc:
            if frontend:
                logger.error("The endpoint's front end timed the request out: %s", exc)
                return error_response(408, frontend_timeout_message(exc.timeout_ms))
            logger.error("Encountered Exception: %s", traceback.format_exc())
            return error_response(500, str(exc), run_function_failed=True)
        except ScriptFailed as exc:
            cause = exc.error
            logger.error(
                "Encountered Exception: %s",
                "".join(traceback.format_exception(type(cause), cause, cause.__traceback__)),
            )
            body_error = _body_error(cause)
            if body_error is not None:
                return _http_error(body_error)
            if settings.validation_400 and is_schema_validation_error(script, cause):
                return error_response(400, str(cause))
            return error_response(500, SCRIPT_ERROR, run_function_failed=True)
        response = to_response(result.output, numpy_json=settings.numpy_json)
        response.headers.add("x-ms-run-fn-exec-ms", f"{result.elapsed_ms:.3f}")
        return response


SCORE_ENDPOINT = "main.score"


class ScoringFlask(flask.Flask):
    """Flask, with ``/score`` dispatched without the generic lookups.

    ``Flask.preprocess_request`` walks the URL-value preprocessors and ``before_request``
    functions of the app and each blueprint, and ``Flask.dispatch_request`` looks the view up
    and checks it for automatic ``OPTIONS`` and coroutines. The scoring app's set-up is fixed:
    one ``before_request`` hook and no preprocessors, and ``/score`` takes no URL values and
    answers its own ``OPTIONS``. So for a matched ``/score`` these two documented extension
    points call the hook and the view directly; Flask's ``full_dispatch_request`` still runs
    everything around them (signals, error handling, ``finalize_request``), and any other
    set-up or route takes Flask's own path.
    """

    _score_path: _RequestPath | None = None
    _direct_score: bool | None = None

    def use_direct_score(self, path: _RequestPath) -> None:
        self._score_path = path

    def _direct_score_applies(self, path: _RequestPath) -> bool:
        before = {name: funcs for name, funcs in self.before_request_funcs.items() if funcs}
        preprocessors = any(self.url_value_preprocessors.values())
        return not preprocessors and before == {None: [path.before_request]}

    def _direct_path(self) -> _RequestPath | None:
        """The bound hooks and views when this request is a matched ``/score`` that may skip
        Flask's generic lookups, else ``None``."""
        path = self._score_path
        if path is None:
            return None
        request = _current_request()
        rule = request.url_rule
        if request.routing_exception is not None or rule is None or rule.endpoint != SCORE_ENDPOINT:
            return None
        if self._direct_score is None:  # set-up is frozen once the first request arrives
            self._direct_score = self._direct_score_applies(path)
        return path if self._direct_score else None

    def preprocess_request(self) -> Any:
        path = self._direct_path()
        return super().preprocess_request() if path is None else path.before_request()

    def dispatch_request(self) -> Any:
        path = self._direct_path()
        return super().dispatch_request() if path is None else path.score()


def _build_blueprint(settings: ServingSettings, path: _RequestPath) -> flask.Blueprint:
    blueprint = flask.Blueprint("main", __name__)
    blueprint.add_url_rule("/", "health", _health, methods=["GET"])
    blueprint.add_url_rule("/swagger.json", "swagger", path.swagger, methods=["GET"])
    blueprint.add_url_rule(
        "/score",
        "score",
        path.score,
        methods=["GET", "POST", "OPTIONS"],
        provide_automatic_options=False,
    )
    if settings.cors_origins:
        import flask_cors

        flask_cors.CORS(blueprint, methods=["GET", "POST"], origins=list(settings.cors_origins))
        logger.info("Enabling CORS for the following origins: %s", ", ".join(settings.cors_origins))
    return blueprint


# --- start-up ---------------------------------------------------------------------------------


def invoke_init(script: EntryScript) -> None:
    """Call ``init()`` once; on failure log as azmlinfsrv does and raise a one-line error."""
    logger.info("Invoking user's init function")
    try:
        script.init()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        if stopping.requested():  # Ctrl-C while init() ran: the server stops, nothing failed
            logger.info("User's init function was interrupted: the server is stopping")
            raise SystemExit(0) from None
        logger.error("User's init function failed")
        logger.error("Encountered Exception %s", traceback.format_exc())
        log_model_dir_tree(logger, os.environ.get("AZUREML_MODEL_DIR"))
        hint = explain_init_failure(logger, exc)
        detail = f"{exc}{hint}".rstrip(".")  # the SDK's and our notes end with a full stop
        raise EntryScriptError(
            f"init() of {script.path} raised {type(exc).__name__}: {detail}; see the log above"
        ) from None
    logger.info("Users's init has completed successfully")


def create_app(settings: ServingSettings, *, run_init: bool = True) -> flask.Flask:
    """Load the entry script, call ``init()`` once (unless ``run_init=False``) and build the app.

    Raises :class:`EntryScriptError` (exit code 3) when the script cannot be loaded or ``init()``
    raises; nothing is served in that case, as with azmlinfsrv.
    """
    app_root = settings.app_root
    script = load_entry_script(settings.entry_script, settings)
    if run_init:
        invoke_init(script)
    swagger = SwaggerDocuments.build(script, settings, app_root)

    app = ScoringFlask(__name__)
    app.config[SPLIT_HEADER_VALUES_CONFIG] = settings.split_header_values
    state = ServingState(settings=settings, script=script, swagger=swagger)
    app.extensions[EXTENSION_KEY] = state
    path = _RequestPath(state)
    app.register_blueprint(_build_blueprint(settings, path))
    if settings.docs_page:
        from modelstore.serving.docs_page import register_docs

        register_docs(app, swagger, settings.service_name, script.mode)
    app.before_request(path.before_request)
    app.after_request(path.after_request)
    app.use_direct_score(path)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unhandled_error)
    logger.info("Scoring timeout is set to %d", settings.scoring_timeout_ms)
    if settings.frontend_timeout():
        logger.info("Request timeout (v2 front end, 408) is set to %d", settings.request_timeout_ms)
    logger.info("Worker with pid %d ready for serving traffic", os.getpid())
    return app
