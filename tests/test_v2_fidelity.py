"""Fidelity of the v2 loaders: the same sample files, read by modelstore's loaders and by
azure-ai-ml's own (``load_online_deployment``, ``load_model``, ``load_online_endpoint``), get
the same accept/reject verdict, except the few differences docs/azureml-v2.md lists.

modelstore's verdicts are checked always; azure-ai-ml's only where it is installed (the ``v2``
tox env installs it: ``tox -e v2``). azure-ai-ml is never a runtime dependency.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from v2_helpers import Sample, samples, write_samples

from modelstore.errors import SpecError
from modelstore.v2 import load_deployment_spec, load_endpoint_spec, load_model_spec

SAMPLES = samples()
IDS = [f"{sample.kind}-{sample.name}" for sample in SAMPLES]
MODELSTORE_LOADERS: dict[str, Callable[[Path], Any]] = {
    "model": load_model_spec,
    "endpoint": load_endpoint_spec,
    "deployment": load_deployment_spec,
}


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_samples(tmp_path_factory.mktemp("v2") / "samples")


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_modelstore_gives_the_recorded_verdict(
    sample: Sample, sample_files: dict[str, Path]
) -> None:
    path = sample_files[f"{sample.kind}-{sample.name}"]
    if sample.modelstore_accepts:
        MODELSTORE_LOADERS[sample.kind](path)
    else:
        with pytest.raises(SpecError) as refused:
            MODELSTORE_LOADERS[sample.kind](path)
        assert refused.value.key == sample.key  # refused for the recorded reason


def test_every_difference_from_azure_is_a_refusal_with_a_reason() -> None:
    """modelstore may be stricter than Azure's loader, never more lenient, and each case says
    why."""
    for sample in SAMPLES:
        if sample.modelstore_accepts != sample.azure_accepts:
            assert sample.azure_accepts and not sample.modelstore_accepts, sample.name
            assert sample.why_different, sample.name
        else:
            assert not sample.why_different, sample.name


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_azure_ai_ml_gives_the_recorded_verdict(
    sample: Sample, sample_files: dict[str, Path]
) -> None:
    ml = pytest.importorskip(
        "azure.ai.ml", reason="azure-ai-ml is not installed (tox -e v2 installs it)"
    )
    loaders = {
        "model": ml.load_model,
        "endpoint": ml.load_online_endpoint,
        "deployment": ml.load_online_deployment,
    }
    path = sample_files[f"{sample.kind}-{sample.name}"]
    # azure-ai-ml resolves relative paths against the YAML file's folder too; it never needs
    # the current directory, but run it from elsewhere to prove that for both.
    cwd = os.getcwd()
    os.chdir(path.anchor)
    error = ""
    try:
        loaders[sample.kind](path)
    except Exception as exc:  # azure-ai-ml raises marshmallow's and its own errors
        error = str(exc)
    finally:
        os.chdir(cwd)
    assert (not error) is sample.azure_accepts, error
    if error and sample.key:  # refused for the same reason: the same top-level key
        assert f'"{sample.key.split(".")[0]}"' in error, error
