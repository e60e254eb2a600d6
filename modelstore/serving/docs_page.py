"""``GET /docs``: the server's own ``/swagger.json`` in Swagger UI, to try ``/score`` in a browser.

azmlinfsrv has no such page (README, "Differences from Azure ML"); ``--no-docs`` leaves it out.
The Swagger UI files come from the ``flask-swagger-ui`` package (the ``ui`` extra), served from
where pip installed them, so the page works offline and no file is copied into this repository.
Without the extra, ``/docs`` answers one line saying how to install it.
Behind a v2 endpoint (``modelstore serve -f endpoint.yml -f blue.yml ...``) the page also shows
a deployment picker and, with ``--auth``, a key field (see ``ENDPOINT_DOCS_PATH``).
"""

from __future__ import annotations

import json
from pathlib import Path

import flask
from markupsafe import escape
from werkzeug.exceptions import NotFound

from modelstore.serving.swagger import SwaggerDocuments

DOCS_PATH = "/docs"
ENDPOINT_DOCS_PATH = f"{DOCS_PATH}/endpoint.json"
"""Answered by a v2 endpoint's router only (``modelstore.v2.endpoint.Router``): the deployment
names the page offers in its picker, and whether a key is needed. The page sends the picked
name as ``azureml-model-deployment`` and the typed key as ``Authorization: Bearer``, on the
``/swagger.json`` fetch and on every "Try it out" request; no key is ever written into the page."""
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")
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
<script src="{bundle}"></script>
<script src="{preset}"></script>
<script>
const config = {config};
const picker = document.getElementById("deployment");
const key = document.getElementById("key");
function build() {{
  window.ui = SwaggerUIBundle({{
    urls: config.urls,
    "urls.primaryName": config.urls[0].name,
    dom_id: "#swagger-ui",
    deepLinking: true,
    tryItOutEnabled: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
    requestInterceptor: (request) => {{
      // azmlinfsrv's Swagger 2 document says https; this server is the page's own origin.
      const https = "https://" + window.location.host + "/";
      if (window.location.protocol === "http:" && request.url.startsWith(https)) {{
        request.url = window.location.origin + "/" + request.url.slice(https.length);
      }}
      // Behind a v2 endpoint's router: the picked deployment and the key the user typed.
      request.headers = request.headers || {{}};
      if (picker.value) request.headers["azureml-model-deployment"] = picker.value;
      if (key.value) request.headers["Authorization"] = "Bearer " + key.value;
      return request;
    }},
  }});
}}
// Only a v2 endpoint's router answers this; a single server's 404 leaves the picker hidden.
fetch(config.endpoint).then((answer) => answer.ok ? answer.json() : null).then((endpoint) => {{
  if (endpoint && Array.isArray(endpoint.deployments)) {{
    for (const name of endpoint.deployments) picker.add(new Option(name, name));
    document.getElementById("key-field").hidden = !endpoint.auth;
    document.getElementById("endpoint").hidden = false;
  }}
}}).catch(() => null).finally(build);
picker.addEventListener("change", build);
key.addEventListener("change", build);
</script>
</body>
</html>
"""


def _script_json(value: object) -> str:
    """JSON safe inside ``<script>``: a title holding ``</script>`` cannot end the element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def register_docs(app: flask.Flask, swagger: SwaggerDocuments, title: str) -> None:
    """Add ``GET /docs`` and its asset route to ``app``."""
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
        }

        def asset(name: str) -> str:
            return flask.url_for("docs.asset", name=name)

        html = _PAGE.format(
            title=escape(title),
            css=asset("swagger-ui.css"),
            bundle=asset("swagger-ui-bundle.js"),
            preset=asset("swagger-ui-standalone-preset.js"),
            config=_script_json(config),
        )
        return flask.Response(html, 200, mimetype="text/html")

    def asset(name: str) -> flask.Response:
        folder = swagger_ui_dist()
        if folder is None or name not in ASSETS:
            raise NotFound()
        return flask.send_from_directory(folder, name, max_age=3600)

    blueprint.add_url_rule(DOCS_PATH, "page", page, methods=["GET"])
    blueprint.add_url_rule(f"{DOCS_PATH}/assets/<name>", "asset", asset, methods=["GET"])
    app.register_blueprint(blueprint)
