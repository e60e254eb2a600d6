"""The Power BI gallery script (``fixtures/scripts/powerbi``), tested as a user tests a score.py:
with the plugin's fixtures only, against a real trained scikit-learn model, on the real disk and
on pyfakefs."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import pytest

from modelstore import Registry
from modelstore.testing import ScoringClientFactory

FIXTURES = Path(__file__).parent.parent / "fixtures"
SCRIPT = FIXTURES / "scripts" / "powerbi" / "score.py"
ROWS = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [0.5, -1, 2, 0, 3, 1, 1, 2, -2, 4]]
INPUTS: dict[str, Any] = {
    "input1": ROWS,
    "input2": [{"name": "Sarah", "age": 25}, {"name": "John", "age": 26}],
    "input3": 0.5,
}
BODY = {"Inputs": INPUTS, "GlobalParameters": 1.0}


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sklearn_regression_model.pkl``, trained by the gallery's own ``make_models.py``."""
    make_models = runpy.run_path(str(FIXTURES / "make_models.py"))
    model: Path = make_models["write_regression_model"](tmp_path_factory.mktemp("models"))
    return model


@pytest.fixture(params=["model_registry", "fake_model_registry"])
def registry(request: pytest.FixtureRequest, trained_model: Path) -> Registry:
    """The same tests on a registry on disk and on one in pyfakefs's fake filesystem."""
    registry: Registry = request.getfixturevalue(request.param)
    if request.param == "fake_model_registry":
        request.getfixturevalue("fs").add_real_file(trained_model, read_only=True)
    registry.register(trained_model, name="sklearn_regression_model")
    return registry


def test_inputs_are_scored_into_results_with_the_registered_model(
    registry: Registry, scoring_client: ScoringClientFactory, trained_model: Path
) -> None:
    client = scoring_client(SCRIPT, models=["sklearn_regression_model:1"])
    response = client.post(json=BODY)
    assert response.status_code == 200, response.text
    expected = joblib.load(trained_model).predict(np.array(ROWS, dtype="float64"))
    assert response.json()["Results"] == pytest.approx(expected.tolist())
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_swagger_describes_the_power_bi_shape(
    registry: Registry, scoring_client: ScoringClientFactory
) -> None:
    client = scoring_client(SCRIPT, models=["sklearn_regression_model:1"])
    swagger = client.get("/swagger.json").json()
    assert swagger["swagger"] == "2.0"
    service_input: dict[str, Any] = swagger["definitions"]["ServiceInput"]
    assert list(service_input["properties"]) == ["Inputs", "GlobalParameters"]
    inputs = service_input["properties"]["Inputs"]
    assert inputs["required"] == ["input1", "input2", "input3"]
    assert inputs["properties"]["input1"]["format"] == "numpy.ndarray"
    assert inputs["properties"]["input2"]["format"] == "pandas.DataFrame:records"
    assert service_input["properties"]["GlobalParameters"]["type"] == "number"
    output = swagger["definitions"]["ServiceOutput"]
    assert output["properties"]["Results"]["type"] == "array"
    assert client.get("/swagger.json", params={"version": "3"}).json()["openapi"] == "3.0.3"


def test_rows_of_the_wrong_width_get_the_scoring_script_error(
    registry: Registry, scoring_client: ScoringClientFactory
) -> None:
    client = scoring_client(SCRIPT, models=["sklearn_regression_model:1"])
    body = {"Inputs": {**INPUTS, "input1": [[1, 2, 3]]}}
    response = client.post(json=body)
    assert response.status_code == 500
    assert response.json() == {
        "message": "An unexpected error occurred in scoring script. Check the logs for more info."
    }
    assert response.headers["x-ms-run-function-failed"] == "True"


def test_a_missing_inputs_key_is_a_400(
    registry: Registry, scoring_client: ScoringClientFactory
) -> None:
    client = scoring_client(SCRIPT, models=["sklearn_regression_model:1"])
    response = client.post(json={"data": ROWS})
    assert response.status_code == 400
    assert response.json() == {"message": "A value is not provided for the 'Inputs' parameter."}
