"""``GET /swagger.json``: documents built once per app, from inference-schema or the user's files.

The generated documents follow azmlinfsrv's templates key for key (clients diff them), with the
``ServiceInput``/``ServiceOutput`` schemas taken from inference-schema itself so they are
byte-identical to Azure's. User files ``swagger.json``/``swagger2.json``/``swagger3.json``/
``swagger3.1.json`` in the app root replace the generated document of their version.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelstore.errors import EntryScriptError
from modelstore.serving.loader import EntryScript, is_schema_decorated, schema_util
from modelstore.serving.logs import SWAGGER_LOGGER
from modelstore.serving.settings import ServingSettings

logger = logging.getLogger(SWAGGER_LOGGER)

ALL_SCHEMA_VERSIONS = ["2.0", "3.0", "3.1"]
"""inference-schema's versions for a function without decorators."""

VERSION_ALIASES: dict[str, tuple[str, ...]] = {
    "2": ("2", "2.0"),
    "3": ("3", "3.0"),
    "3.1": ("3.1",),
}
USER_FILES: dict[str, tuple[str, ...]] = {
    "2": ("swagger.json", "swagger2.json"),
    "3": ("swagger3.json",),
    "3.1": ("swagger3.1.json",),
}
DEFAULT_VERSION = "2"
UNDECORATED_SCHEMA: dict[str, Any] = {"type": "object", "example": {}}
ERROR_DESCRIPTION = "The service failed to execute due to an error."


