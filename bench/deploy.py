"""Deployment speed, side by side with the real SDK in one run; prints JSON.

    python bench/deploy.py [--quick] [--workdir DIR]

What it measures (targets from issue 3):

- ``get_model_path``: per-call time of ``modelstore.get_model_path`` inside a deployment
  (``AML_APP_ROOT`` set, a name with 3 versions), latest and explicit version, best of 5 runs
  (target <= 20 us, and <= azureml-core's ``Model.get_model_path`` on the same tree when
  azureml-core is importable: run this script with an interpreter that has it, e.g.
  ``/work/venv-aml/bin/python bench/deploy.py``, to get the SDK column);
- ``deploy_100``: ``Registry.deploy`` of 100 registered models (64 KiB each) into a new app
  root, best of 5 (target <= 0.2 s, 0 model bytes copied: counted as regular files and their
  bytes under the app root); next to it ``layout_only_s`` (``build_deployment`` alone, without
  the 100 catalog look-ups), ``copy=True``, and a plain ``shutil.copytree`` of the same entries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GET_MODEL_PATH_TARGET_US = 20.0
DEPLOY_TARGET_S = 0.2
MODELS = 100
ENTRY_BYTES = 64 * 1024


def per_call_us(call: Callable[[], object], calls: int, runs: int = 5) -> float:
    """Best per-call time over ``runs`` loops of ``calls`` calls, in microseconds."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, time.perf_counter() - start)
    return round(best / calls * 1e6, 2)


def bench_get_model_path(work: Path, calls: int) -> dict[str, Any]:
    from modelstore import get_model_path

    app = work / "gmp-app"
    for version in (1, 2, 3):
        entry = app / "azureml-models" / "m" / str(version) / "model.pkl"
        entry.parent.mkdir(parents=True)
        entry.write_bytes(b"x")
    os.environ["AML_APP_ROOT"] = os.fspath(app)
    os.environ.pop("AZUREML_MODEL_DIR", None)
    expected = os.path.join(os.fspath(app), "azureml-models", "m", "3", "model.pkl")
    assert get_model_path("m") == expected
    result: dict[str, Any] = {
        "modelstore_latest_us": per_call_us(lambda: get_model_path("m"), calls),
        "modelstore_explicit_us": per_call_us(lambda: get_model_path("m", 2), calls),
        "target_us": GET_MODEL_PATH_TARGET_US,
    }
    try:
        import logging

        logging.disable(logging.CRITICAL)  # the SDK logs at DEBUG on every call
        from azureml.core import VERSION  # type: ignore[import-not-found, unused-ignore]
        from azureml.core import model as aml_model  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        result["sdk"] = "azureml-core not importable in this interpreter: ours alone"
        sdk_latest = sdk_explicit = None
    else:
        aml_model.MODELS_DIR = os.path.join(os.fspath(app), "azureml-models")
        assert aml_model.Model.get_model_path("m") == expected
        sdk_calls = max(calls // 10, 200)
        sdk_latest = per_call_us(lambda: aml_model.Model.get_model_path("m"), sdk_calls)
        sdk_explicit = per_call_us(lambda: aml_model.Model.get_model_path("m", 2), sdk_calls)
        result.update(
            sdk=f"azureml-core {VERSION}", sdk_latest_us=sdk_latest, sdk_explicit_us=sdk_explicit
        )
    ours = max(result["modelstore_latest_us"], result["modelstore_explicit_us"])
    result["ok"] = ours <= GET_MODEL_PATH_TARGET_US and (
        sdk_latest is None
        or (
            result["modelstore_latest_us"] <= sdk_latest
            and result["modelstore_explicit_us"] <= (sdk_explicit or 0)
        )
    )
    return result


def regular_files(root: Path) -> tuple[int, int]:
    """(count, bytes) of regular files under root, links not followed."""
    count = size = 0
    for folder, _subfolders, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                count += 1
                size += os.lstat(path).st_size
    return count, size


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def bench_deploy(work: Path, runs: int) -> dict[str, Any]:
    from modelstore import Registry
    from modelstore.deployment import ModelSource, build_deployment

    home = work / "home"
    source = work / "model.pkl"
    source.write_bytes(os.urandom(ENTRY_BYTES))
    refs = [f"model-{i:03d}:1" for i in range(MODELS)]
    with Registry(home) as registry:
        for ref in refs:
            registry.register(source, ref.split(":")[0])

        def deploy_into(name: str, copy: bool = False) -> Callable[[], object]:
            return lambda: registry.deploy(refs, work / name, copy=copy)

        linked = [timed(deploy_into(f"linked-{run}")) for run in range(runs)]
        copied = [timed(deploy_into(f"copied-{run}", copy=True)) for run in range(runs)]
        sources = [
            ModelSource(name=m.name, version=m.version, entry_path=m.path, registered=True)
            for m in (registry.get(ref.split(":")[0], 1) for ref in refs)
        ]
    layout_only = min(
        timed(lambda run=run: build_deployment(sources, work / f"layout-{run}"))  # type: ignore[misc]
        for run in range(runs)
    )
    files, size = regular_files(work / "linked-0")
    entries = [home / "azureml-models" / ref.split(":")[0] / "1" for ref in refs]
    plain_copy = min(
        timed(
            lambda run=run: [  # type: ignore[misc]
                shutil.copytree(entry, work / f"plain-{run}" / entry.parent.name / "1")
                for entry in entries
            ]
        )
        for run in range(runs)
    )
    best = min(linked)
    return {
        "models": MODELS,
        "entry_bytes": ENTRY_BYTES,
        "deploy_s": round(best, 4),
        "layout_only_s": round(layout_only, 4),
        "deploy_copy_s": round(min(copied), 4),
        "plain_copytree_s": round(plain_copy, 4),
        "regular_files_in_app_root": files,
        "model_bytes_copied": size,
        "target_s": DEPLOY_TARGET_S,
        "ok": best <= DEPLOY_TARGET_S and size == 0 and files == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and runs")
    parser.add_argument("--workdir", type=Path, help="where to build (default: a temp folder)")
    args = parser.parse_args()
    calls, runs = (2_000, 3) if args.quick else (20_000, 5)
    work = Path(tempfile.mkdtemp(prefix="modelstore-bench-deploy-", dir=args.workdir))
    previous_home = os.environ.get("MODELSTORE_HOME")
    os.environ["MODELSTORE_HOME"] = os.fspath(work / "home")
    try:
        result = {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "get_model_path": bench_get_model_path(work, calls),
            "deploy_100": bench_deploy(work, runs),
        }
    finally:
        if previous_home is None:
            os.environ.pop("MODELSTORE_HOME", None)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
