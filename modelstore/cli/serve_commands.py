"""``modelstore serve`` (a local Azure ML inference server) and ``modelstore score`` (one request
through the same app, without a server).

Both accept azmlinfsrv's spellings (``--entry_script``, ``--model_dir``, ``--worker_count``,
``--access_control_allow_origins``) and environment variables, so a command line or CI job
written for azmlinfsrv keeps working. Only this module touches the registry: ``--model REF``
deploys registry models into a temporary app root, and the serving package only ever sees the
resulting ``AML_APP_ROOT``/``AZUREML_MODEL_DIR``, as a script in Azure does.

Flask, gunicorn and the registry are imported inside the commands so ``modelstore --help``
stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from modelstore.cli import OneLineErrorCommand, state
from modelstore.cli.completion_commands import complete_ref_or_path
from modelstore.errors import InvalidArgumentError, ModelstoreError, UsageError

if TYPE_CHECKING:
    from flask import Flask

    from modelstore.deployment import Deployment
    from modelstore.serving.server import BoundListener
    from modelstore.serving.settings import ServingSettings
    from modelstore.v2.local import LocalDeployment
    from modelstore.v2.probes import ProbeTiming

F = TypeVar("F", bound=Callable[..., Any])

# --- options shared by serve and score ----------------------------------------------------------


def app_options(function: F) -> F:
    """The options that decide what the app runs: the script, its models, the opt-in fixes."""
    decorators = [
        click.option(
            "--entry-script",
            "--entry_script",
            "entry_script",
            type=click.Path(path_type=Path),
            help="The score.py to run (with init() and run()); required unless -f is given.",
        ),
        click.option(
            "--model",
            "models",
            multiple=True,
            metavar="REF|PATH",
            shell_complete=complete_ref_or_path,
            help="Deploy this registry model (NAME, NAME:VERSION, NAME@ALIAS), or a local "
            "file or folder (as version 0), into a temporary app root; repeatable.",
        ),
        click.option(
            "--model-dir",
            "--model_dir",
            "model_dir",
            metavar="DIR",
            help="Set AZUREML_MODEL_DIR to DIR, as given (like azmlinfsrv).",
        ),
        click.option(
            "--cors-origins",
            "--access_control_allow_origins",
            "cors_origins",
            metavar='"A, B"',
            help="Origins allowed by CORS, comma-separated ('*' echoes any) "
            "[default: $AML_CORS_ORIGINS].",
        ),
        click.option(
            "--scoring-timeout-ms",
            type=click.IntRange(min=1),
            metavar="MS",
            help="Time limit of one run() call [default: $SCORING_TIMEOUT_MS, else 3600000].",
        ),
        click.option(
            "--max-body",
            "max_body_mib",
            type=click.IntRange(min=1),
            metavar="MB",
            help="Refuse request bodies above this many MiB with a 413 [default: 100].",
        ),
        click.option(
            "--numpy-json",
            is_flag=True,
            help="Opt-in: serialise numpy/pandas return values instead of answering 500.",
        ),
        click.option(
            "--validation-400",
            is_flag=True,
            help="Opt-in: answer inference-schema validation errors with 400 and the message.",
        ),
        click.option(
            "--no-header-split",
            is_flag=True,
            help="Opt-in: send AMLResponse header values as given (Azure splits them at commas).",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def check_model_options(models: Sequence[str], model_dir: str | None) -> list[str]:
    """Refuse contradictory model options before anything is opened or written."""
    if models and model_dir is not None:
        raise UsageError(
            "--model and --model-dir are two ways to give the script its models: use one of them"
        )
    return list(models)


def v2_options(long_names: Sequence[str]) -> Callable[[F], F]:
    """``-f DEPLOYMENT.yml`` (an Azure ML v2 deployment instead of --entry-script/--model) and
    ``--check-env``."""

    def decorate(function: F) -> F:
        function = click.option(
            "--check-env",
            is_flag=True,
            help="With -f: refuse to start when packages of the deployment's conda file are "
            "missing here or at another version (else a warning).",
        )(function)
        return click.option(
            "-f",
            *long_names,
            "deployment_files",
            multiple=True,
            metavar="DEPLOYMENT.yml",
            type=click.Path(path_type=Path),
            help="Serve this Azure ML v2 online deployment YAML as the cloud lays it out "
            "(model, code, environment), instead of --entry-script/--model.",
        )(function)

    return decorate


def check_entry_options(
    entry_script: Path | None,
    models: Sequence[str],
    model_dir: str | None,
    deployment_files: Sequence[Path],
) -> None:
    """-f names the script and its model; --entry-script is required without it."""
    if deployment_files:
        given = [
            option
            for option, value in (
                ("--entry-script", entry_script),
                ("--model", models),
                ("--model-dir", model_dir),
            )
            if value
        ]
        if given:
            raise UsageError(
                f"-f DEPLOYMENT.yml names the script and its model, so {', '.join(given)} "
                "cannot be given with it; use one or the other"
            )
    elif entry_script is None:
        raise UsageError(
            "Missing option '--entry-script' (or -f DEPLOYMENT.yml); see "
            f"'{click.get_current_context().command_path} --help'"
        )


@contextmanager
def v2_deployment(
    ctx: click.Context,
    files: Sequence[Path],
    check_env: bool,
    prefix: str,
    **overrides: Any,
) -> Iterator[LocalDeployment]:
    """-f: the v2 deployment laid out in a temporary app root, its settings resolved once from
    its environment, applied to this process (the server; workers inherit it) after the notes
    about what is not emulated are printed. All of it is undone on exit."""
    from modelstore.v2.local import applied, local_deployment

    settings = {name: value for name, value in overrides.items() if value is not None}
    if "max_body_mib" in settings:
        settings["max_body_bytes"] = settings.pop("max_body_mib") * 1024 * 1024
    workers = settings.pop("workers", None)
    with local_deployment(
        files,
        lambda: state(ctx).registry(read_only=True),
        check_env=check_env,
        workers=workers,
        prefix=prefix,
        **settings,
    ) as local:
        for note in local.notes:
            click.echo(note, err=True)
        with applied(local):
            yield local


def deployed_models(
    ctx: click.Context, refs: Sequence[str], prefix: str
) -> AbstractContextManager[Deployment | None]:
    """``--model``: the registry's temporary deployment of ``refs`` (removed on exit by this
    process only, never by a gunicorn worker leaving), or None without models."""
    if not refs:
        return nullcontext()
    registry = state(ctx).registry(writes_elsewhere=True)
    return registry.temporary_deployment(refs, prefix=prefix, subfolder="app")


def resolve_settings(
    deployment: Deployment | None,
    entry_script: Path,
    model_dir: str | None,
    cors_origins: str | None,
    scoring_timeout_ms: int | None,
    max_body_mib: int | None,
    numpy_json: bool,
    validation_400: bool,
    no_header_split: bool,
    **server_options: Any,
) -> ServingSettings:
    """The settings in force: the options given (``None``: not given) over this process's
    environment and ``--model``'s deployment, resolved once against the launch directory."""
    from modelstore.serving.settings import ServingSettings

    flags: dict[str, Any] = {
        "entry_script": entry_script,
        "numpy_json": numpy_json,
        "validation_400": validation_400,
        "split_header_values": not no_header_split,
        "model_dir": model_dir,
        "cors_origins": cors_origins,
        "scoring_timeout_ms": scoring_timeout_ms,
        "max_body_bytes": None if max_body_mib is None else max_body_mib * 1024 * 1024,
        **server_options,
    }
    given = {name: value for name, value in flags.items() if value is not None}
    return ServingSettings.resolve(
        os.environ, os.getcwd(), given, None if deployment is None else deployment.env
    )


