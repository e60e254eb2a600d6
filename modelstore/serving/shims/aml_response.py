"""Stand-in for ``azureml.contrib.services.aml_response.AMLResponse``, reproduced exactly.

The faithful behaviour splits every header value on commas and adds each part as its own header
line, and duplicates Content-Type unless the key is spelled exactly ``"Content-Type"``. Scripts see
those effects in Azure, so they are the default. An app created with
``split_header_values=False`` opts into the fixed behaviour: values are kept whole and
Content-Type is replaced, never duplicated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, has_app_context

SPLIT_HEADER_VALUES_CONFIG = "MODELSTORE_SPLIT_HEADER_VALUES"
"""Flask config key the app sets from ``ServingSettings.split_header_values``."""


def _split_header_values() -> bool:
    if has_app_context():
        return bool(current_app.config.get(SPLIT_HEADER_VALUES_CONFIG, True))
    return True


class AMLResponse(Response):
    """A Flask response built the way azureml-contrib-services builds it."""

    def __init__(
        self,
        message: Any,
        status_code: int,
        response_headers: Mapping[str, Any] | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        headers: Mapping[str, Any] = {} if response_headers is None else response_headers
        split = _split_header_values()
        if message is None:
            super().__init__(json.dumps({}), status=status_code, mimetype="application/json")
        elif json_str:
            super().__init__(json.dumps(message), status=status_code, mimetype="application/json")
        else:
            super().__init__(message, status=status_code)
            if "Content-Type" in headers:
                self.headers.remove("Content-Type")
        self.headers["x-ms-run-function-failed"] = str(run_function_failed)
        for name, value in headers.items():
            if split:
                for part in value.split(","):
                    self.headers.add_header(name, part.strip())
            elif name.lower() == "content-type":
                self.headers.set(name, value)
            else:
                self.headers.add_header(name, value)
