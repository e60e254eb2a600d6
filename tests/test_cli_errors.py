"""How library errors (which speak Python) become the command line's one ``Error:`` line (which
speaks flags) and its exit code."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

import modelstore
from modelstore import errors
from modelstore.cli.errors import ADVICE, error_line, error_text, exit_code
from modelstore.errors import (
    CatalogDamagedError,
    CatalogLostError,
    DeploymentRefusedError,
    EntryScriptError,
    InvalidArgumentError,
    InvalidRefError,
    ModelNotFoundError,
    ModelstoreError,
    PropertyImmutableError,
    RegistryNotFoundError,
    Remedy,
    StorageError,
)

PACKAGE = Path(modelstore.__file__).parent
CLI_WORDS = re.compile(r"`modelstore |(?<![\w-])--[a-z]")
"""A command (`modelstore doctor`) or a flag (--force, --home) in a text."""


def test_every_remedy_has_command_line_advice_and_it_speaks_flags_not_python() -> None:
    assert set(ADVICE) == set(get_args(Remedy))
    for remedy in get_args(Remedy):
        text = ADVICE[remedy](ModelstoreError("x", hint="python hint", remedy=remedy))
        assert text[0] in ";. ", remedy  # a tail after the message, with its separator
        assert "=True" not in text and "Registry" not in text and "home=" not in text, remedy


def test_the_command_line_words_the_advice_in_flags_instead_of_the_python_hint() -> None:
    refused = DeploymentRefusedError(
        "the app root app is not empty (it holds 'score.py')",
        hint="choose a new or empty folder, or pass force=True to replace only "
        "app/azureml-models (nothing was written)",
        remedy="force",
        app_root="app",
        models_dir="app/azureml-models",
    )
    assert str(refused) == (
        "the app root app is not empty (it holds 'score.py'); choose a new or empty folder, or "
        "pass force=True to replace only app/azureml-models (nothing was written)"
    )
    assert error_line(refused) == (
        "Error: the app root app is not empty (it holds 'score.py'); choose a new or empty "
        "folder, or pass --force to replace only app/azureml-models (nothing was written)"
    )
    assert error_text(refused) == error_line(refused).removeprefix("Error: ")


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            CatalogLostError(
                "the catalog c is missing; nothing was changed", catalog="c", versions=2
            ),
            "Error: the catalog c is missing; nothing was changed. Run `modelstore doctor "
            "--rebuild-catalog` to recreate the catalog from the tree, or restore it from a backup",
        ),
        (
            CatalogDamagedError(
                "the catalog c is damaged; nothing was changed", catalog="c", problems=[]
            ),
            "Error: the catalog c is damaged; nothing was changed. Restore it from a backup, or "
            "run `modelstore doctor --rebuild-catalog` to recreate it from the azureml-models tree",
        ),
        (
            RegistryNotFoundError("there is no modelstore registry at h", home="h", hint="x"),
            "Error: there is no modelstore registry at h; check --home / MODELSTORE_HOME, or "
            "register a model to create one",
        ),
        (
            ModelNotFoundError(
                "model 'm' is not registered; the registry is empty", hint="x", remedy="register"
            ),
            "Error: model 'm' is not registered; the registry is empty (register one with "
            "`modelstore register`)",
        ),
        (
            StorageError("the registry home h is read-only", hint="x", remedy="read_only_home"),
            "Error: the registry home h is read-only; writing commands need a writable home. "
            "Reading works there: list, show, path, verify",
        ),
    ],
    ids=["lost", "damaged", "no-registry", "empty", "read-only"],
)
def test_each_remedy_becomes_its_command_line_advice(error: ModelstoreError, line: str) -> None:
    assert error_line(error) == line


def test_an_error_without_a_remedy_keeps_its_hint_and_drops_the_sdk_prefix() -> None:
    assert error_line(InvalidArgumentError("bad", hint="do this")) == "Error: bad; do this"
    assert error_line(ModelstoreError("plain")) == "Error: plain"
    immutable = PropertyImmutableError(
        "Error, properties are immutable, the following keys cannot be added/modified: a",
        name="m",
        version=1,
        keys=["a"],
    )
    assert error_line(immutable).startswith("Error: properties are immutable")
    assert (immutable.name, immutable.version, immutable.keys) == ("m", 1, ["a"])


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ModelstoreError("x"), 1),
        (ModelNotFoundError("x"), 1),
        (CatalogLostError("x", catalog="c", versions=1), 1),
        (InvalidArgumentError("x"), 2),
        (InvalidRefError("x"), 2),
        (DeploymentRefusedError("x"), 2),
        (EntryScriptError("x"), 3),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_the_exit_code_comes_from_the_class(error: ModelstoreError, code: int) -> None:
    assert exit_code(error) == code


def test_library_errors_carry_no_exit_code() -> None:
    classes = [c for c in vars(errors).values() if isinstance(c, type)]
    assert ModelstoreError in classes
    assert not [c.__name__ for c in classes if "exit_code" in vars(c)]


def _error_texts(path: Path) -> list[tuple[int, str]]:
    """The string parts of every ``...Error(...)`` call (what an error's message and hint say)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if not name.endswith("Error"):
            continue
        for argument in [*node.args, *(k.value for k in node.keywords)]:
            for part in ast.walk(argument):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    found.append((part.lineno, part.value))
    return found


def test_library_errors_name_no_command_line_flags_or_commands() -> None:
    """Flags and commands are the CLI's words (``modelstore.cli.errors``); the server module,
    which only ``modelstore serve`` starts, may name its own flags."""
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}: {text!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "cli" not in path.relative_to(PACKAGE).parts
        and path.relative_to(PACKAGE) != Path("serving/server.py")
        for line, text in _error_texts(path)
        if CLI_WORDS.search(text)
    ]
    assert offenders == []


def test_turning_an_error_into_a_line_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from modelstore.cli.errors import error_line\n"
        "from modelstore.errors import CatalogLostError\n"
        "error_line(CatalogLostError('x', catalog='c', versions=1))\n"
        "print(sorted(m for m in ('sqlalchemy', 'pydantic', 'flask') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "[]\n"
