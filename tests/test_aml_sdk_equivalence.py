"""The same layouts through the real azureml-core SDK and through modelstore: equal answers.

Skipped unless azureml-core is installed (``tox -e aml`` installs azureml-core==1.61.0.post4).
The SDK freezes ``MODELS_DIR`` when ``azureml.core.model`` is imported, so each
layout sets ``azureml.core.model.MODELS_DIR`` to what that import would have computed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

aml_model = pytest.importorskip("azureml.core.model")
aml_exceptions = pytest.importorskip("azureml.exceptions")

from test_resolve_conformance import (  # noqa: E402
    CASES,
    MODES,
    Case,
    Err,
    ModelDirCase,
    Ok,
    enter,
    lay_out,
)

from modelstore import get_model_path  # noqa: E402
from modelstore.errors import (  # noqa: E402
    BadArgumentTypeError,
    ModelLayoutError,
    ModelNotFoundError,
)
from modelstore.registry import Registry  # noqa: E402

Outcome = tuple[str, str, str]  # ("ok", value, "") or ("error", class name, message)


def outcome(call: Callable[[], str]) -> Outcome:
    try:
        return ("ok", call(), "")
    except Exception as exc:
        message = getattr(exc, "message", None) or str(exc)
        return ("error", type(exc).__name__, message)


def sdk_get_model_path(scene_models_dir: str, name: object, version: object) -> Outcome:
    aml_model.MODELS_DIR = scene_models_dir
    return outcome(lambda: aml_model.Model.get_model_path(name, version))


def modelstore_class_for(sdk_class: str, message: str) -> type[Exception]:
    """docs/get_model_path.md's error table: which modelstore class stands for an SDK failure."""
    if sdk_class == "ModelNotFoundException" or message.startswith("Model "):
        return ModelNotFoundError
    if message.startswith(("version should be an int", "model_name is None")):
        return BadArgumentTypeError
    return ModelLayoutError


def assert_same(sdk: Outcome, ours: Outcome, ours_exc: type[Exception] | None) -> None:
    if sdk[0] == "ok":
        assert ours == sdk, f"SDK returned {sdk[1]!r}, modelstore gave {ours}"
        return
    assert ours[0] == "error", f"SDK raised {sdk}, modelstore returned {ours[1]!r}"
    assert ours_exc is modelstore_class_for(sdk[1], sdk[2])
    assert ours[2].startswith(sdk[2]), f"{ours[2]!r} should start with {sdk[2]!r}"


def ours_with_class(name: object, version: object) -> tuple[Outcome, type[Exception] | None]:
    try:
        return ("ok", get_model_path(name, version), ""), None  # type: ignore[arg-type]
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc)), type(exc)


@pytest.fixture(autouse=True)
def restore_sdk_models_dir() -> object:
    frozen = aml_model.MODELS_DIR
    yield
    aml_model.MODELS_DIR = frozen


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_sdk_and_modelstore_agree_on_every_branch(
    case: Case, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene = lay_out(case, tmp_path, mode)
    enter(scene, tmp_path, monkeypatch)

    sdk = sdk_get_model_path(scene.models_dir, case.name, case.version)
    ours, ours_exc = ours_with_class(case.name, case.version)

    if case.departure:
        assert sdk[0] == "ok", "the departure only turns an SDK answer into an argument error"
        assert ours_exc is BadArgumentTypeError
        return
    if isinstance(case.expect, Err):  # the table matches the real SDK
        assert sdk[0] == "error" and sdk[1] == case.expect.sdk_class, sdk
    else:
        assert isinstance(case.expect, Ok) and sdk[0] == "ok", sdk
    assert_same(sdk, ours, ours_exc)


def random_layout(rng: random.Random) -> list[str]:
    """A models tree mixing clean versions, stray files, empty folders and cwd look-alikes."""
    items: list[str] = []
    for name in rng.sample(["m", "n", "model.pkl", "a", "A"], rng.randint(0, 3)):
        shape = rng.random()
        if shape < 0.08:
            items.append(f"M:{name}")  # name is a file
            continue
        if shape < 0.14:
            items.append(f"M:{name}/")  # empty name folder
            continue
        for version in rng.sample(["1", "2", "3", "10", "0", "01", "latest"], rng.randint(1, 3)):
            entries = rng.choice([["model.pkl"], ["model_dir/x.bin"], [], ["a", ".DS_Store"]])
            if not entries:
                items.append(f"M:{name}/{version}/")
            items.extend(f"M:{name}/{version}/{entry}" for entry in entries)
    if rng.random() < 0.3:
        items.append(f"C:{rng.choice(['m', 'n', 'a'])}")
    return items


@pytest.mark.parametrize("seed", range(60))
def test_random_layouts_give_the_same_answers_as_the_sdk(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    mode = MODES[seed % 2]
    # The SDK ignores AZUREML_MODEL_DIR; set as a deployment sets it, it must not change a
    # single answer (an entry named like a model is not a model: not found, not a layout error).
    model_dir = rng.choice([None, "{M}", "{M}/", "{M}/m/1", "{M}/m/2/", "{M}/n/10", "{M}/a/3"])
    case = ModelDirCase(f"random-{seed}", tuple(random_layout(rng)), "m", model_dir=model_dir)
    scene = lay_out(case, tmp_path, mode)
    enter(scene, tmp_path, monkeypatch)

    for name in ("m", "n", "model.pkl", "a", "A", "zz"):
        for version in (None, 0, 1, 2, 3, 10, 11):
            sdk = sdk_get_model_path(scene.models_dir, name, version)
            ours, ours_exc = ours_with_class(name, version)
            assert_same(sdk, ours, ours_exc)


SDK_SCRIPT = """
import json
from azureml.core.model import Model
import modelstore
calls = [("m", None), ("m", 1), ("m", 2), ("d", None), ("d", 1)]
print(json.dumps([
    [Model.get_model_path(name, version), modelstore.get_model_path(name, version)]
    for name, version in calls
]))
"""


@pytest.mark.slow
def test_an_unmodified_azureml_script_resolves_every_model_inside_modelstore_exec(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    with Registry(home) as registry:
        for payload in (b"one", b"two"):
            (tmp_path / "model.pkl").write_bytes(payload)
            registry.register(tmp_path / "model.pkl", "m")
        (tmp_path / "model_dir").mkdir()
        (tmp_path / "model_dir" / "only.bin").write_bytes(b"x")
        registry.register(tmp_path / "model_dir", "d")
    env = {k: v for k, v in os.environ.items() if k not in {"AML_APP_ROOT", "AZUREML_MODEL_DIR"}}
    env["MODELSTORE_HOME"] = os.fspath(home)
    app = tmp_path / "app"

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelstore",
            "exec",
            "--app-root",
            os.fspath(app),
            "--keep",
            "--model",
            "m:1",
            "--model",
            "m:2",
            "--model",
            "d",
            "--",
            sys.executable,
            "-c",
            SDK_SCRIPT,
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    models = f"{app}/azureml-models"
    assert [sdk for sdk, _ in answers] == [
        f"{models}/m/2/model.pkl",
        f"{models}/m/1/model.pkl",
        f"{models}/m/2/model.pkl",
        f"{models}/d/1/model_dir",
        f"{models}/d/1/model_dir",
    ]
    assert all(sdk == ours for sdk, ours in answers)
