"""Aliases (NAME@ALIAS) and their history, delete with aliases, prune, and list's sort order."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import child_command, make_file, snapshot

from modelstore import Registry
from modelstore.cli.errors import error_line
from modelstore.errors import (
    AliasInUseError,
    AliasNotFoundError,
    InvalidAliasError,
    InvalidArgumentError,
    InvalidRefError,
    ModelNotFoundError,
    StorageError,
    UsageError,
)
from modelstore.layout import validate_alias
from modelstore.refs import ModelRef, parse_ref


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    opened = Registry(tmp_path / "home")
    for content in (b"one", b"two-2", b"three-33"):
        opened.register(make_file(tmp_path / "src" / "model.pkl", content), "m")
    yield opened
    opened.close()


def _state(registry: Registry) -> object:
    """Everything a refused operation must leave as it was: files, versions, aliases, history."""
    return (
        snapshot(registry.home),
        [(v.id, v.sha256) for v in registry.list()],
        registry.aliases(),
        registry.alias_history("m"),
    )


# --- the alias rule and the REF grammar --------------------------------------------------------


@pytest.mark.parametrize("alias", ["champion", "Prod", "a", "blue-green_2", "x" * 64])
def test_valid_aliases_are_accepted(alias: str) -> None:
    assert validate_alias(alias) == alias


@pytest.mark.parametrize(
    "alias", ["", "1st", "42", "-a", "_a", "a.b", "a b", "a:b", "a@b", "x" * 65, "é", "a\n"]
)
def test_invalid_aliases_are_refused_naming_the_rule(alias: str) -> None:
    with pytest.raises(InvalidAliasError, match="an alias starts with a letter"):
        validate_alias(alias)


@pytest.mark.parametrize("alias", ["latest", "LATEST", "Latest"])
def test_latest_is_a_reserved_alias(alias: str) -> None:
    with pytest.raises(InvalidAliasError, match="is reserved"):
        validate_alias(alias)


def test_name_at_alias_is_a_ref() -> None:
    ref = parse_ref("m@champion")
    assert ref == ModelRef("m", None, "champion", explicit=True)  # one version, not all
    assert (ref.target, str(ref)) == ("m@champion", "m@champion")
    assert parse_ref("m:3").target == "m"


def test_name_at_latest_is_the_latest_version_as_in_azure_ml_v2(registry: Registry) -> None:
    assert parse_ref("m@latest") == ModelRef("m", explicit=True)  # as NAME:latest
    registry.set_alias("m:1", "champion")
    assert registry.get("m@latest").version == 3
    assert registry.path("m@latest") == registry.path("m", 3)


@pytest.mark.parametrize("text", ["m@champion:3", "m@", "m@1", "@champion", "m@LATEST"])
def test_malformed_alias_refs_are_bad_input(text: str) -> None:
    with pytest.raises(UsageError):
        parse_ref(text)
    with pytest.raises((InvalidRefError, InvalidAliasError, ValueError)):
        parse_ref(text)


# --- set, move, remove, history ----------------------------------------------------------------


def test_an_alias_resolves_everywhere_a_name_is_accepted(registry: Registry) -> None:
    registry.set_alias("m:2", "champion")
    assert registry.get("m@champion").version == 2
    assert registry.path("m@champion") == registry.path("m", 2)
    assert [v.version for v in registry.verify("m@champion").versions] == [2]
    assert [v.version for v in registry.plan_delete("m@champion", force=True).versions] == [2]


def test_metadata_updates_through_an_alias_change_the_version_it_points_at(
    registry: Registry,
) -> None:
    registry.set_alias("m:2", "champion")
    change = registry.change_tags("m@champion", None, add={"stage": "prod"})
    assert (change.version.version, change.previous) == (2, {})
    registry.update_tags("m@champion", None, remove=["stage"])
    registry.add_properties("m@champion", None, {"owner": "ds-team"})
    registry.set_description("m@latest", None, "the newest")
    assert registry.get("m", 2).properties == {"owner": "ds-team"}
    assert registry.get("m", 2).tags == {}
    assert registry.get("m", 3).description == "the newest"
    assert sorted((v.version, v.properties) for v in registry.list("m") if v.version != 2) == [
        (1, {}),
        (3, {}),
    ]


def test_metadata_updates_through_an_unknown_alias_or_with_a_version_too_change_nothing(
    registry: Registry,
) -> None:
    registry.set_alias("m:1", "champion")
    before = [(v.version, v.tags, v.properties, v.description) for v in registry.list("m")]
    with pytest.raises(AliasNotFoundError):
        registry.change_tags("m@prod", None, add={"a": "b"})
    with pytest.raises(InvalidArgumentError, match="not both"):
        registry.set_description("m@champion", 2, "x")
    with pytest.raises(AliasNotFoundError):
        registry.add_properties("m@prod", None, {"a": "b"})
    after = [(v.version, v.tags, v.properties, v.description) for v in registry.list("m")]
    assert after == before


def test_deploying_an_alias_lays_out_the_version_it_points_at(
    registry: Registry, tmp_path: Path
) -> None:
    registry.set_alias("m", "champion", 1)
    deployment = registry.deploy(["m@champion"], tmp_path / "app")
    assert (tmp_path / "app" / "azureml-models" / "m" / "1" / "model.pkl").read_bytes() == b"one"
    assert [(m.name, m.version) for m in deployment.models] == [("m", 1)]


def test_moving_an_alias_records_every_move_with_who_and_when(registry: Registry) -> None:
    first = registry.set_alias("m:1", "champion")
    second = registry.set_alias("m", "champion")  # NAME: the latest version
    third = registry.set_alias("m@champion", "prod")  # another alias as the REF
    removed = registry.remove_alias("m", "champion")
    assert [(m.alias, m.from_version, m.to_version) for m in (first, second, third, removed)] == [
        ("champion", None, 1),
        ("champion", 1, 3),
        ("prod", None, 3),
        ("champion", 3, None),
    ]
    history = registry.alias_history("m")
    assert history == [first, second, third, removed]
    assert all("@" in m.by and m.at.tzinfo is not None for m in history)
    assert registry.aliases() == [registry.aliases("m")[0]]
    assert [(a.alias, a.version) for a in registry.aliases()] == [("prod", 3)]


def test_setting_an_alias_to_where_it_points_is_no_move(registry: Registry) -> None:
    registry.set_alias("m:2", "champion")
    again = registry.set_alias("m:2", "champion")
    assert (again.from_version, again.to_version) == (2, 2)
    assert len(registry.alias_history("m")) == 1


def test_aliases_are_per_name_and_case_sensitive(registry: Registry, tmp_path: Path) -> None:
    registry.register(make_file(tmp_path / "other.pkl"), "other")
    registry.set_alias("m:1", "champion")
    registry.set_alias("m:2", "Champion")
    registry.set_alias("other:1", "champion")
    assert registry.get("m@Champion").version == 2
    assert registry.get("other@champion").id == "other:1"


def test_an_unknown_alias_is_not_found_naming_the_aliases_there_are(registry: Registry) -> None:
    registry.set_alias("m:1", "champion")
    with pytest.raises(AliasNotFoundError, match="has no alias 'prod'; its aliases are champion"):
        registry.path("m@prod")
    with pytest.raises(AliasNotFoundError) as raised:
        registry.get("m@prod")
    assert (raised.value.name, raised.value.alias) == ("m", "prod")
    with pytest.raises(ModelNotFoundError, match="'nobody' is not registered"):
        registry.get("nobody@prod")


def test_a_removed_alias_is_not_found_saying_where_it_pointed_and_who_removed_it(
    registry: Registry,
) -> None:
    registry.set_alias("m:1", "champion")
    registry.set_alias("m:2", "prod")
    registry.delete("m", 1, force=True)  # removes champion with the version
    with pytest.raises(AliasNotFoundError) as raised:
        registry.path("m@champion")
    message = str(raised.value)
    assert "has no alias 'champion'; it pointed at m:1 until " in message
    assert " removed it on " in message and "UTC; its aliases are prod;" in message
    registry.set_alias("m:3", "champion")
    registry.remove_alias("m", "prod")
    registry.set_alias("m:2", "prod")  # back again: found, no history in the way
    assert registry.get("m@prod").version == 2


def test_alias_refusals_change_nothing(registry: Registry) -> None:
    registry.set_alias("m:1", "champion")
    before = _state(registry)
    with pytest.raises(ModelNotFoundError):
        registry.set_alias("m:9", "champion")
    with pytest.raises(InvalidAliasError):
        registry.set_alias("m:2", "latest")
    with pytest.raises(InvalidArgumentError, match="not both"):
        registry.set_alias("m:2", "champion", 3)
    with pytest.raises(AliasNotFoundError):
        registry.remove_alias("m", "prod")
    with pytest.raises(InvalidArgumentError, match="not both"):
        registry.get("m@champion", 2)
    assert _state(registry) == before


def test_concurrent_alias_moves_from_processes_all_land_in_one_chain(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Registry(home) as registry:
        for index in range(8):
            registry.register(make_file(tmp_path / "src" / "m.pkl", b"v%d" % index), "m")
    flag = tmp_path / "go"
    plans = ["1,2,3", "4,5,6", "7,8,1", "2,4,6"]  # every process moves it 3 times
    env = {k: v for k, v in os.environ.items() if k != "MODELSTORE_DB_URL"}
    children = [
        subprocess.Popen(
            child_command("set_alias_repeatedly", str(home), "m", "champion", plan, str(flag)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for plan in plans
    ]
    flag.touch()
    made = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0 and err == "", err
        made.extend(json.loads(out))
    with Registry(home) as registry:
        history = registry.alias_history("m")
        final = registry.get("m@champion").version
    moves = [m for m in made if m["from_version"] != m["to_version"]]
    assert len(history) == len(moves)  # every move made is in the history, nothing else
    assert history[0].from_version is None
    for previous, current in itertools.pairwise(history):
        assert current.from_version == previous.to_version  # serialised: a chain
    assert history[-1].to_version == final  # the last move wins


# --- delete and aliases ------------------------------------------------------------------------


def test_deleting_an_aliased_version_is_refused_in_one_line_naming_the_alias(
    registry: Registry,
) -> None:
    registry.set_alias("m:3", "champion")
    before = _state(registry)
    with pytest.raises(AliasInUseError) as raised:
        registry.delete("m", 3)
    assert str(raised.value) == (
        "m:3 is what alias 'champion' points at; move or remove the alias first "
        "(Registry.remove_alias('m', 'champion')), or delete with force=True, which removes the "
        "alias too"
    )
    assert (raised.value.name, raised.value.aliases) == ("m", {"champion": 3})
    assert error_line(raised.value) == (
        "Error: m:3 is what alias 'champion' points at; move or remove the alias first "
        "(modelstore alias rm m champion), or pass --force to delete it and remove the alias"
    )
    with pytest.raises(AliasInUseError):
        registry.plan_delete("m")
    with pytest.raises(AliasInUseError):
        registry.delete("m")  # every version
    assert _state(registry) == before


def test_forced_delete_removes_the_alias_and_records_it(registry: Registry) -> None:
    registry.set_alias("m:3", "champion")
    registry.set_alias("m:1", "old")
    plan = registry.plan_delete("m", 3, force=True)
    assert [(a.alias, a.version) for a in plan.aliases] == [("champion", 3)]
    done = registry.delete_planned(plan)
    assert [(a.alias, a.version) for a in done.aliases] == [("champion", 3)]
    assert [(a.alias, a.version) for a in registry.aliases("m")] == [("old", 1)]
    last = registry.alias_history("m")[-1]
    assert (last.alias, last.from_version, last.to_version) == ("champion", 3, None)
    assert registry.versions("m") == [1, 2]
    assert [a.alias for a in registry.delete("m", 1, force=True).aliases] == ["old"]


def test_an_alias_set_after_the_plan_was_shown_refuses_the_planned_delete(
    registry: Registry,
) -> None:
    plan = registry.plan_delete("m", 2)
    registry.set_alias("m:2", "champion")
    before = _state(registry)
    with pytest.raises(AliasInUseError):
        registry.delete_planned(plan)
    assert _state(registry) == before


def test_a_forced_delete_that_fails_puts_the_alias_back_with_its_version(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.set_alias("m:3", "champion")

    def fail(*args: object, **kwargs: object) -> None:
        raise StorageError("injected failure")

    monkeypatch.setattr(registry._store, "unpublish", fail)
    with pytest.raises(StorageError, match="injected failure"):
        registry.delete("m", 3, force=True)
    monkeypatch.undo()
    assert registry.get("m@champion").version == 3
    moves = [(m.from_version, m.to_version) for m in registry.alias_history("m")]
    assert moves == [(None, 3), (3, None), (None, 3)]


def test_deleting_versions_no_alias_points_at_is_unaffected(registry: Registry) -> None:
    registry.set_alias("m:3", "champion")
    assert [v.version for v in registry.delete("m", 1).versions] == [1]
    assert registry.delete("m", 2).aliases == []


# --- prune -------------------------------------------------------------------------------------


def test_prune_plans_all_but_the_newest_versions_keeping_aliased_ones(
    registry: Registry, tmp_path: Path
) -> None:
    registry.register(make_file(tmp_path / "src" / "model.pkl", b"four"), "m")
    registry.set_alias("m:1", "baseline")
    before = _state(registry)
    plan = registry.plan_prune("m", 2)
    assert [v.id for v in plan.versions] == ["m:2"]
    assert plan.bytes == len(b"two-2")
    assert [(a.alias, a.version) for a in plan.kept] == [("baseline", 1)]
    assert registry.prune("m", 2, dry_run=True) == plan
    assert _state(registry) == before
    done = registry.prune("m", 2)
    assert ([v.id for v in done.versions], done.dry_run) == (["m:2"], False)
    assert registry.versions("m") == [1, 3, 4]


def test_prune_with_nothing_beyond_keep_deletes_nothing(registry: Registry) -> None:
    assert registry.prune("m", 3).versions == []
    assert registry.prune("m", 10).versions == []
    assert registry.versions("m") == [1, 2, 3]


def test_prune_keep_zero_deletes_every_version_no_alias_points_at(registry: Registry) -> None:
    registry.set_alias("m:2", "champion")
    assert [v.id for v in registry.prune("m", 0).versions] == ["m:3", "m:1"]
    assert registry.versions("m") == [2]


@pytest.mark.parametrize("keep", [-1, "2", 1.5, None])
def test_prune_refuses_a_bad_keep(registry: Registry, keep: object) -> None:
    with pytest.raises(InvalidArgumentError, match="keep must be a whole number"):
        registry.plan_prune("m", keep)  # type: ignore[arg-type]


def test_prune_of_an_unknown_name_is_not_found(registry: Registry) -> None:
    with pytest.raises(ModelNotFoundError, match="'nobody' is not registered"):
        registry.prune("nobody", 1)


# --- list order --------------------------------------------------------------------------------


def test_list_sorts_by_size_largest_first_and_by_created_newest_first(
    registry: Registry, tmp_path: Path
) -> None:
    registry.register(make_file(tmp_path / "src" / "a.pkl", b"a" * 100), "a")
    assert [v.id for v in registry.list(sort="size")] == ["a:1", "m:3", "m:2", "m:1"]
    assert [v.id for v in registry.list(sort="created")] == ["a:1", "m:3", "m:2", "m:1"]
    assert [v.id for v in registry.list(sort="name")] == ["a:1", "m:3", "m:2", "m:1"]
    registry.register(make_file(tmp_path / "src" / "m.pkl", b"x"), "m")
    assert registry.list(sort="created")[0].id == "m:4"
    assert [v.id for v in registry.list(sort="size")][-1] == "m:4"
    with pytest.raises(InvalidArgumentError, match="cannot sort by 'age'"):
        registry.list(sort="age")  # type: ignore[arg-type]


def test_the_alias_tables_are_in_the_catalog_file(registry: Registry) -> None:
    registry.set_alias("m:2", "champion")
    connection = sqlite3.connect(registry.home / "registry.db")
    try:
        rows = connection.execute("SELECT name, alias, version FROM model_aliases").fetchall()
        moves = connection.execute("SELECT alias, from_version, to_version FROM alias_history")
        assert (rows, moves.fetchall()) == ([("m", "champion", 2)], [("champion", None, 2)])
    finally:
        connection.close()
