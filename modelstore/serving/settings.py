"""What one scoring app needs to know, gathered from azmlinfsrv's environment variables.

The CLI (``modelstore serve``/``score``) and the pytest plugin both build a
:class:`ServingSettings`; keeping the environment parsing here means every entry point reads
``SCORING_TIMEOUT_MS`` & co. the same way, and a malformed value is reported once, clearly.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelstore.errors import EntryScriptError, InvalidArgumentError

DEFAULT_SCORING_TIMEOUT_MS = 3_600_000
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
    """Settings of one scoring app; every field mirrors an azmlinfsrv option or a documented fix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entry_script: Path
    app_root: Path | None = None
    """``None``: ``$AML_APP_ROOT`` if set, else the current directory (azmlinfsrv's CLI default)."""
    source_directory: str | None = None
    cors_origins: list[str] = Field(default_factory=list)
    scoring_timeout_ms: int = Field(default=DEFAULT_SCORING_TIMEOUT_MS, gt=0)
    request_timeout_ms: int | None = Field(default=None, gt=0)
    """A v2 deployment's ``request_settings.request_timeout_ms``: the endpoint's front end, not
    the container, answers 408 once a request has taken this long (``frontend_timeout``)."""
    max_body_bytes: int | None = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    service_name: str = "ML service"
    service_version: str = "1.0"
    service_path_prefix: str = ""
    server_version_header: bool = True
    numpy_json: bool = False
    validation_400: bool = False
    split_header_values: bool = True

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins_from_text(cls, value: Any) -> Any:
        return split_origins(value) if isinstance(value, str) else value

    def frontend_timeout(self) -> bool:
        """Whether the v2 front end's limit comes before the container's own."""
        return self.request_timeout_ms is not None and (
            self.request_timeout_ms < self.scoring_timeout_ms
        )

    def resolved_app_root(self) -> Path:
        """The app root in force: azmlinfsrv's CLI uses the launch directory when unset."""
        if self.app_root is not None:
            return Path(os.path.abspath(self.app_root))
        from_env = os.environ.get("AML_APP_ROOT")
        return Path(os.path.abspath(from_env or os.getcwd()))

    def resolved_entry_script(self) -> Path:
        """The script path joined onto the app root, as azmlinfsrv does (an absolute path wins)."""
        return Path(os.path.join(self.resolved_app_root(), self.entry_script))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], **overrides: Any) -> ServingSettings:
        """Settings from ``config.json``, then azmlinfsrv's variables, then ``overrides`` (the
        CLI flags) on top: azmlinfsrv's precedence.

        A malformed value raises :class:`InvalidArgumentError` naming the variable and the fix,
        so ``modelstore serve`` fails with one line instead of a pydantic report.
        """
        values: dict[str, Any] = config_file_values(environ, overrides)
        if environ.get("AML_APP_ROOT"):
            values["app_root"] = Path(environ["AML_APP_ROOT"])
        if environ.get("AZUREML_SOURCE_DIRECTORY"):
            values["source_directory"] = environ["AZUREML_SOURCE_DIRECTORY"]
        if environ.get("AML_CORS_ORIGINS"):
            values["cors_origins"] = split_origins(environ["AML_CORS_ORIGINS"])
        if "SCORING_TIMEOUT_MS" in environ:
            values["scoring_timeout_ms"] = _positive_int(
                "SCORING_TIMEOUT_MS", environ["SCORING_TIMEOUT_MS"], "milliseconds"
            )
        for variable, field in (
            ("SERVICE_NAME", "service_name"),
            ("SERVICE_VERSION", "service_version"),
            ("SERVICE_PATH_PREFIX", "service_path_prefix"),
        ):
            if variable in environ:
                values[field] = environ[variable]
        if "SERVER_VERSION_LOG_RESPONSE_ENABLED" in environ:
            flag = environ["SERVER_VERSION_LOG_RESPONSE_ENABLED"].strip().lower()
            values["server_version_header"] = flag == "true"
        values.update(overrides)
        try:
            return cls(**values)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            raise InvalidArgumentError(
                f"invalid serving setting {where}={error.get('input')!r}: {error['msg']}; "
                "fix the option or environment variable and start again"
            ) from None


def find_config_file(environ: Mapping[str, str], overrides: Mapping[str, Any]) -> Path | None:
    """The first non-empty of ``$AZUREML_CONFIG_FILE``, ``<app root>/config.json`` and
    ``config.json`` beside the entry script, as azmlinfsrv looks them up."""
    candidates: list[Path] = []
    if environ.get("AZUREML_CONFIG_FILE"):
        candidates.append(Path(environ["AZUREML_CONFIG_FILE"]))
    app_root = overrides.get("app_root") or environ.get("AML_APP_ROOT") or os.getcwd()
    candidates.append(Path(app_root) / "config.json")
    entry_script = overrides.get("entry_script")
    if entry_script is not None:
        script = Path(os.path.join(os.path.abspath(app_root), entry_script))
        candidates.append(script.parent / "config.json")
    for candidate in candidates:
        if candidate.is_file() and candidate.stat().st_size > 0:
            return candidate
    return None


def config_file_values(environ: Mapping[str, str], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Settings named in the ``config.json`` in force (lowest precedence); other keys ignored.

    A file that is not a JSON object stops the start-up (exit 3), as azmlinfsrv's
    ``Invalid config file!``. Only keys that are really unsupported are warned about.
    """
    path = find_config_file(environ, overrides)
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