# --- serve --------------------------------------------------------------------------------------


@click.command(
    "serve",
    cls=OneLineErrorCommand,
    short_help="Serve a score.py like the Azure ML inference server.",
)
@app_options
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 exposes the server to the network (azmlinfsrv's "
    "only choice).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5001,
    show_default=True,
    help="Port to listen on; 0 picks a free one (the URL printed says which).",
)
@click.option(
    "--workers",
    "--worker_count",
    "workers",
    type=click.IntRange(min=1),
    help="Worker processes, each running init() before it serves [default: $WORKER_COUNT, else 1].",
)
@click.option(
    "--read-timeout",
    "read_timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Time a client has to send a whole request (headers, and a body up to 1 MiB) once it "
    "connects or starts one; a slower client gets a 408 "
    "[default: $MODELSTORE_READ_TIMEOUT, else 5].",
)
@click.option(
    "--no-docs",
    is_flag=True,
    help="Leave out GET /docs (Swagger UI over /swagger.json), which azmlinfsrv does not have.",
)
@click.option(
    "--reload",
    is_flag=True,
    help="Restart the workers when the entry script or a file next to it changes "
    "(development only).",
)
@v2_options(["--file", "--deployment-file"])
@click.option(
    "--traffic",
    metavar="NAME=PCT,...",
    help="With -f endpoint.yml: split requests so instead of the endpoint's traffic: "
    "(e.g. blue=90,green=10; whole numbers summing to 100, or all 0).",
)
@click.option(
    "--auth",
    is_flag=True,
    help="With -f endpoint.yml: require the endpoint's auth_mode: key (two keys printed at "
    "start) or aml_token (one token printed with its expiry), sent as 'Authorization: Bearer "
    "KEY'; without it no key is needed locally.",
)
@click.option(
    "--probe-timing",
    type=click.Choice(["fast", "azure"]),
    default="fast",
    show_default=True,
    help="With -f: how the deployment's readiness_probe/liveness_probe gate its start. fast: "
    "ready as soon as init() has run, failing when Azure's probes would; azure: the probes' "
    "schedule as Azure runs it (first after initial_delay, then every period).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    entry_script: Path | None,
    models: tuple[str, ...],
    model_dir: str | None,
    cors_origins: str | None,
    scoring_timeout_ms: int | None,
    max_body_mib: int | None,
    numpy_json: bool,
    validation_400: bool,
    no_header_split: bool,
    host: str,
    port: int,
    workers: int | None,
    read_timeout_s: float | None,
    no_docs: bool,
    reload: bool,
    deployment_files: tuple[Path, ...],
    check_env: bool,
    traffic: str | None,
    auth: bool,
    probe_timing: ProbeTiming,
) -> None:
    """Serve the entry script like the Azure ML inference server: GET /, GET /swagger.json and
    GET|POST /score, with N worker processes that each run init() before serving. GET /docs
    (not in azmlinfsrv; see --no-docs) is Swagger UI over /swagger.json, to try /score.

    The URL is printed once a worker has run init() and can answer. A missing script or a
    syntax error is reported before the port is bound.

    -f endpoint.yml -f blue.yml -f green.yml serves an Azure ML v2 endpoint: each deployment
    in its own server processes, behind a router on --port that splits requests by traffic
    and honours the azureml-model-deployment header. The URL is printed once every deployment
    has run init().

    Exit codes: 0 after Ctrl-C, 1 if the port is taken, 2 for bad options, 3 if the entry
    script cannot start (missing, import error, no init/run, init() raised).
    """
    from modelstore.serving.loader import check_entry_script

    check_entry_options(entry_script, models, model_dir, deployment_files)
    refs = check_model_options(models, model_dir)
    if is_endpoint(deployment_files):
        ctx.exit(serve_endpoint(
            ctx, deployment_files, check_env, host, port, reload, traffic, auth,
            cors_origins=cors_origins, scoring_timeout_ms=scoring_timeout_ms,
            max_body_mib=max_body_mib, numpy_json=numpy_json, validation_400=validation_400,
            split_header_values=not no_header_split, workers=workers,
            read_timeout_s=read_timeout_s, probe_timing=probe_timing,
        ))  # fmt: skip
    if traffic is not None or auth:
        raise UsageError("--traffic and --auth are for an endpoint: add -f endpoint.yml")
    if deployment_files:
        with v2_deployment(
            ctx, deployment_files, check_env, "modelstore-serve-app-",
            cors_origins=cors_origins, scoring_timeout_ms=scoring_timeout_ms,
            max_body_mib=max_body_mib, numpy_json=numpy_json, validation_400=validation_400,
            split_header_values=not no_header_split, workers=workers,
            read_timeout_s=read_timeout_s, docs_page=False if no_docs else None,
        ) as local:  # fmt: skip
            code = serve_deployment(local, host, port, reload, probe_timing)
        ctx.exit(code)
    assert entry_script is not None
    with deployed_models(ctx, refs, "modelstore-serve-") as deployment:
        settings = resolve_settings(
            deployment, entry_script, model_dir, cors_origins, scoring_timeout_ms, max_body_mib,
            numpy_json, validation_400, no_header_split, workers=workers,
            read_timeout_s=read_timeout_s, docs_page=False if no_docs else None,
        )  # fmt: skip
        check_entry_script(settings.entry_script)  # before the port is bound
        code = run_server(settings, host, port, reload)
    ctx.exit(code)


