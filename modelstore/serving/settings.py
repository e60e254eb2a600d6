"""What one scoring app needs to know, resolved once from azmlinfsrv's environment variables,
the CLI's options, the deployment's variables and ``config.json``.

The CLI (``modelstore serve``/``score``) and the pytest plugin all go through
:meth:`ServingSettings.resolve`; keeping the parsing here means every entry point reads
``SCORING_TIMEOUT_MS`` & co. the same way, a malformed value is reported once, clearly, and
nothing downstream reads the environment or the current directory again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from modelstore.errors import EntryScriptError, InvalidArgumentError
from modelstore.layout import APP_ROOT_ENV, MODEL_DIR_ENV

DEFAULT_SCORING_TIMEOUT_MS = 3_600_000
DEFAULT_WORKER_TIMEOUT_S = 300
"""azmlinfsrv's ``WORKER_TIMEOUT``: a worker silent this long is replaced."""
DEFAULT_READ_TIMEOUT_S = 5.0
"""How long a client has to send a whole request once it connected or began it (azmlinfsrv's
sync workers wait for it as long as ``WORKER_TIMEOUT``, 300 s, holding the worker)."""
SCRIPT_VARIABLE = "AZUREML_ENTRY_SCRIPT"
DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024
"""Azure's nginx front end refuses bodies over 100 MiB, so this limit never refuses what Azure
accepts (docs/server.md)."""


CONFIG_FILE_KEYS: dict[str, str] = {
    "AZUREML_SOURCE_DIRECTORY": "source_directory",
    "SCORING_TIMEOUT_MS": "scoring_timeout_ms",
    "SERVICE_NAME": "service_name",
    "SERVICE_VERSION": "service_version",
    "SERVICE_PATH_PREFIX": "service_path_prefix",
}
"""``config.json`` keys that name a setting of the app (azmlinfsrv's aliases)."""
IGNORED_CONFIG_KEYS = frozenset(
    {
        "AZUREML_ENTRY_SCRIPT",
        "WORKSPACE_NAME",
        "AZUREML_LOG_LEVEL",
        "APP_INSIGHTS_LOG_RESPONSE_ENABLED",
        "AZUREML_MODEL_DIR",
        "HOSTNAME",
        "AZUREML_DEBUG_PORT",
    }
)
"""Keys azmlinfsrv accepts but that do not concern the app (logging, telemetry, the CLI)."""

logger = logging.getLogger("azmlinfsrv")


