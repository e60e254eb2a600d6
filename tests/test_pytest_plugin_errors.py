"""Bad use of the plugin's fixtures: each gets a clear error, as a user's test run shows it."""

from __future__ import annotations

import textwrap
from pathlib import Path

# pytester's in-process runs forget every module first imported inside a run; a later import
# then makes a second copy (two classes for one name; C extensions such as pandas break).
# So load beforehand what the inner runs use: modelstore, and numpy/pandas (pyfakefs imports
# them to patch them).
import numpy  # noqa: F401
import pandas  # type: ignore[import-untyped, unused-ignore]  # noqa: F401
import pytest

import modelstore.deployment
import modelstore.registry
import modelstore.resolve
import modelstore.serving.app
import modelstore.testing  # noqa: F401
from modelstore.pytest_plugin import _import_modelstore_before_pyfakefs

pytest_plugins = ["pytester"]

_import_modelstore_before_pyfakefs()  # also the lazy imports of a first registry (alembic...)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture(autouse=True)
def no_registry_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("MODELSTORE_HOME", "MODELSTORE_DB_URL", "AML_APP_ROOT", "AZUREML_MODEL_DIR"):
        monkeypatch.delenv(variable, raising=False)


def test_a_failing_init_is_reported_with_its_traceback(pytester: pytest.Pytester) -> None:
    write(
        pytester.path / "score.py",
        """
        def load_weights():
            raise RuntimeError("weights file is corrupt")

        def init():
            load_weights()

        def run(data):
            return data
        """,
    )
    pytester.makepyfile(
        test_user="""
        def test_score(scoring_client):
            scoring_client("score.py")
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:logging")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*EntryScriptError: init() of *score.py raised RuntimeError: weights file is corrupt*",
            "*Traceback (most recent call last):*",
            '*File "*score.py", line 5, in init*',
            '*File "*score.py", line 2, in load_weights*',
            "*RuntimeError: weights file is corrupt*",
        ]
    )


BAD_USE_TESTS = """
import pytest
from modelstore.errors import (
    DeploymentRefusedError, EntryScriptError, InvalidArgumentError, ModelNotFoundError,
)

@pytest.fixture
def registered(model_registry):
    model_registry.register("model.txt", name="known")
    model_registry.register("model.txt", name="other")
    return model_registry

def test_an_unregistered_model_names_what_is_registered(registered, azureml_deployment):
    with pytest.raises(ModelNotFoundError) as caught:
        azureml_deployment("unknown:1")
    message = str(caught.value)
    assert "'unknown:1' is neither a registered model nor an existing file" in message
    assert "known" in message and "other" in message
    assert "model_registry.register(path, name=...)" in message

def test_an_unknown_version_names_the_versions_that_exist(registered, azureml_deployment):
    with pytest.raises(ModelNotFoundError, match="its versions are 1"):
        azureml_deployment("known:7")

def test_an_empty_registry_says_how_to_register(model_registry, scoring_client):
    with pytest.raises(ModelNotFoundError, match="the registry is empty") as caught:
        scoring_client("good.py", models=["known:1"])
    assert "model_registry.register(path, name=...)" in str(caught.value)

def test_a_fake_registry_error_names_the_fake_fixture(fake_model_registry, azureml_deployment):
    with pytest.raises(ModelNotFoundError, match="fake_model_registry.register"):
        azureml_deployment("known:1")

def test_a_script_without_init_is_refused(scoring_client):
    with pytest.raises(EntryScriptError, match=r"does not have a init\\(\\) function defined"):
        scoring_client("no_init.py")

def test_a_script_without_run_is_refused(scoring_client):
    with pytest.raises(EntryScriptError, match=r"does not have a run\\(\\) function defined"):
        scoring_client("no_run.py")

def test_a_missing_script_says_where_it_looked(scoring_client, request):
    with pytest.raises(EntryScriptError, match="entry script 'nowhere.py' not found") as caught:
        scoring_client("nowhere.py")
    assert str(request.path.parent / "nowhere.py") in str(caught.value)

def test_an_unknown_setting_is_refused(scoring_client):
    with pytest.raises(InvalidArgumentError, match="not_a_setting"):
        scoring_client("good.py", not_a_setting=1)

def test_a_second_different_deployment_is_refused(registered, azureml_deployment):
    azureml_deployment("known:1")
    with pytest.raises(DeploymentRefusedError, match="already deployed known:1 at"):
        azureml_deployment("known:1", "other:1")
    with pytest.raises(DeploymentRefusedError, match="with copy=True"):
        azureml_deployment("known:1", copy=True)

def test_a_scoring_client_cannot_change_the_deployment(registered, azureml_deployment,
                                                       scoring_client):
    azureml_deployment("known:1")
    with pytest.raises(DeploymentRefusedError, match="of other:1"):
        scoring_client("good.py", models=["other:1"])

def test_asking_again_for_the_same_models_returns_the_same_deployment(
    registered, azureml_deployment, scoring_client
):
    first = azureml_deployment("known:1", "other")
    assert azureml_deployment("other:1", "known:latest") is first
    client = scoring_client("good.py", models=["known:1", "other:1"])
    assert client.post(data="x").json() == "x"

def test_a_rawhttp_script_does_not_change_how_the_next_script_is_called(scoring_client):
    raw = scoring_client("raw.py")
    assert raw.post(data="body").json() == {"method": "POST", "body": "body"}
    plain = scoring_client("good.py")
    assert plain.post(data="body").json() == "body"
"""


def test_each_bad_use_gets_a_clear_error(pytester: pytest.Pytester) -> None:
    write(pytester.path / "model.txt", "weights")
    write(pytester.path / "good.py", "def init():\n    pass\n\ndef run(data):\n    return data\n")
    write(pytester.path / "no_init.py", "def run(data):\n    return data\n")
    write(pytester.path / "no_run.py", "def init():\n    pass\n")
    write(
        pytester.path / "raw.py",
        """
        from azureml.contrib.services.aml_request import rawhttp

        def init():
            pass

        @rawhttp
        def run(request):
            return {"method": request.method, "body": request.get_data(as_text=True)}
        """,
    )
    pytester.makepyfile(test_user=BAD_USE_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=BAD_USE_TESTS.count("\ndef test_"))


def test_model_registry_on_pyfakefs_is_refused_in_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
        def test_mixed(fs, model_registry):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "model_registry keeps its catalog in a real SQLite file, which pyfakefs cannot "
            "fake; in a test that uses 'fs' use fake_model_registry instead"
        ]
    )


def test_without_pyfakefs_the_fake_registry_says_what_to_install(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import sys
        sys.modules["pyfakefs"] = None  # as if it were not installed
        """
    )
    pytester.makepyfile(
        test_user="""
        def test_fake(fake_model_registry):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:fakefs")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "fake_model_registry runs on pyfakefs, which is not installed: "
            "pip install modelstore[testing]"
        ]
    )
