"""``modelstore completion SHELL`` and the completion of REF arguments.

Completion is click's own protocol (the shell calls ``modelstore`` with
``_MODELSTORE_COMPLETE=<shell>_complete``); this command only prints the script that wires a
shell to it, so users need not learn the variable. REF completion reads the registry through
``Registry.open_existing``, which never creates a home or a catalog: pressing Tab must not
leave files behind, and where no registry exists there is nothing to complete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
from click.shell_completion import CompletionItem, get_completion_class

from modelstore.cli import OneLineErrorCommand

if TYPE_CHECKING:
    from modelstore.registry import Registry

T = TypeVar("T")

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_MODELSTORE_COMPLETE"


@click.command(
    "completion",
    cls=OneLineErrorCommand,
    short_help="Print the shell completion script for bash, zsh or fish.",
)
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the script that makes SHELL complete modelstore's commands, options and
    registered model names (REF arguments complete NAME, NAME: completes its versions and
    NAME@ its aliases).

    \b
    bash:  eval "$(modelstore completion bash)"      (in ~/.bashrc; bash 4.4 or newer)
    zsh:   eval "$(modelstore completion zsh)"       (in ~/.zshrc)
    fish:  modelstore completion fish > ~/.config/fish/completions/modelstore.fish
    """
    shell_class = get_completion_class(shell)
    assert shell_class is not None  # click.Choice admits only the shells click supports
    root = ctx.find_root().command
    script = shell_class(root, {}, "modelstore", COMPLETE_VAR).source()
    click.echo(script.rstrip("\n"))


def complete_ref(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Registered names for ``NAME``, ``NAME:<version>`` (newest first, then ``NAME:latest``)
    once the user has typed ``NAME:``, and ``NAME@<alias>`` (by alias) after ``NAME@``."""
    if "@" in incomplete and ":" not in incomplete:
        name, _, _ = incomplete.partition("@")
        aliases = _read_registry(ctx, lambda registry: registry.aliases(name))
        candidates = [f"{name}@{a.alias}" for a in aliases]
        return [CompletionItem(c) for c in candidates if c.startswith(incomplete)]
    name, colon, _ = incomplete.partition(":")
    if not colon:
        return complete_name(ctx, param, incomplete)
    versions = _read_registry(ctx, lambda registry: registry.versions(name))
    candidates = [f"{name}:{v}" for v in [*map(str, reversed(versions)), "latest"]]
    return [CompletionItem(c) for c in candidates if versions and c.startswith(incomplete)]


def complete_ref_or_path(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """A registered REF, else a file or folder (the shell's own path completion)."""
    return complete_ref(ctx, param, incomplete) or [CompletionItem(incomplete, type="file")]


def complete_name(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Registered model names starting with what was typed."""
    names = _read_registry(ctx, lambda registry: [v.name for v in registry.list(latest=True)])
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def _read_registry(ctx: click.Context, read: Callable[[Registry], list[T]]) -> list[T]:
    """``read`` on the registry the command line names, if one exists; [] otherwise, and on any
    failure: a Tab must never print an error."""
    from modelstore.errors import ModelstoreError
    from modelstore.registry import Registry

    home: Path | None = ctx.find_root().params.get("home")
    try:
        registry = Registry.open_existing(home)
        if registry is None:
            return []
        with contextlib.closing(registry):
            return read(registry)
    except (ModelstoreError, OSError, ValueError):
        return []