def split_origins(value: str) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]``: azmlinfsrv trims each comma-separated item."""
    return [item.strip() for item in value.split(",") if item.strip()]


class ServingSettings(BaseModel):
    """Settings of one scoring app, fully resolved: every field mirrors an azmlinfsrv option or
    a documented fix, and nothing here reads ``os.environ`` or the current directory later.

    Build it with :meth:`resolve` (or :meth:`from_environ`); constructing it directly is for
    tests and embedders that already know every value (``app_root`` is then made absolute and a
    relative ``entry_script`` joined onto it, once, at construction).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_root: Path
    """Absolute: ``AML_APP_ROOT`` if set, else the launch directory (azmlinfsrv's CLI default)."""
    entry_script: Path
    """Absolute: a relative path is joined onto the app root, as azmlinfsrv does."""
    source_directory: str | None = None
    model_dir: str | None = None
    """``AZUREML_MODEL_DIR`` as the script sees it (verbatim, like azmlinfsrv), if set."""
    cors_origins: list[str] = Field(default_factory=list)
    scoring_timeout_ms: int = Field(default=DEFAULT_SCORING_TIMEOUT_MS, gt=0)
    request_timeout_ms: int | None = Field(default=None, gt=0)
    """A v2 deployment's ``request_settings.request_timeout_ms``: the endpoint's front end, not
    the container, answers 408 once a request has taken this long (``frontend_timeout``)."""
    max_concurrent_requests_per_instance: int | None = Field(default=None, gt=0)
    """A v2 deployment's ``request_settings.max_concurrent_requests_per_instance``: the front
    end answers 429 past twice this many requests in flight (``modelstore.serving.limits``)."""
    max_body_bytes: int | None = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    service_name: str = "ML service"
    service_version: str = "1.0"
    service_path_prefix: str = ""
    server_version_header: bool = True
    numpy_json: bool = False
    validation_400: bool = False
    split_header_values: bool = True
    docs_page: bool = True
    """``GET /docs`` (Swagger UI over ``/swagger.json``), which azmlinfsrv lacks; ``--no-docs``
    turns it off for runs that must match azmlinfsrv route for route."""
    workers: int = Field(default=1, gt=0)
    worker_timeout_s: int = Field(default=DEFAULT_WORKER_TIMEOUT_S, gt=0)
    read_timeout_s: float = Field(default=DEFAULT_READ_TIMEOUT_S, gt=0)
    script_environ: dict[str, str] = Field(default_factory=dict)
    """The variables the server sets for the entry script on top of the environment it
    inherits (``AML_APP_ROOT``, ``AZUREML_ENTRY_SCRIPT``, ``AZUREML_MODEL_DIR``...): the script
    reads ``os.environ``, as in Azure, so :meth:`apply_script_environ` writes them there."""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins_from_text(cls, value: Any) -> Any:
        return split_origins(value) if isinstance(value, str) else value

    def frontend_timeout(self) -> bool:
        """Whether the v2 front end's limit comes before the container's own."""
        return self.request_timeout_ms is not None and (
            self.request_timeout_ms < self.scoring_timeout_ms
        )

    @field_validator("app_root", mode="after")
    @classmethod
    def _absolute_app_root(cls, value: Path) -> Path:
        return Path(os.path.abspath(value))

    @field_validator("entry_script", mode="after")
    @classmethod
    def _script_onto_app_root(cls, value: Path, info: ValidationInfo) -> Path:
        app_root = info.data.get("app_root")
        return value if app_root is None else Path(os.path.join(app_root, value))

    def apply_script_environ(self) -> None:
        """Give the entry script the variables azmlinfsrv would give it.

        The one place serving writes ``os.environ``: the server's worker and ``score``'s
        in-process run call it right before loading the script, which reads them from there.
        """
        os.environ.update(self.script_environ)

    @classmethod
    def resolve(
        cls,
        environ: Mapping[str, str],
        cwd: str | os.PathLike[str],
        cli_overrides: Mapping[str, Any] | None = None,
        deployment_env: Mapping[str, str] | None = None,
    ) -> ServingSettings:
        """The settings in force, resolved once from every source, with azmlinfsrv's
        precedence: CLI option > deployment variable > environment variable > ``config.json``
        > default.

        ``environ`` is the process environment (or a prepared one); ``cwd`` the (absolute)
        launch directory, against which every relative path is resolved here, once.
        ``cli_overrides`` are the explicit options, by field name, plus: ``entry_script`` (an
        ``--entry-script`` path: resolved against ``cwd`` through symlinks, as azmlinfsrv's CLI
        does, and exported as ``AZUREML_ENTRY_SCRIPT``), ``model_dir`` (``--model-dir``, given
        to the script verbatim as ``AZUREML_MODEL_DIR``) and ``cors_origins`` (text, exported
        as ``AML_CORS_ORIGINS``). ``deployment_env`` holds the variables a deployment gives its
        script (``Registry.temporary_deployment``'s ``AML_APP_ROOT``/``AZUREML_MODEL_DIR``, a
        v2 deployment's ``environment_variables``): they win over ``environ``, may name the
        script (``AZUREML_ENTRY_SCRIPT``, joined onto the app root) and are all exported.

        A malformed value raises :class:`InvalidArgumentError` naming the variable, key or
        option the user set, so ``modelstore serve`` fails with one line.
        """
        cwd_text = os.fspath(cwd)
        flags = dict(cli_overrides or {})
        exported: dict[str, str] = {}
        env = dict(environ)
        if APP_ROOT_ENV not in env:
            exported[APP_ROOT_ENV] = cwd_text
        exported.update(deployment_env or {})
        model_dir = flags.pop("model_dir", None)
        if model_dir is not None:
            exported[MODEL_DIR_ENV] = str(model_dir)
        if isinstance(flags.get("cors_origins"), str):
            exported["AML_CORS_ORIGINS"] = flags["cors_origins"]
        env.update(exported)

        app_root = Path(
            os.path.abspath(
                os.path.join(cwd_text, flags.pop("app_root", None) or env[APP_ROOT_ENV] or ".")
            )
        )
        script_flag = flags.pop("entry_script", None)
        if script_flag is not None:
            script = Path(os.path.realpath(os.path.join(cwd_text, script_flag)))
            exported[SCRIPT_VARIABLE] = str(script)  # as azmlinfsrv's CLI sets it
        elif env.get(SCRIPT_VARIABLE):
            script = Path(os.path.join(app_root, env[SCRIPT_VARIABLE]))
        else:
            raise InvalidArgumentError(
                "no entry script given; pass entry_script= or set AZUREML_ENTRY_SCRIPT"
            )

        values: dict[str, Any] = config_file_values(env, app_root, script)
        values.update(_environment_values(env, given=flags.keys()))
        values.update(flags)
        values.update(
            app_root=app_root,
            entry_script=script,
            model_dir=env.get(MODEL_DIR_ENV),
            script_environ=exported,
        )
        try:
            return cls(**values)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            raise InvalidArgumentError(
                f"invalid serving setting {where}={error.get('input')!r}: {error['msg']}; "
                "fix the option or environment variable and start again"
            ) from None

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], *, entry_script: str | os.PathLike[str], **overrides: Any
    ) -> ServingSettings:
        """:meth:`resolve` for a script named as ``AZUREML_ENTRY_SCRIPT`` would name it (a
        relative path is joined onto the app root), launched from the current directory."""
        prepared = {**environ, SCRIPT_VARIABLE: os.fspath(entry_script)}
        return cls.resolve(prepared, os.getcwd(), overrides)


