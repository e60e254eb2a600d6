"""``export`` and ``import``: thin wrappers over ``Registry.export`` / ``plan_import`` /
``import_planned`` (see ``modelstore.registry.archive``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from modelstore.cli import OneLineErrorCommand, state
from modelstore.cli.completion_commands import complete_ref
from modelstore.cli.registry_commands import human_size


@click.command("export", cls=OneLineErrorCommand)
@click.argument("refs", nargs=-1, required=True, shell_complete=complete_ref)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Archive to write: .tar, .tar.gz/.tgz, .tar.bz2 or .tar.xz (must not exist).",
)
@click.pass_context
def export(ctx: click.Context, refs: tuple[str, ...], output: Path) -> None:
    """Write versions (REF: NAME, NAME:VERSION, NAME:latest) to one archive with their files,
    sha256 manifest and metadata, for `modelstore import` on another machine."""
    report = state(ctx).registry(read_only=True).export(list(refs), output)
    click.echo(
        f"Exported {', '.join(report.versions)} ({report.files} files, "
        f"{human_size(report.bytes)}) to {report.path}"
    )


@click.command("import", cls=OneLineErrorCommand)
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Skip versions the registry already holds with the same files (else refused).",
)
@click.option(
    "--with-aliases",
    is_flag=True,
    help="Also set the archive's aliases (NAME@ALIAS) that this registry does not have; "
    "one pointing at another version here refuses the import.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def import_(
    ctx: click.Context, source: Path, skip_existing: bool, with_aliases: bool, as_json: bool
) -> None:
    """Import an archive made by `modelstore export`, or adopt an azureml-models folder
    (<name>/<version>/<entry>, as Model.download or `modelstore deploy --copy` leave it),
    keeping every version's name and number. All or nothing: any conflict refuses the whole
    import, and every file is checked before a version becomes visible."""
    from modelstore.registry import Registry

    Registry.check_import_source(source)  # a missing archive creates no registry
    registry = state(ctx).registry()
    plan = registry.import_planned(
        registry.plan_import(source, skip_existing=skip_existing, with_aliases=with_aliases)
    )
    added = [v.id for v in plan.add]
    skipped = [v.id for v in plan.skip]
    aliases = [f"{name}@{alias} -> {name}:{version}" for name, alias, version in plan.aliases]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "imported": added,
                    "skipped": skipped,
                    "bytes": plan.bytes,
                    "aliases": [{"name": n, "alias": a, "version": v} for n, a, v in plan.aliases],
                }
            )
        )
        return
    if added:
        click.echo(f"Imported {', '.join(added)} ({human_size(plan.bytes)})")
    if skipped:
        click.echo(f"Skipped (already registered with the same files): {', '.join(skipped)}")
    if aliases:
        click.echo(f"Set aliases: {', '.join(aliases)}")
    if not added:
        click.echo("Nothing to import: every version is already registered")
