"""``GET /docs``: the server's own ``/swagger.json`` in Swagger UI, to try ``/score`` in a browser.

azmlinfsrv has no such page (README, "Differences from Azure ML"); ``--no-docs`` leaves it out.
The Swagger UI files come from the ``flask-swagger-ui`` package (the ``ui`` extra), served from
where pip installed them, so the page works offline and no file is copied into this repository.
Without the extra, ``/docs`` answers one line saying how to install it.
Behind a v2 endpoint (``modelstore serve -f endpoint.yml -f blue.yml ...``) the page also shows
a deployment picker and, with ``--auth``, a key field (see ``ENDPOINT_DOCS_PATH``).
For a ``@rawhttp`` script the ``/score`` operation also has a "Send a file" form (see
``SCRIPT_DOCS_PATH``), added by a Swagger UI plugin in the page's own script.
"""

from __future__ import annotations

import json
from pathlib import Path

import flask
from markupsafe import escape
from werkzeug.exceptions import NotFound

from modelstore.serving.loader import InputMode
from modelstore.serving.swagger import SwaggerDocuments

DOCS_PATH = "/docs"
ENDPOINT_DOCS_PATH = f"{DOCS_PATH}/endpoint.json"
"""Answered by a v2 endpoint's router only (``modelstore.v2.endpoint.Router``): the deployment
names the page offers in its picker, and whether a key is needed. The page sends the picked
name as ``azureml-model-deployment`` and the typed key as ``Authorization: Bearer``, on the
``/swagger.json`` fetch and on every "Try it out" request; no key is ever written into the page."""
SCRIPT_DOCS_PATH = f"{DOCS_PATH}/script.json"
"""modelstore's own: ``{"input_mode": "raw request"}`` (or ``"object"``, ``"JSON string"``).
The page offers "Send a file" only for a ``@rawhttp`` script, whose ``/swagger.json`` (kept
as azmlinfsrv writes it) describes a JSON body all the same. Not under ``/docs/assets/``, so
behind a v2 endpoint it needs the key and goes to the picked deployment, like ``/score``."""
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")
PAGE_SCRIPT = "modelstore-docs.js"
"""The page's own code, shipped in ``modelstore/serving/static``: no CDN, no build step."""
STATIC = Path(__file__).parent / "static"
MISSING_ASSETS = (
    "Error: /docs needs the Swagger UI files; install them with: pip install 'modelstore[ui]'"
)
VERSION_LABELS = {"3": "OpenAPI 3.0", "3.1": "OpenAPI 3.1", "2": "Swagger 2.0"}
"""The documents offered in the page's picker, the first supported one shown first: Swagger UI
sends requests to the page's own server for an OpenAPI 3 document without ``servers``, while
azmlinfsrv's Swagger 2 document says ``schemes: [https]`` (the page rewrites that, below)."""


def swagger_ui_dist() -> Path | None:
    """The folder of the installed Swagger UI files, or None when the ``ui`` extra is missing."""
    try:
        import flask_swagger_ui
    except ImportError:
        return None
    folder = Path(flask_swagger_ui.__file__).parent / "dist"
    return folder if all((folder / name).is_file() for name in ASSETS) else None


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - modelstore</title>
<link rel="stylesheet" href="{css}">
</head>
<body>
<div id="endpoint" hidden style="font-family: sans-serif; padding: 8px 20px">
<label>Deployment <select id="deployment"><option value="">by traffic</option></select></label>
<label id="key-field" hidden>Key <input id="key" type="password" autocomplete="off"
  placeholder="modelstore serve --auth prints it"></label>
</div>
<div id="swagger-ui"></div>
<script id="docs-config" type="application/json">{config}</script>
<script src="{bundle}"></script>
<script src="{preset}"></script>
<script src="{page_script}"></script>
</body>
</html>
"""
"""No inline script (the page's code is ``static/modelstore-docs.js``): the config is a JSON
data block, which a browser never runs, so the page keeps to ``POLICY``."""
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"
)
"""The page's Content-Security-Policy: it loads and calls nothing but its own server, so an
injected script (a hostile title, say) could neither run inline nor send anything elsewhere.
Swagger UI sets element styles and draws its icons as ``data:`` images; a ``@rawhttp`` image
answer is shown from a ``blob:`` URL."""


def _script_json(value: object) -> str:
    """JSON safe inside ``<script>``: a title holding ``</script>`` cannot end the element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def register_docs(
    app: flask.Flask, swagger: SwaggerDocuments, title: str, input_mode: InputMode
) -> None:
    """Add ``GET /docs``, its asset route and ``SCRIPT_DOCS_PATH`` to ``app``."""
    blueprint = flask.Blueprint("docs", __name__)
    versions = [version for version in VERSION_LABELS if version in swagger.supported]

    def page() -> flask.Response:
        if swagger_ui_dist() is None:
            return flask.Response(MISSING_ASSETS + "\n", 501, mimetype="text/plain")
        swagger_url = flask.url_for("main.swagger")
        config = {
            "urls": [
                {"name": VERSION_LABELS[version], "url": f"{swagger_url}?version={version}"}
                for version in versions
            ]
            or [{"name": "swagger.json", "url": swagger_url}],
            "endpoint": flask.request.script_root + ENDPOINT_DOCS_PATH,
            "script": flask.url_for("docs.script"),
            "score": flask.url_for("main.score"),
        }

        def asset(name: str) -> str:
            return flask.url_for("docs.asset", name=name)

        html = _PAGE.format(
            title=escape(title),
            css=asset("swagger-ui.css"),
            bundle=asset("swagger-ui-bundle.js"),
            preset=asset("swagger-ui-standalone-preset.js"),
            page_script=asset(PAGE_SCRIPT),
            config=_script_json(config),
        )
        response = flask.Response(html, 200, mimetype="text/html")
        response.headers["Content-Security-Policy"] = POLICY
        return response

    def asset(name: str) -> flask.Response:
        if name == PAGE_SCRIPT:
            return flask.send_from_directory(STATIC, name, max_age=0)
        folder = swagger_ui_dist()
        if folder is None or name not in ASSETS:
            raise NotFound()
        return flask.send_from_directory(folder, name, max_age=3600)

    def script() -> flask.Response:
        return flask.jsonify({"input_mode": input_mode.value})

    blueprint.add_url_rule(DOCS_PATH, "page", page, methods=["GET"])
    blueprint.add_url_rule(SCRIPT_DOCS_PATH, "script", script, methods=["GET"])
    blueprint.add_url_rule(f"{DOCS_PATH}/assets/<name>", "asset", asset, methods=["GET"])
    app.register_blueprint(blueprint)
