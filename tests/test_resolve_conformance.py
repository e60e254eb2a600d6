"""Every case of get_model_path in the SDK's local mode (docs/get_model_path.md).

Each case lays out real folders and checks the exact string returned, or the modelstore error
class and the SDK's message text it must start with. Every case runs with a relative models root
(``AML_APP_ROOT`` unset: answers are relative) and an absolute one (``AML_APP_ROOT`` set).
``tests/test_aml_sdk_equivalence.py`` runs the same CASES through the real azureml-core.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy
import pytest

from modelstore import get_model_path
from modelstore.errors import BadArgumentTypeError, ModelLayoutError, ModelNotFoundError

NOT_FOUND = (
    "Model {name} not found in cache at {M} or in current working directory {cwd}. "
    "For more info, set logging level to DEBUG."
)

ERROR_CLASSES: dict[str, type[Exception]] = {
    "not-found": ModelNotFoundError,
    "layout": ModelLayoutError,
    "argument": BadArgumentTypeError,
}


@dataclass(frozen=True)
class Ok:
    """The exact string returned; ``{M}`` is the models root as the SDK spells it."""

    template: str


@dataclass(frozen=True)
class Err:
    """A failure: modelstore's kind, the SDK's exception class name and its message text."""

    kind: str
    sdk_class: str
    template: str
    listing_of: str | None = None  # version folder whose os.listdir fills {listing}


@dataclass(frozen=True)
class Case:
    id: str
    layout: tuple[str, ...]  # "M:<path>" under the models root, "C:<path>" under the cwd; "/" = dir
    name: object
    version: object = None
    expect: Ok | Err = field(default_factory=lambda: Ok(""))
    departure: str | None = None  # why modelstore answers differently from the SDK


@dataclass(frozen=True)
class ModelDirCase(Case):
    """A case run with ``AZUREML_MODEL_DIR`` set; ``{M}`` is the models root as the SDK has it."""

    model_dir: str | None = None


ONE = ("M:m/1/model.pkl",)
THREE = ("M:m/1/model.pkl", "M:m/2/model.pkl", "M:m/10/model.pkl")

CASES: list[Case] = [
    # one entry per version folder
    Case("one-file-entry-latest", ONE, "m", None, Ok("{M}/m/1/model.pkl")),
    Case("one-file-entry-explicit", ONE, "m", 1, Ok("{M}/m/1/model.pkl")),
    Case(
        "folder-entry-is-returned-as-the-folder",
        ("M:m/1/model_dir/only.bin",),
        "m",
        None,
        Ok("{M}/m/1/model_dir"),
    ),
    Case(
        "folder-entry-explicit-version",
        ("M:m/3/model_dir/a.txt", "M:m/3/model_dir/sub/b.txt"),
        "m",
        3,
        Ok("{M}/m/3/model_dir"),
    ),
    # numeric max
    Case("numeric-max-not-string-order", THREE, "m", None, Ok("{M}/m/10/model.pkl")),
    Case("requested-version-among-several", THREE, "m", 2, Ok("{M}/m/2/model.pkl")),
    # the one-entry rule
    Case(
        "empty-version-folder-latest",
        ("M:m/1/",),
        "m",
        None,
        Err(
            "layout",
            "WebserviceException",
            "Dir {M}/m/1 can contain only 1 file or folder. Found {listing}",
            "m/1",
        ),
    ),
    Case(
        "empty-version-folder-explicit",
        ("M:m/1/",),
        "m",
        1,
        Err(
            "layout",
            "WebserviceException",
            "Dir {M}/m/1 can contain only 1 file or folder. Found {listing}",
            "m/1",
        ),
    ),
    Case(
        "hidden-file-counts-as-a-second-entry",
        ("M:m/1/model.pkl", "M:m/1/.DS_Store"),
        "m",
        None,
        Err(
            "layout",
            "WebserviceException",
            "Dir {M}/m/1 can contain only 1 file or folder. Found {listing}",
            "m/1",
        ),
    ),
    Case(
        "two-entries-explicit-version",
        ("M:m/2/a.pkl", "M:m/2/b.pkl"),
        "m",
        2,
        Err(
            "layout",
            "WebserviceException",
            "Dir {M}/m/2 can contain only 1 file or folder. Found {listing}",
            "m/2",
        ),
    ),
    # empty name folder
    Case(
        "empty-name-folder-latest",
        ("M:m/",),
        "m",
        None,
        Err("layout", "WebserviceException", "versions is empty"),
    ),
    Case(
        "empty-name-folder-explicit-falls-back-to-cwd",
        ("M:m/", "C:m"),
        "m",
        1,
        Ok("m"),
    ),
    Case(
        "empty-name-folder-explicit-not-found",
        ("M:m/",),
        "m",
        1,
        Err("not-found", "WebserviceException", NOT_FOUND),
    ),
    # non-integer entries in the name folder
    Case(
        "non-integer-version-folder-latest",
        ("M:m/1/model.pkl", "M:m/latest/model.pkl"),
        "m",
        None,
        Err("layout", "ValueError", "invalid literal for int() with base 10: 'latest'"),
    ),
    Case(
        "ds-store-in-name-folder-latest",
        ("M:m/1/model.pkl", "M:m/.DS_Store"),
        "m",
        None,
        Err("layout", "ValueError", "invalid literal for int() with base 10: '.DS_Store'"),
    ),
    Case(
        "non-integer-entry-does-not-affect-an-explicit-version",
        ("M:m/1/model.pkl", "M:m/latest/model.pkl"),
        "m",
        1,
        Ok("{M}/m/1/model.pkl"),
    ),
    Case(
        "zero-padded-version-folder-falls-back-like-the-sdk",
        ("M:m/01/model.pkl", "C:m/"),
        "m",
        None,
        Ok("m"),
    ),
    # the name is a file
    Case(
        "name-is-a-file-latest",
        ("M:m",),
        "m",
        None,
        Err("layout", "NotADirectoryError", "[Errno 20] Not a directory: '{M}/m'"),
    ),
    Case("name-is-a-file-explicit-falls-back-to-cwd", ("M:m", "C:m"), "m", 1, Ok("m")),
    Case(
        "name-is-a-file-explicit-not-found",
        ("M:m",),
        "m",
        1,
        Err("not-found", "WebserviceException", NOT_FOUND),
    ),
    Case(
        "version-folder-is-a-file",
        ("M:m/1",),
        "m",
        None,
        Err("layout", "NotADirectoryError", "[Errno 20] Not a directory: '{M}/m/1'"),
    ),
    # cached name, absent version
    Case("absent-version-falls-back-to-cwd", (*ONE, "C:m/"), "m", 5, Ok("m")),
    Case(
        "absent-version-not-found",
        ONE,
        "m",
        5,
        Err("not-found", "WebserviceException", NOT_FOUND),
    ),
    # the cwd fallback
    Case("not-cached-cwd-file-latest", ("C:m",), "m", None, Ok("m")),
    Case("not-cached-cwd-folder-latest", ("C:m/model.pkl",), "m", None, Ok("m")),
    Case("not-cached-cwd-version-is-ignored", ("C:m",), "m", 7, Ok("m")),
    Case("cache-wins-over-cwd", (*ONE, "C:m"), "m", None, Ok("{M}/m/1/model.pkl")),
    Case("cache-wins-over-cwd-explicit", (*ONE, "C:m"), "m", 1, Ok("{M}/m/1/model.pkl")),
    Case("cwd-wins-when-the-version-is-not-cached", (*ONE, "C:m"), "m", 2, Ok("m")),
    # absent everywhere
    Case(
        "absent-everywhere-latest",
        ("M:other/1/x.pkl",),
        "m",
        None,
        Err("not-found", "ModelNotFoundException", NOT_FOUND),
    ),
    Case(
        "absent-everywhere-explicit",
        ("M:other/1/x.pkl",),
        "m",
        1,
        Err("not-found", "WebserviceException", NOT_FOUND),
    ),
    Case(
        "no-models-root-at-all",
        (),
        "m",
        None,
        Err("not-found", "ModelNotFoundException", NOT_FOUND),
    ),
    # arguments
    Case(
        "model-name-none",
        ONE,
        None,
        None,
        Err("argument", "WebserviceException", "model_name is None"),
    ),
    Case(
        "version-as-string",
        ONE,
        "m",
        "1",
        Err("argument", "WebserviceException", "version should be an int"),
    ),
    Case(
        "version-as-float",
        ONE,
        "m",
        1.0,
        Err("argument", "WebserviceException", "version should be an int"),
    ),
    Case(
        "version-as-numpy-int64",
        ONE,
        "m",
        numpy.int64(1),
        Err("argument", "WebserviceException", "version should be an int"),
    ),
    Case("version-zero-is-looked-up", ("M:m/0/model.pkl",), "m", 0, Ok("{M}/m/0/model.pkl")),
    Case("version-negative-is-looked-up", ("M:m/-1/x.pkl",), "m", -1, Ok("{M}/m/-1/x.pkl")),
    Case(
        "version-true-is-refused",
        ("M:m/True/x.pkl",),
        "m",
        True,
        Err("argument", "WebserviceException", "version should be an int"),
        departure="the SDK accepts bool versions (it looks up .../True); modelstore refuses them",
    ),
    Case(
        "version-false-is-refused",
        ("M:m/False/x.pkl",),
        "m",
        False,
        Err("argument", "WebserviceException", "version should be an int"),
        departure="the SDK accepts bool versions (it looks up .../False); modelstore refuses them",
    ),
    # strings, case, names with separators
    Case("dot-slash-name-is-joined-verbatim", ONE, "./m", None, Ok("{M}/./m/1/model.pkl")),
    Case("trailing-slash-name-is-joined-verbatim", ONE, "m/", None, Ok("{M}/m/1/model.pkl")),
    Case(
        "empty-name-lists-the-models-root-as-versions",
        ONE,
        "",
        None,
        Err("layout", "ValueError", "invalid literal for int() with base 10: 'm'"),
    ),
    Case(
        "dot-dot-name-lists-the-app-root-as-versions",
        ONE,
        "..",
        None,
        Err("layout", "ValueError", "invalid literal for int() with base 10: 'azureml-models'"),
    ),
    Case(
        "names-are-case-sensitive",
        ("M:MyModel/1/model.pkl",),
        "mymodel",
        None,
        Err("not-found", "ModelNotFoundException", NOT_FOUND),
    ),
    Case(
        "slash-name-is-joined-verbatim",
        ("M:a/b/1/model.pkl",),
        "a/b",
        None,
        Ok("{M}/a/b/1/model.pkl"),
    ),
    Case(
        "parent-of-a-slash-name-is-a-bad-version-folder",
        ("M:a/b/1/model.pkl",),
        "a",
        None,
        Err("layout", "ValueError", "invalid literal for int() with base 10: 'b'"),
    ),
    Case(
        "name-with-version-suffix-treats-the-version-folder-as-a-name",
        ONE,
        "m/1",
        None,
        Err("layout", "ValueError", "invalid literal for int() with base 10: 'model.pkl'"),
    ),
    # AZUREML_MODEL_DIR (D2) never turns the SDK's "not found" into an OS or layout error: the
    # SDK ignores the variable. "{M}/m/1" relative is what the SDK's local deployment sets.
    ModelDirCase(
        "entry-file-name-under-a-single-form-model-dir-is-not-found",
        ONE,
        "model.pkl",
        None,
        Err("not-found", "ModelNotFoundException", NOT_FOUND),
        model_dir="{M}/m/1",
    ),
    ModelDirCase(
        "entry-file-name-under-a-single-form-model-dir-explicit-is-not-found",
        ONE,
        "model.pkl",
        1,
        Err("not-found", "WebserviceException", NOT_FOUND),
        model_dir="{M}/m/1",
    ),
    ModelDirCase(
        "entry-folder-name-under-a-single-form-model-dir-is-not-found",
        ("M:m/1/model_dir/a.txt", "M:m/1/model_dir/sub/b.txt"),
        "model_dir",
        None,
        Err("not-found", "ModelNotFoundException", NOT_FOUND),
        model_dir="{M}/m/1/",
    ),
    ModelDirCase(
        "name-is-a-file-under-a-multi-form-model-dir-is-not-found",
        ("C:elsewhere/n",),
        "n",
        None,
        Err("not-found", "ModelNotFoundException", NOT_FOUND),
        model_dir="elsewhere",
    ),
    ModelDirCase(
        "version-is-a-file-under-a-multi-form-model-dir-is-not-found",
        ("C:elsewhere/n/1",),
        "n",
        None,
        Err("not-found", "ModelNotFoundException", NOT_FOUND),
        model_dir="elsewhere/",
    ),
    ModelDirCase(
        "single-form-model-dir-that-is-a-file-is-not-found",
        ("C:elsewhere/n/1",),
        "n",
        1,
        Err("not-found", "WebserviceException", NOT_FOUND),
        model_dir="elsewhere/n/1",
    ),
]

MODES = ["relative-models-root", "absolute-models-root"]


@dataclass(frozen=True)
class Scene:
    """A laid-out case: where the models root is and how the SDK prints it."""

    cwd: Path
    models_dir: str  # as the SDK computes MODELS_DIR
    app_root: Path | None
    model_dir: str | None = None  # AZUREML_MODEL_DIR, if the case sets it


def lay_out(case: Case, base: Path, mode: str) -> Scene:
    """Create the case's files; the relative mode puts the models root under the cwd."""
    cwd = base / "work"
    cwd.mkdir()
    if mode == "relative-models-root":
        app_root, models_root, models_dir = None, cwd / "azureml-models", "azureml-models"
    else:
        app_root = base / "app"
        models_root = app_root / "azureml-models"
        models_dir = os.path.join(os.fspath(app_root), "azureml-models")
    for item in case.layout:
        where, _, relative = item.partition(":")
        target = (models_root if where == "M" else cwd) / relative
        if relative.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"payload")
    if any(item.startswith("M:") for item in case.layout):
        models_root.mkdir(parents=True, exist_ok=True)
    template = case.model_dir if isinstance(case, ModelDirCase) else None
    model_dir = None if template is None else template.format(M=models_dir)
    return Scene(cwd=cwd, models_dir=models_dir, app_root=app_root, model_dir=model_dir)