def serve_deployment(
    local: LocalDeployment, host: str, port: int, reload: bool, timing: ProbeTiming
) -> int:
    """-f DEPLOYMENT.yml: the server, announced once the deployment's readiness probe succeeded
    (with --reload, a development loop, once a worker has run init(), as without -f)."""
    from modelstore.serving.server import bind_listener
    from modelstore.v2.probes import serve_when_ready

    if reload:
        return run_server(local.settings, host, port, reload)
    listener = bind_listener(host, port)
    return serve_when_ready(
        local.spec,
        listener,
        local.settings.workers,
        lambda: run_server(local.settings, host, port, False, listener, announce=False),
        timing=timing,
    )


def is_endpoint(files: Sequence[Path]) -> bool:
    """Several -f files, or one endpoint YAML: an endpoint, not one deployment."""
    from modelstore.v2.local import is_endpoint_file

    return len(files) > 1 or (len(files) == 1 and is_endpoint_file(os.fspath(files[0])))


def serve_endpoint(
    ctx: click.Context,
    files: Sequence[Path],
    check_env: bool,
    host: str,
    port: int,
    reload: bool,
    traffic: str | None,
    auth: bool,
    **overrides: Any,
) -> int:
    """-f endpoint.yml -f DEPLOYMENT.yml...: the endpoint until Ctrl-C / SIGTERM (exit 0)."""
    import signal

    from modelstore.v2.endpoint import local_endpoint, utc_text

    if reload:
        raise UsageError("--reload serves one deployment; drop --reload or give one -f file")
    settings = {name: value for name, value in overrides.items() if value is not None}
    if "max_body_mib" in settings:
        settings["max_body_bytes"] = settings.pop("max_body_mib") * 1024 * 1024
    workers = settings.pop("workers", None)
    split = parse_traffic(traffic) if traffic is not None else None

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # A closed terminal (SIGHUP) stops it as SIGTERM does: its processes have groups of their
    # own, so the hang-up does not reach them, and they are stopped in order here.
    previous = signal.signal(signal.SIGTERM, stop)
    previous_hup = signal.signal(signal.SIGHUP, stop)
    try:
        with local_endpoint(
            files,
            lambda: state(ctx).registry(read_only=True),
            host=host,
            port=port,
            traffic=split,
            auth=auth,
            check_env=check_env,
            workers=workers,
            **settings,
        ) as endpoint:
            for note in endpoint.notes:
                click.echo(note, err=True)
            for which, key in zip(("primary", "secondary"), endpoint.keys, strict=False):
                click.echo(f"Key ({which}): {key}")
            if endpoint.token is not None:
                token = endpoint.token
                click.echo(f"Token (aml_token): {token.access_token}")
                click.echo(
                    f"Token expires {utc_text(token.expiry_time_utc)} (refresh after "
                    f"{utc_text(token.refresh_after_time_utc)}); a new one needs a restart"
                )
            shares = ", ".join(f"{name} {endpoint.traffic.get(name, 0)}%" for name in endpoint.urls)
            click.echo(
                f"modelstore serve: endpoint {endpoint.name} listening on {endpoint.url} "
                f"(score at {endpoint.url}/score; traffic {shares}); press Ctrl-C to stop"
            )
            endpoint.wait()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGHUP, previous_hup)