def _environment_values(env: Mapping[str, str], given: Collection[str]) -> dict[str, Any]:
    """The settings azmlinfsrv's variables name (above ``config.json``, below the options).

    The server's own variables are not even parsed when their option is ``given``, as click's
    ``envvar`` did: ``--workers 2`` works whatever ``WORKER_COUNT`` holds.
    """
    values: dict[str, Any] = {}
    if env.get("AZUREML_SOURCE_DIRECTORY"):
        values["source_directory"] = env["AZUREML_SOURCE_DIRECTORY"]
    if env.get("AML_CORS_ORIGINS"):
        values["cors_origins"] = split_origins(env["AML_CORS_ORIGINS"])
    if "SCORING_TIMEOUT_MS" in env:
        values["scoring_timeout_ms"] = _positive_int(
            "SCORING_TIMEOUT_MS", env["SCORING_TIMEOUT_MS"], "milliseconds"
        )
    for variable, field in (
        ("SERVICE_NAME", "service_name"),
        ("SERVICE_VERSION", "service_version"),
        ("SERVICE_PATH_PREFIX", "service_path_prefix"),
    ):
        if variable in env:
            values[field] = env[variable]
    if "SERVER_VERSION_LOG_RESPONSE_ENABLED" in env:
        flag = env["SERVER_VERSION_LOG_RESPONSE_ENABLED"].strip().lower()
        values["server_version_header"] = flag == "true"
    if env.get("WORKER_COUNT") and "workers" not in given:
        values["workers"] = _worker_count(env["WORKER_COUNT"])
    if env.get("WORKER_TIMEOUT", "").strip():
        values["worker_timeout_s"] = _worker_timeout(env["WORKER_TIMEOUT"].strip())
    if env.get("MODELSTORE_READ_TIMEOUT") and "read_timeout_s" not in given:
        values["read_timeout_s"] = _read_timeout(env["MODELSTORE_READ_TIMEOUT"])
    return values


