"""The v2 gallery copied into a temporary folder, and the sample files (good and bad) that both
modelstore's loaders and azure-ai-ml's are run on.

The gallery ships no model bytes (pickles depend on the scikit-learn version), so a copy gets a
placeholder ``model/sklearn_regression_model.pkl``: loading only checks that the path exists.
Each :class:`Sample` records the verdict of both loaders; where they differ on purpose the
sample says why, and docs/azureml-v2.md lists the same differences.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

GALLERY = Path(__file__).resolve().parent.parent / "fixtures" / "v2"


def copy_gallery(target: Path) -> Path:
    """``fixtures/v2`` copied to ``target`` with a placeholder model file; returns ``target``."""
    shutil.copytree(GALLERY, target, ignore=shutil.ignore_patterns("model", "__pycache__"))
    (target / "model").mkdir()
    (target / "model" / "sklearn_regression_model.pkl").write_bytes(b"placeholder")
    return target


@dataclass(frozen=True)
class Sample:
    """One YAML file: which loader reads it, and whether each loader accepts it."""

    name: str
    kind: str  # "model", "endpoint" or "deployment"
    text: str
    modelstore_accepts: bool
    azure_accepts: bool
    why_different: str = ""
    key: str = ""  # the key modelstore's error names when it refuses the file


def _from(source: str, old: str, new: str) -> str:
    text = (GALLERY / source).read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {source}"
    return text.replace(old, new, 1)


def samples() -> list[Sample]:
    """The gallery files and variants of them, each with both loaders' verdicts."""
    blue = "blue-deployment.yml"
    return [
        Sample("endpoint", "endpoint", (GALLERY / "endpoint.yml").read_text(), True, True),
        Sample("model", "model", (GALLERY / "model.yml").read_text(), True, True),
        Sample("blue", "deployment", (GALLERY / blue).read_text(), True, True),
        Sample(
            "green",
            "deployment",
            (GALLERY / "green-deployment.yml").read_text(),
            True,
            True,
        ),
        Sample(
            "kubernetes",
            "deployment",
            _from(blue, "instance_type: Standard_DS3_v2\n", "type: kubernetes\n")
            + "resources:\n  requests:\n    cpu: '0.5'\n    memory: 1Gi\n",
            True,
            True,
        ),
        Sample(
            "latest-label",
            "deployment",
            _from("green-deployment.yml", "sklearn-regression:1", "sklearn-regression@latest"),
            True,
            True,
        ),
        Sample(
            "cloud-only-keys",
            "deployment",
            _from(blue, "instance_count: 1\n", "instance_count: 3\n")
            + "app_insights_enabled: true\negress_public_network_access: disabled\n"
            + "scale_settings:\n  type: default\n",
            True,
            True,
        ),
        Sample(
            "misspelled-key",
            "deployment",
            _from(blue, "instance_count: 1", "instance_cout: 1"),
            False,
            False,
            key="instance_cout",
        ),
        Sample(
            "misspelled-nested-key",
            "deployment",
            _from(blue, "request_timeout_ms: 3000", "request_timeout: 3000"),
            False,
            False,
            key="request_settings.request_timeout",
        ),
        Sample(
            "wrong-type",
            "deployment",
            _from(blue, "request_timeout_ms: 3000", "request_timeout_ms: fast"),
            False,
            False,
            key="request_settings.request_timeout_ms",
        ),
        Sample(
            "wrong-type-bool",
            "deployment",
            _from("green-deployment.yml", "insights_enabled: true", "insights_enabled: maybe"),
            False,
            False,
            key="app_insights_enabled",
        ),
        Sample(
            "model-path-missing",
            "deployment",
            _from(blue, "  path: model", "  path: no-such-model"),
            False,
            False,
            key="model.path",
        ),
        Sample(
            "reference-without-prefix",
            "deployment",
            _from("green-deployment.yml", "azureml:sklearn-regression:1", "sklearn-regression:1"),
            False,
            False,
            key="model",
        ),
        Sample(
            "environment-without-prefix",
            "deployment",
            _from("green-deployment.yml", "azureml:sklearn-inference-env:1", "sklearn-env:1"),
            False,
            False,
            key="environment",
        ),
        Sample(
            "conda-file-missing",
            "deployment",
            _from(blue, "environment/conda.yaml", "environment/no-such-conda.yaml"),
            False,
            False,
            key="environment.conda_file",
        ),
        Sample(
            "managed-without-instance-type",
            "deployment",
            _from(blue, "instance_type: Standard_DS3_v2\n", ""),
            False,
            False,
            key="instance_type",
        ),
        Sample(
            "scoring-script-missing",
            "deployment",
            _from(blue, "scoring_script: score.py", "scoring_script: scor.py"),
            False,
            True,
            "Azure's loader does not look for the script; `create` fails later, in the cloud",
            key="code_configuration.scoring_script",
        ),
        Sample(
            "request-timeout-over-maximum",
            "deployment",
            _from(blue, "request_timeout_ms: 3000", "request_timeout_ms: 200000"),
            False,
            True,
            "180000 is the documented maximum, which the service (not the loader) enforces",
            key="request_settings.request_timeout_ms",
        ),
        Sample(
            "reference-without-version",
            "deployment",
            _from("green-deployment.yml", "sklearn-regression:1", "sklearn-regression"),
            False,
            True,
            "a reference modelstore cannot resolve: neither a version nor @latest",
            key="model",
        ),
        Sample(
            "reference-with-text-version",
            "deployment",
            _from("green-deployment.yml", "sklearn-regression:1", "sklearn-regression:one"),
            False,
            True,
            "the local registry numbers versions with integers",
            key="model",
        ),
        Sample(
            "endpoint-misspelled-key",
            "endpoint",
            _from("endpoint.yml", "auth_mode: key", "auht_mode: key"),
            False,
            False,
            key="auht_mode",
        ),
        Sample(
            "endpoint-bad-auth-mode",
            "endpoint",
            _from("endpoint.yml", "auth_mode: key", "auth_mode: keys"),
            False,
            False,
            key="auth_mode",
        ),
        Sample(
            "endpoint-bad-name",
            "endpoint",
            _from("endpoint.yml", "name: regression-endpoint", "name: 1-endpoint"),
            False,
            False,
            key="name",
        ),
        Sample(
            "endpoint-wrong-type-traffic",
            "endpoint",
            _from("endpoint.yml", "blue: 90", "blue: ninety"),
            False,
            False,
            key="traffic.blue",
        ),
        Sample(
            "endpoint-token-auth",
            "endpoint",
            _from("endpoint.yml", "auth_mode: key", "auth_mode: aml_token"),
            True,
            True,
        ),
        Sample(
            "endpoint-traffic-over-100",
            "endpoint",
            _from("endpoint.yml", "green: 10", "green: 20"),
            False,
            False,
            key="traffic",
        ),
        Sample(
            "endpoint-capitalised-auth-mode",
            "endpoint",
            _from("endpoint.yml", "auth_mode: key", "auth_mode: Key"),
            True,
            True,
        ),
        Sample(
            "endpoint-mirror-over-50",
            "endpoint",
            (GALLERY / "endpoint.yml").read_text() + "mirror_traffic:\n  green: 60\n",
            False,
            True,
            "the REST API documents at most 50% mirrored traffic",
            key="mirror_traffic",
        ),
        Sample(
            "model-cloud-path",
            "model",
            _from(
                "model.yml", "path: model", "path: azureml://datastores/workspaceblobstore/paths/m"
            ),
            False,
            True,
            "a cloud path cannot be read to register the model here",
            key="path",
        ),
        Sample(
            "model-misspelled-key",
            "model",
            _from("model.yml", "tags:", "tagz:"),
            False,
            False,
            key="tagz",
        ),
        Sample(
            "model-bad-type",
            "model",
            _from("model.yml", "type: custom_model", "type: pickle_model"),
            False,
            False,
            key="type",
        ),
        Sample(
            "model-without-name",
            "model",
            _from("model.yml", "name: sklearn-regression\n", ""),
            False,
            False,
            key="name",
        ),
        Sample(
            "model-mlflow-with-stage",
            "model",
            _from("model.yml", "type: custom_model", "type: mlflow_model\nstage: Production"),
            True,
            True,
        ),
        Sample(
            "model-path-missing",
            "model",
            _from("model.yml", "path: model", "path: no-such-model"),
            False,
            True,
            "Azure's loader reads the path only when it uploads; modelstore needs it to register",
            key="path",
        ),
        Sample(
            "model-text-version",
            "model",
            _from("model.yml", "version: 1", "version: one"),
            False,
            True,
            "the local registry numbers versions with integers",
            key="version",
        ),
    ]


def write_samples(root: Path) -> dict[str, Path]:
    """Every sample written as ``<kind>-<name>.yml`` into a copy of the gallery at ``root``."""
    copy_gallery(root)
    paths = {}
    for sample in samples():
        path = root / f"{sample.kind}-{sample.name}.yml"
        path.write_text(sample.text, encoding="utf-8")
        paths[f"{sample.kind}-{sample.name}"] = path
    return paths
