"""The registry commands: ``register``, ``list``, ``show``, ``path``, ``tag``, ``untag``,
``property``, ``describe``, ``delete``, ``verify`` and ``doctor``.

Only click and light modelstore modules are imported here at module level: the Registry (and with
it SQLAlchemy and pydantic) is imported inside each command, so ``modelstore --help`` stays fast.
Everything a command can check without the registry (names, REFs, ``K=V`` pairs) is checked
before the registry is opened, so such bad input is refused before any store is opened.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from modelstore.cli import OneLineErrorCommand, state
from modelstore.cli.completion_commands import complete_name, complete_ref
from modelstore.errors import IntegrityError, InvalidArgumentError, ModelstoreError, UsageError
from modelstore.layout import validate_name
from modelstore.refs import parse_ref

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar
    from pydantic import BaseModel

    from modelstore.modelversion import ModelVersion
    from modelstore.registry import Registry
    from modelstore.registry.reports import Alias, DeletePlan, ForeignAction

LARGE_MODEL_BYTES = 32 * 1024 * 1024
"""Copies at least this big show a progress bar (on a terminal): below it a copy is instant."""


def command(name: str) -> Callable[[Callable[..., Any]], click.Command]:
    return click.command(name, cls=OneLineErrorCommand)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


# --- argument parsing (no registry needed) ----------------------------------------------------


def parse_pairs(values: Sequence[str], option: str) -> dict[str, str]:
    """``K=V`` texts as a dict; a text without ``=``, an empty key or a repeated key is refused.

    ``option`` names where the texts came from in messages: a flag (``--tag``) or a command
    whose arguments they are (``tag``).
    """
    pairs: dict[str, str] = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key:
            flag = f"{option} " if option.startswith("-") else ""
            example = key or "key"
            raise InvalidArgumentError(
                f"{option} {text!r} is not KEY=VALUE: write it as {flag}{example}=VALUE "
                f"(an empty value is written {example}=)"
            )
        if key in pairs:
            raise InvalidArgumentError(f"{option} key {key!r} is given twice: give each key once")
        pairs[key] = value
    return pairs


def parse_filters(values: Sequence[str], option: str) -> list[str | tuple[str, str]]:
    """``K`` (the key is present) or ``K=V`` (the value equals V), as Azure ML's list filters."""
    filters: list[str | tuple[str, str]] = []
    for text in values:
        key, sep, value = text.partition("=")
        if not key:
            raise InvalidArgumentError(
                f"{option} {text!r} has no key: write {option} KEY or {option} KEY=VALUE"
            )
        filters.append((key, value) if sep else key)
    return filters


# --- output ---------------------------------------------------------------------------------