def parse_traffic(text: str) -> dict[str, int]:
    """``--traffic blue=90,green=10`` -> ``{"blue": 90, "green": 10}``; the shape only (the
    endpoint checks the names and the sum)."""
    traffic: dict[str, int] = {}
    for item in text.split(","):
        name, equals, value = item.strip().partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not name or not value.isdigit() or int(value) > 100:
            raise InvalidArgumentError(
                f"--traffic {text!r}: {item.strip()!r} is not NAME=PERCENT (a whole number "
                "0-100); write e.g. --traffic blue=90,green=10"
            )
        if name in traffic:
            raise InvalidArgumentError(f"--traffic {text!r} names {name} twice; name it once")
        traffic[name] = int(value)
    return traffic


def run_server(
    settings: ServingSettings,
    host: str,
    port: int,
    reload: bool,
    listener: BoundListener | None = None,
    announce: bool = True,
) -> int:
    from modelstore.serving import app as app_module  # imported before the fork: workers share it
    from modelstore.serving import logs

    try:
        from modelstore.serving.server import ServerOptions
        from modelstore.serving.server import serve as serve_forever
    except ModuleNotFoundError as exc:
        if exc.name != "gunicorn":
            raise
        raise ModelstoreError(
            "modelstore serve runs on gunicorn, which is not installed (it does not run on "
            "Windows); use WSL, or 'modelstore score' for one request without a server"
        ) from None

    script = settings.entry_script
    log_folders = (settings.app_root, script.parent)

    def load_app() -> Flask:
        """Runs in each worker: azmlinfsrv's logging and print() capture, the script's
        variables, then init()."""
        logs.configure_logging(*log_folders)
        logs.redirect_print_process_wide()
        settings.apply_script_environ()
        return app_module.create_app(settings)

    options = ServerOptions(
        host=host,
        port=port,
        workers=settings.workers,
        worker_timeout_s=settings.worker_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        reload=reload,
        reload_paths=files_next_to(script) if reload else (),
        error_headers=server_version_headers(settings),
        announce=announce,
        max_concurrent_requests=settings.max_concurrent_requests_per_instance,
    )
    return serve_forever(load_app, options, listener)