def _worker_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidArgumentError(
            f"WORKER_COUNT={text!r} is not a whole number of worker processes (1 or more); "
            "set it to e.g. WORKER_COUNT=2 or unset it"
        )
    return value


def _worker_timeout(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise InvalidArgumentError(
            f"WORKER_TIMEOUT={text!r} is not a positive whole number of seconds; "
            f"set it to e.g. WORKER_TIMEOUT={DEFAULT_WORKER_TIMEOUT_S} or unset it"
        )
    return int(text)


def _read_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise InvalidArgumentError(
            f"MODELSTORE_READ_TIMEOUT={text!r} is not a number of seconds above 0; "
            "set it to e.g. MODELSTORE_READ_TIMEOUT=5 or unset it"
        )
    return value


def find_config_file(environ: Mapping[str, str], app_root: Path, entry_script: Path) -> Path | None:
    """The first non-empty of ``$AZUREML_CONFIG_FILE``, ``<app root>/config.json`` and
    ``config.json`` beside the entry script, as azmlinfsrv looks them up."""
    candidates: list[Path] = []
    if environ.get("AZUREML_CONFIG_FILE"):
        candidates.append(Path(environ["AZUREML_CONFIG_FILE"]))
    candidates.append(app_root / "config.json")
    candidates.append(entry_script.parent / "config.json")
    for candidate in candidates:
        if candidate.is_file() and candidate.stat().st_size > 0:
            return candidate
    return None


def config_file_values(
    environ: Mapping[str, str], app_root: Path, entry_script: Path
) -> dict[str, Any]:
    """Settings named in the ``config.json`` in force (lowest precedence); other keys ignored.

    A file that is not a JSON object stops the start-up (exit 3), as azmlinfsrv's
    ``Invalid config file!``. Only keys that are really unsupported are warned about.
    """
    path = find_config_file(environ, app_root, entry_script)
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except (OSError, ValueError) as exc:
        raise EntryScriptError(
            f"Invalid config file! {path} cannot be read as JSON ({exc}); fix or remove it"
        ) from None
    if not isinstance(content, dict):
        raise EntryScriptError(
            f"Invalid config file! {path} must hold a JSON object of settings; fix or remove it"
        )
    logger.info("Loaded config file %s", path)
    extra = sorted(set(content) - set(CONFIG_FILE_KEYS) - IGNORED_CONFIG_KEYS)
    if extra:
        logger.warning(
            "Found extra keys in the config file that are not supported by the server. "
            "Extra keys = %s",
            extra,
        )
    values: dict[str, Any] = {}
    for key, field in CONFIG_FILE_KEYS.items():
        if content.get(key) is not None:
            values[field] = _config_value(path, key, content[key])
    return values


def _config_value(path: Path, key: str, raw: Any) -> Any:
    """One ``config.json`` value, refused with the file named: the user would otherwise look
    for a bad environment variable or option that does not exist."""
    if key == "SCORING_TIMEOUT_MS":
        text = str(raw).strip()
        if not isinstance(raw, bool) and text.isdigit() and int(text) > 0:
            return int(text)
        complaint = "is not a positive whole number of milliseconds"
    elif isinstance(raw, str):
        return raw
    else:
        complaint = "is not a string"
    raise InvalidArgumentError(
        f"config file {path}: {key}={raw!r} {complaint}; fix the value in that file or remove "
        "the key"
    )


def _positive_int(variable: str, text: str, unit: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value <= 0:
        raise InvalidArgumentError(
            f"{variable}={text!r} is not a positive whole number of {unit}; "
            f"set it to e.g. {variable}=60000 or unset it"
        )
    return value