def human_size(size: int) -> str:
    """Sizes as people read them (binary units, one decimal)."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def format_pairs(pairs: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(pairs.items()))


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json")


def format_created(version: ModelVersion) -> str:
    created = version.created_at
    if created.tzinfo is None:  # a catalog that stores naive UTC times
        created = created.replace(tzinfo=timezone.utc)
    return created.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def describe_version(version: ModelVersion) -> str:
    fields = [
        ("id", version.id),
        ("name", version.name),
        ("version", str(version.version)),
        ("entry", f"{version.entry} ({version.kind})"),
        ("path", str(version.path)),
        (
            "size",
            f"{human_size(version.size)} ({plural(version.size, 'byte')}, "
            f"{plural(version.file_count, 'file')})",
        ),
        ("sha256", version.sha256),
        ("created", format_created(version)),
        ("description", version.description or ""),
        ("framework", version.framework or ""),
        ("framework version", version.framework_version or ""),
        ("tags", format_pairs(version.tags)),
        ("properties", format_pairs(version.properties)),
    ]
    width = max(len(label) for label, _ in fields)
    return "\n".join(f"{label + ':':<{width + 1}} {value}".rstrip() for label, value in fields)


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def go_ahead(
    plan: BaseModel,
    *,
    dry_run: bool,
    yes: bool,
    as_json: bool,
    action: str,
    verb: str = "delete",
    question: str = "Delete?",
    nothing: str = "nothing was deleted",
) -> bool:
    """Whether to carry out a plan already printed: not on --dry-run (which shows it as JSON with
    --json), and not without --yes unless a person at a terminal confirms. ``action`` is what
    the command refuses to do unconfirmed, ``verb`` what --yes lets it do, ``nothing`` what a
    dry run or a "no" leaves done. Declining exits 1; no terminal and no --yes is a usage
    error."""
    if dry_run:
        if as_json:
            print_json(dump(plan))
        else:
            click.echo(f"Dry run: {nothing}.")
        return False
    if not yes:
        if not _stdin_is_terminal():
            raise UsageError(
                f"refusing to {action} without confirmation: stdin is not a terminal; "
                f"pass --yes to {verb}"
            )
        if not click.confirm(question, default=False, err=True):
            click.echo(f"{nothing.capitalize()}.", err=True)
            click.get_current_context().exit(1)
    return True


def delete_confirmed(
    registry: Registry, plan: DeletePlan, *, dry_run: bool, yes: bool, as_json: bool, action: str
) -> DeletePlan | None:
    """Delete exactly the versions of a printed plan once ``go_ahead`` says so (None: not
    deleted), never a version registered since."""
    if not go_ahead(plan, dry_run=dry_run, yes=yes, as_json=as_json, action=action):
        return None
    return registry.delete_planned(plan)


def transfer_text(done: int, total: int, seconds: float) -> str:
    """What the bar shows after its percentage: bytes copied of the total, the speed so far,
    and the time left at that speed (click's own ETA waits a second and shows no speed)."""
    text = f"{human_size(done)} of {human_size(total)}"
    if seconds <= 0 or done <= 0:
        return text
    speed = done / seconds
    text += f", {human_size(int(speed))}/s"
    if done < total:
        text += f", {duration((total - done) / speed)} left"
    return text


def duration(seconds: float) -> str:
    """``7s``, ``3:05`` or ``1:02:05``: a countdown, rounded up so it never shows 0s early."""
    whole = max(1, math.ceil(seconds))
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}" if minutes else f"{secs}s"