def files_next_to(script: Path) -> tuple[Path, ...]:
    """The script and the visible files in its folder (modules it imports are watched anyway)."""
    folder = script.parent
    try:
        siblings = [
            path
            for path in folder.iterdir()
            if path.is_file() and not path.name.startswith(".") and path.suffix != ".pyc"
        ]
    except OSError:
        siblings = []
    return tuple(sorted({script, *siblings}))


def server_version_headers(settings: ServingSettings) -> tuple[tuple[str, str], ...]:
    from modelstore.serving.app import SERVER_VERSION

    if not settings.server_version_header:
        return ()
    return (("x-ms-server-version", SERVER_VERSION),)


# --- score --------------------------------------------------------------------------------------


@click.command(
    "score",
    cls=OneLineErrorCommand,
    short_help="Answer one request with a score.py, without a server.",
)
@app_options
@click.option(
    "--data",
    metavar="JSON|@FILE",
    help="The request body, sent as is: text, @FILE for a file's bytes, @- for stdin. It is "
    "not required to be JSON (Azure passes any body to run()); a body that is not JSON while "
    "the Content-Type is JSON, or a POST without --data (an empty body), gets a warning.",
)
@click.option(
    "--file",
    "files",
    multiple=True,
    metavar="FIELD=PATH",
    help="Add PATH as a multipart form field (for @rawhttp scripts); repeatable.",
)
@click.option(
    "--method",
    type=click.Choice(["POST", "GET", "OPTIONS"], case_sensitive=False),
    default="POST",
    show_default=True,
)
@click.option("--query", metavar="QUERY", help="Query string for /score, e.g. 'data=[1,2]&a=1'.")
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="K:V",
    help="A request header, e.g. 'x-ms-client-request-id: abc'; repeatable.",
)
@click.option(
    "--content-type",
    metavar="TYPE",
    help="Content-Type of --data [default: application/json, also for text that is not JSON].",
)
@click.option("-i", "--include", is_flag=True, help="Also print the response headers.")
@v2_options(["--deployment-file"])
@click.pass_context
def score(
    ctx: click.Context,
    entry_script: Path | None,
    models: tuple[str, ...],
    model_dir: str | None,
    cors_origins: str | None,
    scoring_timeout_ms: int | None,
    max_body_mib: int | None,
    numpy_json: bool,
    validation_400: bool,
    no_header_split: bool,
    data: str | None,
    files: tuple[str, ...],
    method: str,
    query: str | None,
    headers: tuple[str, ...],
    content_type: str | None,
    include: bool,
    deployment_files: tuple[Path, ...],
    check_env: bool,
) -> None:
    """Load the entry script, run init(), send one request to /score through the same app
    'modelstore serve' runs (no server, no port), and print the status line and body.

    The body sent is --data exactly as given, with Content-Type application/json unless
    --content-type or a --header sets another; it is not checked, as Azure passes any body to
    run(), but a warning on stderr says when it is not JSON while declared JSON. Without --data
    a POST sends an empty body (with a warning); --file sends a multipart form instead.

    Exit codes: 0 for a 2xx answer, 1 for any other status, 2 for bad options, 3 if the entry
    script cannot start.
    """
    check_entry_options(entry_script, models, model_dir, deployment_files)
    refs = check_model_options(models, model_dir)
    header_pairs = parse_headers(headers)
    uploads = parse_uploads(files)
    body = read_body(data)
    for warning in body_warnings(method.upper(), body, uploads, header_pairs, content_type):
        click.echo(f"Warning: {warning}", err=True)
    if deployment_files:
        from modelstore.serving import logs
        from modelstore.serving.app import create_app

        with v2_deployment(
            ctx, deployment_files, check_env, "modelstore-score-app-",
            cors_origins=cors_origins, scoring_timeout_ms=scoring_timeout_ms,
            max_body_mib=max_body_mib, numpy_json=numpy_json, validation_400=validation_400,
            split_header_values=not no_header_split,
        ) as local:  # fmt: skip
            logs.configure_logging(local.settings.app_root, local.settings.entry_script.parent)
            status, response_headers, response_body = send_request(
                create_app(local.settings), method.upper(), query, body, uploads, header_pairs,
                content_type,
            )  # fmt: skip
        write_response(status, response_headers, response_body, include=include)
        ctx.exit(0 if status.startswith("2") else 1)
    assert entry_script is not None
    with deployed_models(ctx, refs, "modelstore-score-") as deployment:
        settings = resolve_settings(
            deployment, entry_script, model_dir, cors_origins, scoring_timeout_ms, max_body_mib,
            numpy_json, validation_400, no_header_split,
        )  # fmt: skip
        from modelstore.serving import logs
        from modelstore.serving.app import create_app

        logs.configure_logging(settings.app_root, settings.entry_script.parent)
        settings.apply_script_environ()
        app = create_app(settings)
        status, response_headers, response_body = send_request(
            app, method.upper(), query, body, uploads, header_pairs, content_type
        )
    write_response(status, response_headers, response_body, include=include)
    ctx.exit(0 if status.startswith("2") else 1)


