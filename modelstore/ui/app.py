"""The registry pages' Flask app.

Each request opens the registry read-only and closes it before answering: the pages never
write, never hold the catalog open between requests, and always show what is registered now.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import flask
from werkzeug.exceptions import NotFound

from modelstore.cli.registry_commands import human_size
from modelstore.errors import ModelNotFoundError, ModelstoreError, UsageError
from modelstore.layout import MODEL_DIR_ENV, MODELS_DIRNAME
from modelstore.modelversion import ModelVersion
from modelstore.registry import Registry

EXTENSION_KEY = "modelstore.ui"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""The pages load only their own files and run no inline script: should a registered text ever
slip past the templates' escaping, the browser still refuses to run it."""
LOOPBACK_HOST_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
"""The ``Host`` names a loopback-bound server answers: a page elsewhere that rebinds its own
name to 127.0.0.1 sends its name, and gets a 403 instead of the registry."""
APP_ROOT_EXAMPLE = "./app"
"""The ``--app-root`` the version page's deploy command names (the user picks their own)."""


def parse_tag_filter(text: str) -> list[str | list[str]]:
    """``key`` (present) or ``key=value`` (equal), as ``modelstore list --tag`` takes them."""
    key, sep, value = text.partition("=")
    return [[key.strip(), value.strip()]] if sep else [key.strip()]


@contextmanager
def _registry() -> Iterator[Registry]:
    home: Path | None = flask.current_app.extensions[EXTENSION_KEY]
    registry = Registry(home=home, read_only=True, create=False)
    try:
        yield registry
    finally:
        registry.close()


def _index() -> str:
    name = flask.request.args.get("name", "").strip()
    tag = flask.request.args.get("tag", "").strip()
    error = None
    versions: list[ModelVersion] = []
    aliases: dict[tuple[str, int], list[str]] = {}
    with _registry() as registry:
        try:
            versions = registry.list(tags=parse_tag_filter(tag) if tag else None)
        except UsageError as exc:
            error = str(exc)
        if name:
            needle = name.lower()
            versions = [v for v in versions if needle in v.name.lower()]
        for alias in registry.aliases():
            aliases.setdefault((alias.name, alias.version), []).append(alias.alias)
        home = str(registry.home)
    groups: dict[str, list[ModelVersion]] = {}
    for version in versions:
        groups.setdefault(version.name, []).append(version)
    return flask.render_template(
        "index.html",
        groups=groups,
        aliases=aliases,
        name=name,
        tag=tag,
        error=error,
        home=home,
        human_size=human_size,
    )


def _version(name: str, version: int) -> str:
    with _registry() as registry:
        try:
            model = registry.get(name, version)
            files = registry.files(name, version)
        except (ModelNotFoundError, UsageError) as exc:
            raise NotFound(str(exc)) from None
        aliases = [a.alias for a in registry.aliases(name) if a.version == version]
    ref = shlex.quote(model.id)
    model_dir = f"{APP_ROOT_EXAMPLE}/{MODELS_DIRNAME}/{model.name}/{model.version}"
    commands = {
        "Deploy it into an app root": f"modelstore deploy {ref} --app-root {APP_ROOT_EXAMPLE}",
        "Serve score.py with it": f"modelstore serve --entry-script score.py --model {ref}",
        "Print where it is stored": f"modelstore path {ref}",
    }
    return flask.render_template(
        "version.html",
        model=model,
        files=files,
        aliases=aliases,
        model_dir_env=MODEL_DIR_ENV,
        model_dir=model_dir,
        commands=commands,
        human_size=human_size,
    )


def _registry_error(error: ModelstoreError) -> tuple[str, int]:
    return flask.render_template("error.html", message=str(error)), 500


def _not_found(error: NotFound) -> tuple[str, int]:
    return flask.render_template("error.html", message=error.description), 404


def _host_name(host: str) -> str:
    """``name`` of a ``Host`` header ``name[:port]`` (an IPv6 address keeps its brackets)."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0].lower()


def _loopback_hosts_only() -> tuple[str, int] | None:
    if _host_name(flask.request.host) in LOOPBACK_HOST_NAMES:
        return None
    message = (
        f"these pages answer only requests for localhost or 127.0.0.1, not "
        f"{flask.request.host!r}; open http://127.0.0.1:<port>/ (modelstore ui --host "
        "<address> serves other names)"
    )
    return flask.render_template("error.html", message=message), 403


def _security_headers(response: flask.Response) -> flask.Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"  # always what is registered now
    return response


def create_ui_app(
    home: str | os.PathLike[str] | None = None, *, loopback_only: bool = True
) -> flask.Flask:
    """The registry pages for the registry at ``home`` (``None``: ``$MODELSTORE_HOME``, else
    the per-user default, as every command resolves it). ``loopback_only``: answer only
    requests naming localhost or 127.0.0.1 (a guard against DNS rebinding), for a server bound
    to a loopback address."""
    app = flask.Flask(__name__)
    if loopback_only:
        app.before_request(_loopback_hosts_only)
    app.extensions[EXTENSION_KEY] = None if home is None else Path(home)
    app.add_url_rule("/", "index", _index, methods=["GET"])
    app.add_url_rule("/models/<name>/<int:version>", "version", _version, methods=["GET"])
    app.after_request(_security_headers)
    app.register_error_handler(ModelstoreError, _registry_error)
    app.register_error_handler(NotFound, _not_found)
    return app