@contextmanager
def copy_progress(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress(bytes_done, bytes_total)`` callback drawing click's bar on stderr, or None.

    The bar appears only on a terminal (scripts and logs get no control characters) and only
    once the copy is known to be large, so small registrations print nothing extra. click's
    bar already draws the percentage and ETA; the bytes and speed are its item text (no
    progress library needed for one bar).
    """
    if not _stderr_is_terminal():
        yield None
        return
    with ExitStack() as stack:
        bar: ProgressBar[str | None] | None = None
        shown = 0
        started = 0.0

        def report(done: int, total: int) -> None:
            nonlocal bar, shown, started
            if bar is None:
                if total < LARGE_MODEL_BYTES:
                    return
                started = time.monotonic()
                bar = stack.enter_context(
                    click.progressbar(
                        length=total,
                        label=label,
                        file=sys.stderr,
                        show_eta=False,
                        item_show_func=lambda text: text,
                    )
                )
            text = transfer_text(done, total, time.monotonic() - started)
            bar.update(done - shown, current_item=text)
            shown = done

        yield report


# --- commands -------------------------------------------------------------------------------


def show_update(version: ModelVersion, summary: str, as_json: bool) -> None:
    """After a metadata change: the version as JSON for scripts, else a one-line summary."""
    if as_json:
        print_json(dump(version))
    else:
        click.echo(summary)


def open_registry(*, read_only: bool = False, create: bool = False) -> Registry:
    return state(click.get_current_context()).registry(read_only=read_only, create=create)


@command("register")
@click.argument("path", required=False)  # not click.Path: Path("") is "." (the current folder)
@click.option("--name", "name", help="Model name (Azure ML naming rule).")
@click.option(
    "-f",
    "--file",
    "spec_file",
    metavar="MODEL.yml",
    help="Register what an Azure ML v2 model YAML describes (name, version, path, type, "
    "description, tags, properties), as 'az ml model create -f'; instead of PATH and --name.",
)
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="A tag (repeatable).")
@click.option(
    "--property", "properties", multiple=True, metavar="K=V", help="A property (repeatable)."
)
@click.option("--description", help="Free text describing the model.")
@click.option("--framework", help="Model framework, e.g. ScikitLearn, Onnx, PyTorch.")
@click.option("--framework-version", help="Version of the framework (needs --framework).")
@click.option(
    "--child-path",
    "child_paths",
    multiple=True,
    metavar="P",
    help="Keep only this child of a folder model (repeatable; relative to PATH).",
)
@json_option
def register(
    path: str | None,
    name: str | None,
    spec_file: str | None,
    tags: tuple[str, ...],
    properties: tuple[str, ...],
    description: str | None,
    framework: str | None,
    framework_version: str | None,
    child_paths: tuple[str, ...],
    as_json: bool,
) -> None:
    """Register a file or folder as the next version of a model.

    PATH is copied into the store under its own basename; NAME follows Azure ML's naming rule.
    With -f MODEL.yml, the v2 model YAML says all of it; a version it names is taken exactly,
    or refused if not free.
    """
    if spec_file is not None:
        check_spec_file_alone(
            path, name, tags, properties, description, framework, framework_version, child_paths
        )
        from modelstore.v2.load import load_model_spec

        spec = load_model_spec(spec_file)  # a bad file is refused before a registry is made
        registry = open_registry(create=True)
        with copy_progress(f"Copying {spec.path.name}") as progress:
            version = registry.register_spec(spec, progress=progress)
        report_registered(version, as_json)
        return
    if path is None or name is None:
        missing = "argument 'PATH'" if path is None else "option '--name'"
        raise UsageError(
            f"Missing {missing} (or -f MODEL.yml instead of PATH and --name); see "
            f"'{click.get_current_context().command_path} --help'"
        )
    arguments: dict[str, Any] = {
        "tags": parse_pairs(tags, "--tag") or None,
        "properties": parse_pairs(properties, "--property") or None,
        "description": description,
        "framework": framework,
        "framework_version": framework_version,
        "child_paths": list(child_paths) or None,
    }
    from modelstore.registry import Registry

    Registry.check_registration(path, name, **arguments)  # bad input creates no registry
    registry = open_registry(create=True)
    with copy_progress(f"Copying {Path(path).name}") as progress:
        version = registry.register(path, name, progress=progress, **arguments)
    report_registered(version, as_json)


def report_registered(version: ModelVersion, as_json: bool) -> None:
    if as_json:
        print_json(dump(version))
    else:
        click.echo(f"Registered {version.id}  ->  {version.path}")


def check_spec_file_alone(path: str | None, name: str | None, *others: object) -> None:
    """-f MODEL.yml says everything about the model: any other way to say it is refused."""
    given = [what for what, value in (("PATH", path), ("--name", name)) if value is not None]
    if any(others):
        given.append("--tag/--property/--description/--framework/--child-path")
    if given:
        raise UsageError(
            f"-f MODEL.yml and {', '.join(given)} are two ways to describe the model: give "
            "either the YAML file or PATH with --name and options"
        )


@command("list")
@click.argument("name", required=False, shell_complete=complete_name)
@click.option(
    "--tag", "tags", multiple=True, metavar="K | K=V", help="Has tag K (with value V). Repeatable."
)
@click.option(
    "--property",
    "properties",
    multiple=True,
    metavar="K | K=V",
    help="Has property K (with value V). Repeatable.",
)
@click.option("--latest", is_flag=True, help="Only the highest matching version of each name.")
@click.option(
    "--sort",
    type=click.Choice(["name", "created", "size"]),
    default="name",
    show_default=True,
    help="Order: by name (newest version first), newest first, or largest first.",
)
@json_option
def list_(
    name: str | None,
    tags: tuple[str, ...],
    properties: tuple[str, ...],
    latest: bool,
    sort: Literal["name", "created", "size"],
    as_json: bool,
) -> None:
    """List model versions, filtered by name, tags and properties.

    Ordered by name, then newest version first (--sort created: newest first; --sort size:
    largest first); every filter must match. The last line totals the sizes listed.
    'modelstore ls' is the same command.
    """
    if name is not None:
        validate_name(name)
    tag_filters = parse_filters(tags, "--tag")
    property_filters = parse_filters(properties, "--property")
    versions = open_registry(read_only=True).list(
        name=name,
        tags=tag_filters or None,
        properties=property_filters or None,
        latest=latest,
        sort=sort,
    )
    if as_json:
        print_json([dump(version) for version in versions])
        return
    if not versions:
        click.echo("No model versions match.")
        return
    rows = [
        [v.id, v.entry, human_size(v.size), format_created(v), format_pairs(v.tags)]
        for v in versions
    ]
    click.echo(table(["ID", "ENTRY", "SIZE", "CREATED", "TAGS"], rows))
    total = sum(v.size for v in versions)
    click.echo(f"{plural(len(versions), 'version')}, {human_size(total)} in total")


@command("show")
@click.argument("ref", shell_complete=complete_ref)
@json_option
def show(ref: str, as_json: bool) -> None:
    """Show one model version.

    REF is NAME (the latest version), NAME:VERSION, NAME:latest or NAME@ALIAS.
    """
    model_ref = parse_ref(ref)
    version = open_registry(read_only=True).get(model_ref.target, model_ref.version)
    if as_json:
        print_json(dump(version))
    else:
        click.echo(describe_version(version))


@command("path")
@click.argument("ref", shell_complete=complete_ref)
def path(ref: str) -> None:
    """Print the stored path of a model version.

    Only the absolute path of the entry is printed, for scripts. REF is NAME (latest),
    NAME:VERSION, NAME:latest or NAME@ALIAS.
    """
    model_ref = parse_ref(ref)
    click.echo(str(open_registry(read_only=True).path(model_ref.target, model_ref.version)))


@command("tag")
@click.argument("ref", shell_complete=complete_ref)
@click.argument("pairs", nargs=-1, required=True, metavar="K=V...")
@json_option
def tag(ref: str, pairs: tuple[str, ...], as_json: bool) -> None:
    """Add or replace tags of a version.

    Tags are mutable, as in Azure ML. REF without a version tags the latest version.
    """
    model_ref = parse_ref(ref)
    add = parse_pairs(pairs, "tag")
    registry = open_registry()
    change = registry.change_tags(model_ref.target, model_ref.version, add=add)
    after, previous = change.version, change.previous
    for key, value in add.items():
        if key in previous and previous[key] != value:
            replacing = f"Replacing tag {key} -> {previous[key]} with {key} -> {value}"
            click.echo(replacing, err=as_json)
    show_update(after, f"Tagged {after.id}: {format_pairs(after.tags)}", as_json)


@command("untag")
@click.argument("ref", shell_complete=complete_ref)
@click.argument("keys", nargs=-1, required=True, metavar="K...")
@json_option
def untag(ref: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Remove tags of a version.

    Give tag keys; a key the version does not have is reported and skipped.
    """
    model_ref = parse_ref(ref)
    registry = open_registry()
    change = registry.change_tags(model_ref.target, model_ref.version, remove=list(keys))
    after = change.version
    for key in keys:
        if key not in change.previous:
            hint = " (untag takes keys only, e.g. 'team', not 'team=fraud')" if "=" in key else ""
            click.echo(f"Tag with key {key} not found.{hint}", err=True)
    remaining = format_pairs(after.tags) or "no tags left"
    show_update(after, f"Untagged {after.id}: {remaining}", as_json)


@command("property")
@click.argument("ref", shell_complete=complete_ref)
@click.argument("pairs", nargs=-1, required=True, metavar="K=V...")
@json_option
def property_(ref: str, pairs: tuple[str, ...], as_json: bool) -> None:
    """Add properties to a version (add-only).

    As in Azure ML, an existing property cannot be changed: the whole call is refused
    (giving a property the value it already has is not a change, and is accepted).
    """
    model_ref = parse_ref(ref)
    properties = parse_pairs(pairs, "property")
    registry = open_registry()
    after = registry.add_properties(model_ref.target, model_ref.version, properties)
    show_update(after, f"Added properties to {after.id}: {format_pairs(after.properties)}", as_json)


@command("describe")
@click.argument("ref", shell_complete=complete_ref)
@click.argument("text")
@json_option
def describe(ref: str, text: str, as_json: bool) -> None:
    """Set the description of a version."""
    model_ref = parse_ref(ref)
    registry = open_registry()
    after = registry.set_description(model_ref.target, model_ref.version, text)
    show_update(after, f"Described {after.id}: {after.description}", as_json)


def _plan_text(versions: Sequence[ModelVersion], size: int) -> str:
    ids = ", ".join(version.id for version in versions)
    return f"{ids} ({plural(len(versions), 'version')}, {human_size(size)})"


@command("delete")
@click.argument("ref", shell_complete=complete_ref)
@click.option("--all-versions", is_flag=True, help="Delete every version of NAME.")
@click.option("--dry-run", is_flag=True, help="Only print what would be deleted.")
@click.option(
    "--yes", is_flag=True, help="Do not ask for confirmation (needed without a terminal)."
)
@click.option(
    "--force", is_flag=True, help="Also delete versions aliases point at, removing the aliases."
)
@json_option
def delete(
    ref: str, all_versions: bool, dry_run: bool, yes: bool, force: bool, as_json: bool
) -> None:
    """Delete a version, or every version of a name.

    REF is NAME:VERSION (or NAME:latest, NAME@ALIAS); NAME alone needs --all-versions. The plan
    is printed first and confirmed on a terminal (--yes otherwise). Version numbers are never
    reused. A version an alias points at is kept unless --force, which removes the alias too.
    """
    model_ref = parse_ref(ref)
    has_version = model_ref.explicit
    if all_versions and has_version:
        raise InvalidArgumentError(
            f"--all-versions deletes every version of a name: write 'delete {model_ref.name} "
            f"--all-versions', or drop --all-versions to delete {ref} only"
        )
    if not all_versions and not has_version:
        raise InvalidArgumentError(
            f"'delete {ref}' does not say which version: write {ref}:VERSION (or {ref}:latest) "
            "to delete one version, or pass --all-versions to delete every version"
        )
    registry = open_registry()
    version = None if all_versions else registry.get(model_ref.target, model_ref.version).version
    plan = registry.plan_delete(model_ref.name, version, force=force)
    click.echo(f"Will delete {_plan_text(plan.versions, plan.bytes)}", err=as_json)
    if plan.aliases:
        click.echo(f"and remove {_aliases_text(plan.aliases)}", err=as_json)
    done = delete_confirmed(
        registry, plan, dry_run=dry_run, yes=yes, as_json=as_json, action="delete"
    )
    if done is None:
        return
    if as_json:
        print_json(dump(done))
    else:
        click.echo(f"Deleted {_plan_text(done.versions, done.bytes)}")
        if done.aliases:
            click.echo(f"Removed {_aliases_text(done.aliases)}")


def _aliases_text(aliases: Sequence[Alias]) -> str:
    shown = ", ".join(f"{a.name}@{a.alias} (-> {a.name}:{a.version})" for a in aliases)
    return f"alias{'' if len(aliases) == 1 else 'es'} {shown}"


@command("verify")
@click.argument("ref", required=False, shell_complete=complete_ref)
@click.option(
    "--store",
    "check_store",
    is_flag=True,
    help="Check the shared model store's blobs (MODELSTORE_STORE_URL), not this home's cache.",
)
@json_option
def verify(ref: str | None, check_store: bool, as_json: bool) -> None:
    """Check stored files against their checksums.

    Compares with the sizes and sha256 recorded at registration. No REF: every version;
    NAME: every version of NAME; NAME:VERSION or NAME:latest: that one.
    Exits 1, listing every changed, missing or extra file, when anything does not match.
    With a shared model store, versions not cached in this home are counted, not checked;
    --store checks the store's copy of every file instead.
    """
    model_ref = parse_ref(ref) if ref is not None else None
    registry = open_registry(read_only=True)
    name = model_ref.name if model_ref is not None else None
    version: int | None = None
    if model_ref is not None and model_ref.explicit:  # NAME:latest, NAME@ALIAS: one version
        version = registry.get(model_ref.target, model_ref.version).version
    report = registry.verify(name, version, store=check_store)
    if as_json:
        print_json(dump(report))
    else:
        for check in report.versions:
            for label, files in (
                ("changed", check.changed),
                ("missing", check.missing),
                ("extra", check.extra),
                ("foreign", check.foreign_entries),
            ):
                for file in files:
                    click.echo(f"{check.id}  {label:<7}  {file}")
    damaged = [check.id for check in report.versions if not check.ok]
    if damaged:
        raise IntegrityError(
            f"{len(damaged)} of {len(report.versions)} versions do not match what was "
            f"registered ({', '.join(damaged)}): re-register them from their source, or delete "
            "them (a 'foreign' item is a second item in a version folder: remove it)"
        )
    if not as_json:
        uncached = sum(not check.cached for check in report.versions)
        checked = len(report.versions) - uncached
        where = " in the shared store" if check_store else ""
        if uncached and not checked:  # nothing here to re-hash: say so, not "0 verified"
            click.echo(
                f"OK: this home caches none of the {plural(uncached, 'version')} asked for, so "
                "nothing was re-hashed; --store checks the shared store's copies."
            )
        else:
            tail = f" ({uncached} not cached in this home)" if uncached else ""
            click.echo(
                f"OK: {plural(checked, 'version')} verified{where}, every file matches{tail}."
            )


FOREIGN_KINDS = ("orphan_folder", "stray_item")
LEAVE_FOREIGN = (
    "leave it (never deleted): --adopt-foreign records a version folder as it is, "
    "--move-aside-foreign moves it into .modelstore/foreign/"
)
"""What doctor does with a foreign item it was not told to adopt or move aside (the library
words it in Python: ``registry.doctor.LEAVE_FOREIGN``)."""


@command("doctor")
@click.option("--repair", is_flag=True, help="Clean up what interrupted work left behind.")
@click.option(
    "--adopt-foreign",
    is_flag=True,
    help="With --repair: record version folders the catalog does not know, as they are.",
)
@click.option(
    "--move-aside-foreign",
    is_flag=True,
    help="With --repair: move items the catalog does not know into .modelstore/foreign/.",
)
@click.option(
    "--rebuild-catalog",
    is_flag=True,
    help="Recreate a missing, empty or damaged catalog from the azureml-models tree.",
)
@click.option("--dry-run", is_flag=True, help="With --rebuild-catalog: only print the plan.")
@click.option("--yes", is_flag=True, help="With --rebuild-catalog: do not ask for confirmation.")
@json_option
def doctor(
    repair: bool,
    adopt_foreign: bool,
    move_aside_foreign: bool,
    rebuild_catalog: bool,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Find and repair leftovers of interrupted work.

    Finds what killed registrations and deletions left behind; --repair cleans it up. Items in
    the tree the catalog does not know are never deleted: they are listed, and adopted or moved
    aside only with --adopt-foreign / --move-aside-foreign. Exits 1 when something was found
    and not repaired. Work under way (its process alive, on any home sharing the catalog) is
    listed and left alone (exit 0); work whose process is gone is settled from any home.
    """
    if rebuild_catalog:
        if repair or adopt_foreign or move_aside_foreign:
            raise InvalidArgumentError(
                "--rebuild-catalog runs alone: rebuild first, then run 'modelstore doctor'"
            )
        _rebuild(dry_run, yes, as_json)
        return
    if adopt_foreign and move_aside_foreign:
        raise InvalidArgumentError(
            "--adopt-foreign and --move-aside-foreign exclude each other: choose one"
        )
    if (adopt_foreign or move_aside_foreign) and not repair:
        flag = "--adopt-foreign" if adopt_foreign else "--move-aside-foreign"
        raise InvalidArgumentError(f"{flag} acts only with --repair: add --repair")
    if dry_run or yes:
        raise InvalidArgumentError("--dry-run and --yes go with --rebuild-catalog")
    foreign: ForeignAction = (
        "adopt" if adopt_foreign else "move-aside" if move_aside_foreign else "report"
    )
    report = open_registry().doctor(repair=repair, foreign=foreign)
    if as_json:
        print_json(dump(report))
    elif not report.findings:
        click.echo("Nothing to repair: the catalog and the tree agree.")
    from modelstore.registry.doctor import LEAVE_FOREIGN as LEAVE_FOREIGN_IN_PYTHON

    for finding in [] if as_json else report.findings:
        status = "repaired" if finding.repaired else "found"
        action = LEAVE_FOREIGN if finding.action == LEAVE_FOREIGN_IN_PYTHON else finding.action
        click.echo(f"[{status}] {finding.subject}: {finding.detail} -> {action}")
    unrepaired = [finding for finding in report.findings if not finding.repaired]
    elsewhere = [finding for finding in unrepaired if finding.kind == "other_home_work"]
    live = [finding for finding in unrepaired if finding.kind == "work_in_progress"]
    unrepaired = [finding for finding in unrepaired if finding not in elsewhere + live]
    if live and not as_json:  # work under way, not a problem: a note, not a failure
        click.echo(
            f"{plural(len(live), 'operation')} under way (listed above) left to "
            f"{'its process' if len(live) == 1 else 'their processes'}."
        )
    if elsewhere and not as_json:  # not this home's to repair: a note, not a failure
        click.echo(
            f"{plural(len(elsewhere), 'operation')} of other homes (listed above) left to the "
            "home that started it: only its doctor finishes or rolls it back."
        )
    foreign_left = [finding for finding in unrepaired if finding.kind in FOREIGN_KINDS]
    if len(foreign_left) < len(unrepaired):
        raise ModelstoreError(
            f"{plural(len(unrepaired) - len(foreign_left), 'problem')} found (listed above): "
            "run 'modelstore doctor --repair' to fix them"
        )
    if foreign_left:
        raise ModelstoreError(
            f"{plural(len(foreign_left), 'item')} in the tree the catalog does not know (listed "
            "above) left in place, never deleted: run 'modelstore doctor --repair "
            "--adopt-foreign' to record version folders as they are, or --move-aside-foreign "
            "to move them into .modelstore/foreign/"
        )
    repaired = [finding for finding in report.findings if finding.repaired]
    if repaired and not as_json:
        click.echo(f"Repaired {plural(len(repaired), 'problem')}.")


def _rebuild(dry_run: bool, yes: bool, as_json: bool) -> None:
    from modelstore.registry import Registry

    home = state(click.get_current_context()).home
    plan = Registry.plan_rebuild_catalog(home)
    out = as_json  # with --json the plan text goes to stderr, the JSON to stdout
    click.echo(f"Rebuild plan: {plan.problem}.", err=out)
    size = sum(v.size for v in plan.versions)
    click.echo(
        f"Will record {plural(len(plan.versions), 'version')} found in the tree "
        f"({human_size(size)}), hashing every file:",
        err=out,
    )
    for version in plan.versions:
        click.echo(
            f"  {version.id}  {version.entry}  {plural(version.file_count, 'file')}, "
            f"{human_size(version.size)}",
            err=out,
        )
    for item in plan.skipped:
        click.echo(f"  skipped (left in place): {item}", err=out)
    click.echo("Lost (only the old catalog held them):", err=out)
    for lost in plan.lost:
        click.echo(f"  - {lost}", err=out)
    click.echo(
        "The old catalog files are moved into .modelstore/lost-catalogs/, never deleted.",
        err=out,
    )
    if not go_ahead(
        plan,
        dry_run=dry_run,
        yes=yes,
        as_json=as_json,
        action="rebuild the catalog",
        verb="rebuild",
        question="Rebuild the catalog?",
        nothing="nothing was changed",
    ):
        return
    done = Registry.rebuild_catalog(plan)
    if as_json:
        print_json(dump(done))
        return
    moved = f"; the old catalog is in {done.moved_to}" if done.moved_to else ""
    click.echo(
        f"Rebuilt the catalog {done.catalog} with {plural(len(done.versions), 'version')}{moved}."
    )


__all__ = [
    "delete",
    "describe",
    "doctor",
    "list_",
    "path",
    "property_",
    "register",
    "show",
    "tag",
    "untag",
    "verify",
]
