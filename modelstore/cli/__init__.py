"""The ``modelstore`` command: a thin click layer over the library.

Sub-commands live in small modules that import only click at module level, and they are
imported only when named, so ``modelstore --help`` stays fast. Every ``ModelstoreError``
becomes one ``Error: ...`` line on stderr, its advice worded in flags and commands, and an exit
code chosen from its class (1 failed, 2 bad input, 3 entry script could not start): see
``modelstore.cli.errors``.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from modelstore.cli.errors import error_line, exit_code
from modelstore.cli.shell import use_colon_aware_bash
from modelstore.errors import InvalidArgumentError, ModelstoreError

if TYPE_CHECKING:
    from modelstore.registry import Registry

# command name -> "module:attribute"; the order here is the order of `modelstore --help`.
COMMANDS: dict[str, str] = {
    "register": "modelstore.cli.registry_commands:register",
    "list": "modelstore.cli.registry_commands:list_",
    "show": "modelstore.cli.registry_commands:show",
    "path": "modelstore.cli.registry_commands:path",
    "tag": "modelstore.cli.registry_commands:tag",
    "untag": "modelstore.cli.registry_commands:untag",
    "property": "modelstore.cli.registry_commands:property_",
    "describe": "modelstore.cli.registry_commands:describe",
    "delete": "modelstore.cli.registry_commands:delete",
    "prune": "modelstore.cli.alias_commands:prune",
    "alias": "modelstore.cli.alias_commands:alias",
    "verify": "modelstore.cli.registry_commands:verify",
    "doctor": "modelstore.cli.registry_commands:doctor",
    "export": "modelstore.cli.archive_commands:export",
    "import": "modelstore.cli.archive_commands:import_",
    "deploy": "modelstore.cli.deploy_commands:deploy",
    "exec": "modelstore.cli.deploy_commands:exec_",
    "serve": "modelstore.cli.serve_commands:serve",
    "score": "modelstore.cli.serve_commands:score",
    "ui": "modelstore.cli.ui_commands:ui",
    "completion": "modelstore.cli.completion_commands:completion",
}

ALIASES: dict[str, str] = {"ls": "list"}
"""Other names a command answers to; not shown in ``modelstore --help`` (each command's help
names its alias)."""

use_colon_aware_bash()  # before click reads the completion variables in main()


INTERRUPTED_EXIT_CODE = 130
"""128 + SIGINT, as a shell reports a command Ctrl-C ended (``exec`` passes its command's on)."""
INTERRUPTED_LINE = (
    "Error: interrupted (Ctrl-C); nothing half-done is visible, and 'modelstore doctor' "
    "reports anything left over"
)


@dataclass
class CliState:
    """What the top-level options decided; the registry is opened only when a command needs it."""

    home: Path | None = None
    _registry: Registry | None = field(default=None, repr=False)

    def registry(
        self, *, read_only: bool = False, create: bool = True, writes_elsewhere: bool = False
    ) -> Registry:
        """``create=False`` for commands that act on existing versions (a mistyped ``--home``
        must not leave a new registry behind); ``read_only`` for those that only look.
        ``writes_elsewhere``: the command writes outside the home (``deploy``'s app root) and
        needs the home only to read, unless a version must be cached first; a home that cannot
        be written (a read-only mount of a model cache in CI) is then opened read-only, and
        serves the versions it caches."""
        if writes_elsewhere and not read_only:
            from modelstore.layout import default_home

            home = self.home if self.home is not None else default_home()
            read_only = os.path.isdir(home) and not os.access(home, os.W_OK)
        if self._registry is None:
            from modelstore.registry import Registry

            self._registry = Registry(home=self.home, read_only=read_only, create=create)
            # closed with the command: no catalog file stays open after it (in-process callers)
            click.get_current_context().call_on_close(self._registry.close)
        return self._registry


class OneLineErrorCommand(click.Command):
    """A command whose usage errors are one ``Error: ...`` line, like every other bad input.

    click would print the usage synopsis and a hint over three lines; turning its UsageError into
    our InvalidArgumentError lets the group print it the same way as a bad name or REF (exit 2).
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise InvalidArgumentError(one_line_usage(exc, ctx)) from exc


def one_line_usage(exc: click.UsageError, ctx: click.Context, hint: str = "") -> str:
    """click's usage error as our one line: what is wrong, and where to look."""
    return f"{exc.format_message().rstrip('.')}{hint}; see '{ctx.command_path} --help'"


def did_you_mean(name: str, choices: list[str]) -> str:
    """`` (did you mean 'register'?)`` for a misspelt command, or nothing if none is close."""
    matches = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


class LazyGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """A bad top-level option (``--home`` naming a file, a misspelt option) is one line too.

        It fails before any command runs, so ``invoke`` cannot turn it into an ``Error:`` line:
        it is printed here. A bare ``modelstore`` still shows the help screen."""
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise
            click.echo(f"Error: {one_line_usage(exc, ctx)}", err=True)
            ctx.exit(exit_code(InvalidArgumentError()))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:  # "No such command": one line too, not click's screen
            hint = did_you_mean(args[0], [*COMMANDS, *ALIASES]) if args else ""
            raise InvalidArgumentError(one_line_usage(exc, ctx, hint)) from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(ALIASES.get(cmd_name, cmd_name))
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModelstoreError as exc:
            click.echo(error_line(exc), err=True)
            ctx.exit(exit_code(exc))
        except (KeyboardInterrupt, click.Abort):  # click would print "Aborted!" and exit 1
            # after the terminal's "^C" (the cursor is on that line); only there
            start = "\n" if sys.stderr.isatty() else ""
            click.echo(f"{start}{INTERRUPTED_LINE}", err=True)
            ctx.exit(INTERRUPTED_EXIT_CODE)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MODELSTORE_HOME",
    help="Registry home folder [default: $MODELSTORE_HOME, else the per-user data folder].",
)
@click.version_option(package_name="modelstore", prog_name="modelstore")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """Build and test Azure ML model deployments locally: a model registry, the Azure ML
    deployment layout, get_model_path, and a scoring server for score.py."""
    ctx.obj = CliState(home=home)


def state(ctx: click.Context) -> CliState:
    """The CliState of the running command (for sub-command modules)."""
    obj = ctx.find_object(CliState)
    if obj is None:  # a sub-command invoked on its own, e.g. from a test
        obj = CliState()
        ctx.obj = obj
    return obj