class SwaggerNotFound(Exception):
    """The requested version is invalid or not available for this script (a 404)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _ref(version: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/definitions/{name}" if version == "2" else f"#/components/schemas/{name}"}


def _error_response(version: str) -> dict[str, Any]:
    if version == "2":
        return {"description": ERROR_DESCRIPTION, "schema": _ref(version, "ErrorResponse")}
    return {
        "description": ERROR_DESCRIPTION,
        "content": {"application/json": {"schema": _ref(version, "ErrorResponse")}},
    }


def _health_path(version: str) -> dict[str, Any]:
    ok_text = (
        "If service is up and running, this response will be returned with the content 'Healthy'"
    )
    if version == "2":
        ok: dict[str, Any] = {
            "description": ok_text,
            "schema": {"type": "string"},
            "examples": {"application/json": "Healthy"},
        }
    else:
        ok = {
            "description": ok_text,
            "content": {"text/plain": {"schema": {"type": "string", "example": "Healthy"}}},
        }
    return {
        "get": {
            "operationId": "ServiceHealthCheck",
            "description": "Simple health check endpoint to ensure the service is up at "
            "any given point.",
            "responses": {"200": ok, "default": _error_response(version)},
        }
    }


def _score_path(version: str) -> dict[str, Any]:
    payload = "The input payload for executing the real-time machine learning service."
    ok_text = (
        "The service processed the input correctly and provided a result prediction, if applicable."
    )
    operation: dict[str, Any] = {
        "operationId": "RunMLService",
        "description": "Run web service's model and get the prediction output",
        "security": [{"Bearer": []}],
    }
    if version == "2":
        operation["parameters"] = [
            {
                "name": "serviceInputPayload",
                "in": "body",
                "description": payload,
                "schema": _ref(version, "ServiceInput"),
            }
        ]
        ok: dict[str, Any] = {"description": ok_text, "schema": _ref(version, "ServiceOutput")}
    else:
        operation["requestBody"] = {
            "description": payload,
            "content": {"application/json": {"schema": _ref(version, "ServiceInput")}},
        }
        ok = {
            "description": ok_text,
            "content": {"application/json": {"schema": _ref(version, "ServiceOutput")}},
        }
    operation["responses"] = {"200": ok, "default": _error_response(version)}
    return {"post": operation}


def _swagger_path(version: str) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": "version", "in": "query", "required": False}
    enum = {"type": "integer", "enum": [2, 3]}
    if version == "2":
        parameter.update(enum)
        ok: dict[str, Any] = {
            "description": "The Swagger specification.",
            "schema": {"type": "string"},
        }
    else:
        parameter["schema"] = enum
        ok = {
            "description": "The Swagger specification.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    return {
        "get": {
            "operationId": "GetSwaggerSpec",
            "description": "Get the Swagger specification.",
            "parameters": [parameter],
            "responses": {"200": ok, "default": _error_response(version)},
        }
    }


def _schemas(input_schema: Any, output_schema: Any) -> dict[str, Any]:
    return {
        "ServiceInput": input_schema,
        "ServiceOutput": output_schema,
        "ErrorResponse": {"type": "object", "properties": {"message": {"type": "string"}}},
    }


def build_document(
    version: str, settings: ServingSettings, input_schema: Any, output_schema: Any
) -> dict[str, Any]:
    """azmlinfsrv's swagger document for ``version`` ("2", "3" or "3.1")."""
    name = settings.service_name
    prefix = f"/{settings.service_path_prefix.strip('/')}" if settings.service_path_prefix else ""
    info = {
        "title": name,
        "description": f"API specification for the Azure Machine Learning service {name}",
        "version": settings.service_version,
    }
    bearer = {
        "type": "apiKey",
        "name": "Authorization",
        "in": "header",
        "description": "For example: Bearer abc123",
    }
    paths = {
        f"{prefix}/": _health_path(version),
        f"{prefix}/score": _score_path(version),
        f"{prefix}/swagger.json": _swagger_path(version),
    }
    schemas = _schemas(input_schema, output_schema)
    if version == "2":
        return {
            "swagger": "2.0",
            "info": info,
            "schemes": ["https"],
            "consumes": ["application/json"],
            "produces": ["application/json"],
            "securityDefinitions": {"Bearer": bearer},
            "paths": paths,
            "definitions": schemas,
        }
    return {
        "openapi": "3.1.0" if version == "3.1" else "3.0.3",
        "info": info,
        "security": [{"Bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"Bearer": bearer}},
    }


def _read_user_file(path: Path, version: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EntryScriptError(
            f"swagger file {path} cannot be used ({exc}); fix its JSON or remove it"
        ) from None
    logger.info("Loaded user's swagger file for version [%s] from %s", version, path)
    return document


@dataclass(frozen=True)
class SwaggerDocuments:
    """The documents of one app by version alias, and the versions the script supports."""

    documents: dict[str, Any]
    supported: tuple[str, ...]

    @classmethod
    def build(
        cls, script: EntryScript, settings: ServingSettings, app_root: Path
    ) -> SwaggerDocuments:
        """Build every version once, at start-up (azmlinfsrv does it once per worker)."""
        util = schema_util()
        decorated = is_schema_decorated(script.run)
        script_versions = (
            util.get_supported_versions(script.run) if decorated and util else ALL_SCHEMA_VERSIONS
        )
        if decorated and util is not None:
            input_schema = copy.deepcopy(util.get_input_schema(script.run))
            output_schema = copy.deepcopy(util.get_output_schema(script.run))
        else:
            input_schema = output_schema = UNDECORATED_SCHEMA
        documents: dict[str, Any] = {}
        supported: list[str] = []
        skipped: list[str] = []
        for version, aliases in VERSION_ALIASES.items():
            document = None
            for filename in USER_FILES[version]:
                document = _read_user_file(app_root / filename, version)
                if document:
                    break
            if not document and any(alias in script_versions for alias in aliases):
                document = build_document(version, settings, input_schema, output_schema)
            if document:
                documents.update(dict.fromkeys(aliases, document))
                supported.append(version)
            else:
                skipped.append(version)
        if supported and skipped:
            logger.info(
                "Swaggers are prepared for versions [%s] and skipped for versions [%s].",
                ", ".join(supported),
                ", ".join(skipped),
            )
        elif supported:
            logger.info(
                "Swaggers are prepared for the following versions: [%s].", ", ".join(supported)
            )
        else:
            logger.info("No swagger is prepared.")
        return cls(documents=documents, supported=tuple(sorted(supported)))

    def get(self, version: str) -> Any:
        """The document for a ``?version=`` value, else :class:`SwaggerNotFound` (a 404)."""
        listed = ", ".join(self.supported)
        if not any(version in aliases for aliases in VERSION_ALIASES.values()):
            raise SwaggerNotFound(
                f"Swagger version [{version}] is not valid. Supported versions: [{listed}]."
            )
        document = self.documents.get(version)
        if not document:
            raise SwaggerNotFound(
                f"Swagger version [{version}] is not supported for the scoring script. "
                f"Supported swagger versions: [{listed}]."
            )
        return document
