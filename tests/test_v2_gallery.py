"""The v2 gallery (``fixtures/v2``): its scoring script answers for a registered model folder
laid out as a v2 deployment lays it out (``AZUREML_MODEL_DIR/model/...``)."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

import joblib  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import pytest
from v2_helpers import GALLERY

from modelstore import Registry
from modelstore.testing import ScoringClientFactory
from modelstore.v2 import load_deployment_spec, load_model_spec

ROWS = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of fixtures/v2 with the real model trained into ``model/``."""
    root = tmp_path_factory.mktemp("gallery") / "v2"
    shutil.copytree(GALLERY, root, ignore=shutil.ignore_patterns("model"))
    make_models = runpy.run_path(str(GALLERY.parent / "make_models.py"))
    make_models["write_regression_model"](root / "model")
    return root


def test_the_scoring_script_answers_for_the_registered_model_folder(
    gallery: Path,
    model_registry: Registry,
    scoring_client: ScoringClientFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = load_model_spec(gallery / "model.yml")
    green = load_deployment_spec(gallery / "green-deployment.yml")
    model_registry.register(model.path, name=model.name)  # sklearn-regression:1, folder "model"
    for name, value in green.environment_variables.items():
        monkeypatch.setenv(name, value)
    assert green.code_configuration is not None
    client = scoring_client(green.code_configuration.script_path, models=["sklearn-regression:1"])
    response = client.post(json={"data": ROWS})
    assert response.status_code == 200, response.text
    expected = joblib.load(gallery / "model" / "sklearn_regression_model.pkl").predict(
        np.array(ROWS)
    )
    assert response.json() == {
        "deployment": "green",
        "prediction": pytest.approx(expected.tolist()),
    }


def test_from_deployment_serves_blue_with_its_inline_model(
    gallery: Path, scoring_client: ScoringClientFactory
) -> None:
    client = scoring_client.from_deployment(gallery / "blue-deployment.yml")
    response = client.post(json={"data": ROWS})
    assert response.status_code == 200, response.text
    expected = joblib.load(gallery / "model" / "sklearn_regression_model.pkl").predict(
        np.array(ROWS)
    )
    assert response.json() == {"deployment": "blue", "prediction": pytest.approx(expected.tolist())}


def test_from_deployment_resolves_green_in_the_tests_registry(
    gallery: Path, model_registry: Registry, scoring_client: ScoringClientFactory
) -> None:
    model_registry.register_spec(gallery / "model.yml")
    client = scoring_client.from_deployment(gallery / "green-deployment.yml")
    response = client.post(json={"data": ROWS})
    assert response.status_code == 200, response.text
    assert response.json()["deployment"] == "green"