def parse_headers(headers: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for text in headers:
        name, colon, value = text.partition(":")
        if not colon or not name.strip():
            raise InvalidArgumentError(
                f"--header {text!r} must look like 'Name: value', e.g. 'x-request-id: abc'"
            )
        pairs.append((name.strip(), value.strip()))
    return pairs


def parse_uploads(files: Sequence[str]) -> list[tuple[str, Path]]:
    uploads = []
    for text in files:
        field, equals, path = text.partition("=")
        if not equals or not field or not path:
            raise InvalidArgumentError(
                f"--file {text!r} must look like FIELD=PATH, e.g. image=photo.png"
            )
        file_path = Path(path.removeprefix("@"))
        if not file_path.is_file():
            raise InvalidArgumentError(f"--file {text!r}: {file_path} is not a readable file")
        uploads.append((field, file_path))
    return uploads


def read_body(data: str | None) -> bytes | None:
    """``--data``: the text itself (UTF-8), ``@FILE`` for a file's bytes, ``@-`` for stdin."""
    if data is None:
        return None
    if not data.startswith("@"):
        return data.encode("utf-8")
    source = data[1:]
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise InvalidArgumentError(
            f"--data {data!r}: cannot read {source}: {exc.strerror or exc}"
        ) from exc


def body_warnings(
    method: str,
    body: bytes | None,
    uploads: Sequence[tuple[str, Path]],
    headers: Sequence[tuple[str, str]],
    content_type: str | None,
) -> list[str]:
    """Likely mistakes in the body about to be sent, which is sent anyway: Azure passes any
    body through to run(), and a script may well expect an empty or non-JSON one."""
    if uploads:
        return []
    if body is None:
        if method != "POST":
            return []
        return [
            "no --data given: POST /score is sent with an empty body; give the body with "
            "--data JSON, --data @FILE or --data @- (stdin)"
        ]
    declared = content_type or next(
        (value for name, value in headers if name.lower() == "content-type"), "application/json"
    )
    mime = declared.split(";")[0].strip().lower()
    if mime != "application/json" and not mime.endswith("+json"):
        return []
    try:
        json.loads(body)
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8/16/32
        reason = (
            f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else "not UTF-8 text"
        )
        return [
            f"--data is not valid JSON ({reason}) but is sent as is with Content-Type "
            f"{declared}; fix the JSON, or pass --content-type text/plain for a text body"
        ]
    return []


def send_request(
    app: Flask,
    method: str,
    query: str | None,
    body: bytes | None,
    uploads: Sequence[tuple[str, Path]],
    headers: Sequence[tuple[str, str]],
    content_type: str | None,
) -> tuple[str, list[tuple[str, str]], bytes]:
    """One request through Flask's test client: the app answers exactly as under the server."""
    request_headers = list(headers)
    has_content_type = any(name.lower() == "content-type" for name, _ in request_headers)
    kwargs: dict[str, Any] = {"method": method, "headers": request_headers}
    if query:
        kwargs["query_string"] = query.removeprefix("?")
    if uploads:
        form: dict[str, Any] = {field: (path.open("rb"), path.name) for field, path in uploads}
        kwargs["data"] = form
    elif body is not None:
        kwargs["data"] = body
        if not has_content_type:
            kwargs["content_type"] = content_type or "application/json"
    if content_type is not None and "content_type" not in kwargs and not uploads:
        kwargs["content_type"] = content_type
    try:
        # No cookie jar: parsing Set-Cookie answers is a browser's job (and Werkzeug's parser
        # fails on the comma-split values AMLResponse sends).
        with app.test_client(use_cookies=False) as client:
            response = client.open("/score", **kwargs)
            payload = response.get_data()
            return response.status, list(response.headers.items()), payload
    finally:
        for value in kwargs.get("data", {}).values() if uploads else ():
            value[0].close()


def write_response(
    status: str, headers: Sequence[tuple[str, str]], body: bytes, *, include: bool
) -> None:
    out = sys.stdout.buffer
    out.write(f"HTTP/1.1 {status}\n".encode())
    if include:
        out.write("".join(f"{name}: {value}\n" for name, value in headers).encode("latin-1"))
        out.write(b"\n")
    out.write(body)
    if not body.endswith(b"\n"):
        out.write(b"\n")
    out.flush()
