"""The lifecycle commands: ``alias set|rm|list|history`` and ``prune``.

Like the other command modules, only click and light modelstore modules are imported at module
level; names, aliases and REFs are checked before the registry is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from modelstore.cli import OneLineErrorCommand, one_line_usage
from modelstore.cli.completion_commands import complete_name, complete_ref
from modelstore.cli.registry_commands import (
    _plan_text,
    delete_confirmed,
    dump,
    json_option,
    open_registry,
    plural,
    print_json,
    table,
)
from modelstore.errors import InvalidArgumentError
from modelstore.layout import validate_alias, validate_name
from modelstore.refs import parse_ref

if TYPE_CHECKING:
    from modelstore.registry.reports import AliasMove


class OneLineErrorGroup(click.Group):
    """A command group whose usage errors (a missing or misspelt sub-command) are one line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise
            raise InvalidArgumentError(one_line_usage(exc, ctx)) from exc

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise InvalidArgumentError(one_line_usage(exc, ctx)) from exc


@click.group("alias", cls=OneLineErrorGroup)
def alias() -> None:
    """Movable names for versions: NAME@ALIAS works wherever a REF does.

    An alias starts with a letter, has only letters, digits, '-' and '_', is at most 64
    characters and case-sensitive; 'latest' is reserved. Every move is kept in the history.
    """


def _version_text(name: str, version: int | None) -> str:
    return "(none)" if version is None else f"{name}:{version}"


@alias.command("set", cls=OneLineErrorCommand)
@click.argument("ref", shell_complete=complete_ref)
@click.argument("alias_name", metavar="ALIAS")
@json_option
def set_(ref: str, alias_name: str, as_json: bool) -> None:
    """Point ALIAS at the version REF names (moving it if it points elsewhere)."""
    parse_ref(ref)
    validate_alias(alias_name)
    move = open_registry().set_alias(ref, alias_name)
    if as_json:
        print_json(dump(move))
        return
    target = _version_text(move.name, move.to_version)
    if move.from_version == move.to_version:
        click.echo(f"{move.name}@{move.alias} already points at {target}")
    elif move.from_version is None:
        click.echo(f"Set alias {move.name}@{move.alias} -> {target}")
    else:
        was = _version_text(move.name, move.from_version)
        click.echo(f"Moved alias {move.name}@{move.alias} -> {target} (was {was})")


@alias.command("rm", cls=OneLineErrorCommand)
@click.argument("name", shell_complete=complete_name)
@click.argument("alias_name", metavar="ALIAS")
@json_option
def rm(name: str, alias_name: str, as_json: bool) -> None:
    """Remove an alias of NAME (the versions stay; the removal is kept in the history)."""
    validate_name(name)
    validate_alias(alias_name)
    move = open_registry().remove_alias(name, alias_name)
    if as_json:
        print_json(dump(move))
    else:
        was = _version_text(move.name, move.from_version)
        click.echo(f"Removed alias {move.name}@{move.alias} (was {was})")


@alias.command("list", cls=OneLineErrorCommand)
@click.argument("name", required=False, shell_complete=complete_name)
@json_option
def list_(name: str | None, as_json: bool) -> None:
    """List aliases (of NAME, or of every model)."""
    if name is not None:
        validate_name(name)
    aliases = open_registry(read_only=True).aliases(name)
    if as_json:
        print_json([dump(a) for a in aliases])
    elif not aliases:
        click.echo("No aliases.")
    else:
        rows = [[f"{a.name}@{a.alias}", f"{a.name}:{a.version}"] for a in aliases]
        click.echo(table(["ALIAS", "VERSION"], rows))


@alias.command("history", cls=OneLineErrorCommand)
@click.argument("name", shell_complete=complete_name)
@json_option
def history(name: str, as_json: bool) -> None:
    """Every move of the aliases of NAME, oldest first: from, to, when (UTC) and by whom."""
    validate_name(name)
    moves = open_registry(read_only=True).alias_history(name)
    if as_json:
        print_json([dump(m) for m in moves])
    elif not moves:
        click.echo(f"No alias of {name} was ever set.")
    else:
        click.echo(table(["WHEN", "ALIAS", "FROM", "TO", "BY"], [_move_row(m) for m in moves]))


def _move_row(move: AliasMove) -> list[str]:
    return [
        move.at.strftime("%Y-%m-%d %H:%M:%S"),
        move.alias,
        _version_text(move.name, move.from_version),
        _version_text(move.name, move.to_version),
        move.by,
    ]


@click.command("prune", cls=OneLineErrorCommand)
@click.argument("name", shell_complete=complete_name)
@click.option(
    "--keep", type=click.IntRange(min=0), required=True, help="How many newest versions to keep."
)
@click.option("--dry-run", is_flag=True, help="Only print what would be deleted.")
@click.option(
    "--yes", is_flag=True, help="Do not ask for confirmation (needed without a terminal)."
)
@json_option
def prune(name: str, keep: int, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Delete all but the newest versions of NAME.

    Versions an alias points at are always kept. The plan (versions, bytes) is printed first and
    confirmed on a terminal (--yes otherwise). Version numbers are never reused.
    """
    validate_name(name)
    registry = open_registry()
    plan = registry.plan_prune(name, keep)
    for kept in plan.kept:
        click.echo(f"Keeping {name}:{kept.version}: alias {kept.alias!r} points at it", err=as_json)
    if not plan.versions:
        if as_json:
            print_json(dump(plan))
        else:
            click.echo(
                f"Nothing to prune: every version of {name} is kept (the newest {keep}, or "
                "one an alias points at)."
            )
        return
    click.echo(f"Will delete {_plan_text(plan.versions, plan.bytes)}", err=as_json)
    done = delete_confirmed(
        registry, plan, dry_run=dry_run, yes=yes, as_json=as_json, action="prune"
    )
    if done is None:
        return
    if as_json:
        print_json(dump(done.model_copy(update={"kept": plan.kept})))
    else:
        click.echo(f"Deleted {_plan_text(done.versions, done.bytes)}")
        left = sum(1 for _ in registry.versions(name))
        click.echo(f"{name} now has {plural(left, 'version')}.")


__all__ = ["alias", "prune"]
