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
    """Every sample, each with both loaders' verdicts."""
    return _gallery_samples() + _more_samples()


def _gallery_samples() -> list[Sample]:
    """The gallery files and variants of them."""
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
            "alias-label",
            "deployment",
            _from("green-deployment.yml", "sklearn-regression:1", "sklearn-regression@champion"),
            True,
            True,
        ),
        Sample(
            "label-breaking-the-alias-rule",
            "deployment",
            _from("green-deployment.yml", "sklearn-regression:1", "sklearn-regression@1st"),
            False,
            True,
            "a label is resolved as a local alias, and an alias starts with a letter",
            key="model",
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
            "a reference modelstore cannot resolve: neither a version nor a label",
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


def _more_samples() -> list[Sample]:
    """Variants covering the rest of the schema: each key family once, accepted or refused."""
    blue = (GALLERY / "blue-deployment.yml").read_text()
    green = (GALLERY / "green-deployment.yml").read_text()
    endpoint = (GALLERY / "endpoint.yml").read_text()
    model = (GALLERY / "model.yml").read_text()
    inline_env = (
        "environment:\n  conda_file: environment/conda.yaml\n"
        "  image: mcr.microsoft.com/azureml/minimal-ubuntu22.04-py311-cpu-inference:latest\n"
    )

    def env(new: str) -> str:
        assert inline_env in blue
        return blue.replace(inline_env, new)

    return [
        Sample(
            "kubernetes-with-egress",
            "deployment",
            green.replace("instance_type: Standard_DS3_v2\n", "type: kubernetes\n")
            + "egress_public_network_access: enabled\n",
            False,
            False,
            key="egress_public_network_access",
        ),
        Sample(
            "scale-and-data-collection",
            "deployment",
            green
            + "scale_settings:\n  type: target_utilization\n  min_instances: 1\n"
            + "  max_instances: 3\ndata_collector:\n  sampling_rate: 1.0\n  collections:\n"
            + "    request:\n      enabled: 'True'\nmodel_mount_path: /var/azureml-model\n"
            + "description: green\ntags:\n  release: 2\n",
            True,
            True,
        ),
        Sample(
            "named-inline-model",
            "deployment",
            blue.replace("  path: model\n", "  name: regression\n  version: 2\n  path: model\n"),
            True,
            True,
        ),
        Sample(
            "environment-build-context",
            "deployment",
            env(
                "environment:\n  build:\n    path: onlinescoring\n    dockerfile_path: Dockerfile\n"
            ),
            True,
            True,
        ),
        Sample(
            "environment-build-context-missing",
            "deployment",
            env("environment:\n  build:\n    path: no-such-context\n"),
            False,
            False,
            key="environment.build",
        ),
        Sample(
            "environment-custom-container",
            "deployment",
            env(
                "environment:\n  name: custom\n  version: 1\n  image: example/scorer:1\n"
                "  os_type: Linux\n  inference_config:\n    liveness_route:\n      path: /\n"
                "      port: 5001\n    readiness_route:\n      path: /\n      port: 5001\n"
                "    scoring_route:\n      path: /score\n      port: 5001\n"
            ),
            True,
            True,
        ),
        Sample(
            "environment-inline-conda-mapping",
            "deployment",
            env(
                "environment:\n  image: example/scorer:1\n  conda_file:\n    dependencies: [pip]\n"
            ),
            True,
            True,
        ),
        Sample(
            "environment-latest",
            "deployment",
            green.replace("sklearn-inference-env:1", "sklearn-inference-env@latest"),
            True,
            True,
        ),
        Sample(
            "all-probe-settings",
            "deployment",
            green
            + "".join(
                f"{probe}:\n  initial_delay: 1\n  period: 1\n  timeout: 1\n"
                "  success_threshold: 1\n  failure_threshold: 1\n"
                for probe in ("liveness_probe", "readiness_probe")
            ),
            True,
            True,
        ),
        Sample(
            "environment-variable-mapping",
            "deployment",
            blue.replace("  MODEL_COLOR: blue", "  MODEL_COLOR:\n    shade: dark"),
            False,
            True,
            "a container variable holds text, not a mapping",
            key="environment_variables.MODEL_COLOR",
        ),
        Sample(
            "environment-variable-empty",
            "deployment",
            blue.replace("  MODEL_COLOR: blue", "  MODEL_COLOR:"),
            False,
            True,
            "an empty value is more likely a mistake than an empty string; write ''",
            key="environment_variables.MODEL_COLOR",
        ),
        Sample(
            "code-without-scoring-script",
            "deployment",
            blue.replace("  scoring_script: score.py\n", ""),
            False,
            True,
            "the script is needed to serve",
            key="code_configuration.scoring_script",
        ),
        Sample(
            "endpoint-identity",
            "endpoint",
            endpoint
            + "identity:\n  type: user_assigned\n  user_assigned_identities:\n"
            + "    - resource_id: /subscriptions/s/identities/i\n",
            True,
            True,
        ),
        Sample(
            "endpoint-kubernetes-with-public-access",
            "endpoint",
            endpoint + "compute: azureml:k8s-cluster\npublic_network_access: enabled\n",
            False,
            False,
            key="public_network_access",
        ),
        Sample(
            "model-quoted-version",
            "model",
            model.replace("version: 1", "version: '3'"),
            True,
            True,
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


GATED_SCRIPT = """\
import os
import pathlib
import time
import uuid

GATE = pathlib.Path(os.environ["GATE_DIR"])


def init():
    pass


def run(data):
    (GATE / f"entered-{uuid.uuid4().hex}").touch()
    while not (GATE / "release").exists():
        time.sleep(0.005)
    return {"deployment": os.environ["DEPLOYMENT_NAME"]}
"""


def gated_deployment(
    folder: Path, name: str, *, workers: int, max_concurrent: int, gate: Path
) -> Path:
    """A deployment YAML (no model) whose ``run()`` marks its entry with a file
    ``gate/entered-*`` and then blocks until ``gate/release`` exists."""
    code = folder / f"code-{name}"
    code.mkdir(parents=True)
    (code / "score.py").write_text(GATED_SCRIPT)
    yml = folder / f"{name}-deployment.yml"
    yml.write_text(
        f"name: {name}\nendpoint_name: gate\n"
        "instance_type: Standard_DS3_v2\ninstance_count: 1\n"
        f"code_configuration:\n  code: {code.name}\n  scoring_script: score.py\n"
        f"environment_variables:\n  WORKER_COUNT: {workers}\n  GATE_DIR: {gate}\n"
        f"  DEPLOYMENT_NAME: {name}\n"
        "request_settings:\n  request_timeout_ms: 120000\n"
        f"  max_concurrent_requests_per_instance: {max_concurrent}\n"
    )
    return yml


def wait_entered(gate: Path, count: int, timeout_s: float = 60) -> None:
    """Until ``count`` requests have entered ``run()`` behind ``gate``."""
    import time

    deadline = time.monotonic() + timeout_s
    while len([p for p in gate.iterdir() if p.name.startswith("entered-")]) < count:
        assert time.monotonic() < deadline, f"{count} requests never entered run()"
        time.sleep(0.01)