def expected_text(template: str, case: Case, scene: Scene) -> str:
    listing = ""
    if isinstance(case.expect, Err) and case.expect.listing_of:
        root = scene.cwd if scene.app_root is None else scene.app_root
        listing = repr(os.listdir(root / "azureml-models" / case.expect.listing_of))
    return template.format(M=scene.models_dir, cwd=os.getcwd(), name=case.name, listing=listing)


def enter(scene: Scene, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the scene's cwd with the scene's environment and no registry to fall back on."""
    monkeypatch.chdir(scene.cwd)
    if scene.model_dir is None:
        monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    else:
        monkeypatch.setenv("AZUREML_MODEL_DIR", scene.model_dir)
    monkeypatch.delenv("MODELSTORE_DB_URL", raising=False)
    monkeypatch.setenv("MODELSTORE_HOME", os.fspath(base / "no-registry"))
    if scene.app_root is None:
        monkeypatch.delenv("AML_APP_ROOT", raising=False)
    else:
        monkeypatch.setenv("AML_APP_ROOT", os.fspath(scene.app_root))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_get_model_path_answers_each_branch_as_the_sdk(
    case: Case, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene = lay_out(case, tmp_path, mode)
    enter(scene, tmp_path, monkeypatch)

    if isinstance(case.expect, Ok):
        answer = get_model_path(case.name, case.version)  # type: ignore[arg-type]
        assert answer == expected_text(case.expect.template, case, scene)
        assert type(answer) is str
    else:
        with pytest.raises(ERROR_CLASSES[case.expect.kind]) as caught:
            get_model_path(case.name, case.version)  # type: ignore[arg-type]
        sdk_text = expected_text(case.expect.template, case, scene)
        message = str(caught.value)
        assert message.startswith(sdk_text), f"{message!r} should start with {sdk_text!r}"
        assert len(message) > len(sdk_text), "modelstore adds what it knows after the SDK text"


def test_not_found_lists_the_locations_tried_and_the_versions_that_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = Case("x", THREE, "m", 5)
    scene = lay_out(case, tmp_path, "absolute-models-root")
    enter(scene, tmp_path, monkeypatch)

    with pytest.raises(ModelNotFoundError) as caught:
        get_model_path("m", 5)

    message = str(caught.value)
    assert f"{scene.models_dir}/m" in message
    assert "./m" in message
    assert "Versions of m that exist there: 1, 2, 10." in message


def test_not_found_is_a_lookup_error_and_bad_arguments_are_type_errors() -> None:
    assert issubclass(ModelNotFoundError, LookupError)
    assert issubclass(BadArgumentTypeError, TypeError)
    assert not issubclass(ModelLayoutError, LookupError)
