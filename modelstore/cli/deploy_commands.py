"""The deployment commands: ``deploy`` lays out an app root, ``exec`` runs a command inside one.

Only click and the standard library are imported at module level; the registry (SQLAlchemy,
pydantic) is opened inside each command.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from modelstore.cli import OneLineErrorCommand, state
from modelstore.cli.completion_commands import complete_ref_or_path
from modelstore.errors import DeploymentRefusedError, ModelNotFoundError

if TYPE_CHECKING:
    from modelstore.deployment import Deployment

EXIT_NOT_FOUND = 127
"""Exit code of ``exec`` when CMD does not exist, as a shell's."""
EXIT_NOT_EXECUTABLE = 126
"""Exit code of ``exec`` when CMD exists but cannot be run, as a shell's."""
_FORWARDED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)
)


@click.command("deploy", cls=OneLineErrorCommand)
@click.argument(
    "refs", nargs=-1, required=True, metavar="REF [REF...]", shell_complete=complete_ref_or_path
)
@click.option(
    "--app-root",
    required=True,
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Folder to lay out (new or empty; see --force). It becomes AML_APP_ROOT.",
)
@click.option("--copy", is_flag=True, help="Copy the model files instead of linking to the store.")
@click.option(
    "--force", is_flag=True, help="Replace DIR/azureml-models in a non-empty DIR (nothing else)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the deployment as JSON.")
@click.pass_context
def deploy(
    ctx: click.Context,
    refs: tuple[str, ...],
    app_root: Path,
    copy: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Lay out DIR/azureml-models/<name>/<version>/<entry> as Azure ML does, and print its
    environment (AML_APP_ROOT, AZUREML_MODEL_DIR) as shell export lines.

    A REF is NAME, NAME:VERSION, NAME:latest or NAME@ALIAS of a registered model, or a local file
    or folder (deployed unregistered, as version 0). Use it with: eval "$(modelstore deploy ...)".
    """
    deployment = _deploy(ctx, refs, app_root, copy=copy, force=force)
    if as_json:
        click.echo(deployment.model_dump_json(indent=2))
    else:
        click.echo(export_lines(deployment))


def _deploy(
    ctx: click.Context,
    refs: Sequence[str],
    app_root: Path,
    *,
    copy: bool = False,
    force: bool = False,
) -> Deployment:
    """``Registry.deploy``, refusing unknown models as bad input."""
    with refusing_unknown_models():
        return (
            state(ctx)
            .registry(writes_elsewhere=True)
            .deploy(list(refs), app_root, copy=copy, force=force)
        )


@contextlib.contextmanager
def refusing_unknown_models() -> Iterator[None]:
    """An unknown REF is a refusal of bad input (exit 2), like the deployment's others."""
    try:
        yield
    except ModelNotFoundError as exc:
        from modelstore.cli.errors import error_text

        raise DeploymentRefusedError(f"{error_text(exc)} (nothing was written)") from exc


def export_lines(deployment: Deployment) -> str:
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in deployment.env.items())


@click.command(
    "exec",
    cls=OneLineErrorCommand,
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--model",
    "models",
    multiple=True,
    required=True,
    metavar="REF",
    help="A model to deploy (repeatable): NAME, NAME:VERSION, NAME@ALIAS or a local path.",
)
@click.option(
    "--app-root",
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Deploy into this new or empty folder [default: a temporary folder].",
)
@click.option("--keep", is_flag=True, help="Keep the deployment afterwards and say where it is.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD [ARGS]")
@click.pass_context
def exec_(
    ctx: click.Context,
    models: tuple[str, ...],
    app_root: Path | None,
    keep: bool,
    command: tuple[str, ...],
) -> None:
    """Deploy the models, then run CMD with AML_APP_ROOT and AZUREML_MODEL_DIR set, the caller's
    stdin/stdout/stderr and working directory. Exits with CMD's exit code (128+N if a signal N
    ended it; 127 if CMD is not found). Without --keep, everything the deployment wrote is
    removed afterwards.
    """
    registry = state(ctx).registry(writes_elsewhere=True)
    with contextlib.ExitStack() as stack:
        with refusing_unknown_models():
            deployment = stack.enter_context(
                registry.temporary_deployment(
                    models, app_root, keep=keep, prefix="modelstore-exec-"
                )
            )
        if keep:
            click.echo(f"modelstore: the deployment is kept in {deployment.app_root}", err=True)
        code = run_command(command, {**os.environ, **deployment.env})
    ctx.exit(code)


def run_command(command: Sequence[str], env: dict[str, str]) -> int:
    """Run CMD in the foreground and return a shell-style exit code.

    Ctrl-C reaches CMD directly (same process group), so this process ignores SIGINT while CMD
    runs; SIGTERM, SIGHUP and SIGQUIT sent to modelstore alone are passed on to CMD, so clean-up
    still happens after CMD ends.
    """
    try:
        child = subprocess.Popen(list(command), env=env)
    except FileNotFoundError:
        click.echo(
            f"Error: command not found: {command[0]} (check the name or your PATH)", err=True
        )
        return EXIT_NOT_FOUND
    except PermissionError:
        click.echo(f"Error: cannot execute {command[0]}: permission denied", err=True)
        return EXIT_NOT_EXECUTABLE
    except OSError as exc:
        click.echo(f"Error: cannot execute {command[0]}: {exc.strerror}", err=True)
        return EXIT_NOT_EXECUTABLE

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers need it
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
        for signum in _FORWARDED_SIGNALS:
            previous[signum] = signal.signal(signum, forward)
    try:
        returncode = child.wait()
    finally:
        for restored, handler in previous.items():
            signal.signal(restored, handler)
    sys.stdout.flush()
    return 128 - returncode if returncode < 0 else returncode
