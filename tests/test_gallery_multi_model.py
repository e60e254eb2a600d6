"""The multi-model gallery script (``fixtures/scripts/multi_model``), tested with the plugin's
fixtures only: ``my_first_model:1`` and ``my_second_model:2`` found through ``get_model_path``
and through ``AZUREML_MODEL_DIR``."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import joblib  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import pytest

from modelstore import Registry
from modelstore.testing import DeploymentFactory, ScoringClientFactory

FIXTURES = Path(__file__).parent.parent / "fixtures"
SCRIPT = FIXTURES / "scripts" / "multi_model" / "score.py"
MODELS = ["my_first_model:1", "my_second_model:2"]
ROWS = [[1.0] * 10, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    make_models = runpy.run_path(str(FIXTURES / "make_models.py"))
    files: tuple[Path, Path] = make_models["write_multi_models"](tmp_path_factory.mktemp("m"))
    return files


@pytest.fixture
def registry(model_registry: Registry, model_files: tuple[Path, Path]) -> Registry:
    first, second = model_files
    model_registry.register(first, name="my_first_model")
    model_registry.register(first, name="my_second_model")  # version 1: not the one deployed
    model_registry.register(second, name="my_second_model")  # version 2
    return model_registry


def test_both_models_answer_each_request(
    registry: Registry, scoring_client: ScoringClientFactory, model_files: tuple[Path, Path]
) -> None:
    client = scoring_client(SCRIPT, models=MODELS)
    response = client.post(json={"data": ROWS})
    assert response.status_code == 200, response.text
    rows = np.array(ROWS)
    first, second = (joblib.load(path).predict(rows).tolist() for path in model_files)
    assert first != second
    assert response.json() == {
        "my_first_model": pytest.approx(first),
        "my_second_model": pytest.approx(second),
    }


def test_an_explicit_deployment_of_the_same_models_is_reused(
    registry: Registry,
    azureml_deployment: DeploymentFactory,
    scoring_client: ScoringClientFactory,
) -> None:
    deployment = azureml_deployment(*MODELS)
    assert os.environ["AZUREML_MODEL_DIR"] == str(deployment.app_root / "azureml-models")
    assert sorted(os.listdir(deployment.model_dir / "my_second_model")) == ["2"]
    client = scoring_client(SCRIPT, models=MODELS)
    assert client.post(json={"data": ROWS}).status_code == 200


def test_init_fails_clearly_when_version_2_is_not_deployed(
    registry: Registry, scoring_client: ScoringClientFactory
) -> None:
    from modelstore.errors import EntryScriptError

    with pytest.raises(EntryScriptError, match=r"init\(\) of .* raised ModelNotFoundError"):
        scoring_client(SCRIPT, models=["my_first_model:1", "my_second_model:1"])
