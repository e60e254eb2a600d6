"""Registry speed, measured side by side with baselines in one run; prints JSON.

    python bench/registry.py [--quick] [--mlflow-python PATH] [--workdir DIR]

What it measures (targets from issue 2):

- ``register_4k``: registering versions of a 4 KB file through the Python API, versions/s
  (target >= 600), next to a naive "copy file + sqlite3 INSERT + commit" loop, the disk's own
  write-4-KB-and-fsync latency (a durable registration cannot beat it) and, when
  ``--mlflow-python`` names an interpreter with MLflow installed, MLflow's model registry on
  SQLite (copy the file + ``create_model_version``);
- ``path_lookup``: ``Registry.path(name, version)`` latency p50/p95 at 100, 1,000 and 10,000
  stored versions of one name (target p50 <= 50 us, flat), and ``path("name@alias")``, next
  to MLflow's
  ``get_model_version(...).source`` when available;
- ``register_large``: registering one 200 MB file (copy + sha256 + fsync + publish) against
  ``sha256sum`` of the same file, and a plain copy + fsync (the write floor); all measured warm
  (the file is read once first, so none pays for the disk read), best of 5 (target ratio
  <= 1.2);
- ``cli_help``: wall time of ``modelstore --help`` in a new process (target <= 0.3 s), with a
  bare ``python -c pass`` for the interpreter's own share.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelstore import Registry

REGISTER_TARGET_PER_S = 600
PATH_P50_TARGET_US = 50.0
LARGE_RATIO_TARGET = 1.2
HELP_TARGET_S = 0.3
LOOKUPS_PER_LEVEL = 2000


def make_file(path: Path, size: int) -> Path:
    """Random (incompressible) bytes, written in 8 MiB chunks."""
    chunk = 8 * 1024 * 1024
    with path.open("wb") as out:
        left = size
        while left > 0:
            out.write(os.urandom(min(chunk, left)))
            left -= chunk
    return path


def warm(path: Path) -> None:
    """Read the file once so every timed reader finds it in the page cache."""
    with path.open("rb") as source:
        while source.read(8 * 1024 * 1024):
            pass


def remove_tree(root: Path) -> None:
    """Delete the scratch folder; stored entries are read-only, so make them writable first."""
    for folder, _dirs, _files in os.walk(root):
        os.chmod(folder, 0o755)
    shutil.rmtree(root, ignore_errors=True)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- registering many small versions --------------------------------------------------------


def modelstore_register_rate(registry: Registry, source: Path, name: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        registry.register(source, name)
    return count / (time.perf_counter() - started)


def naive_register_rate(root: Path, source: Path, count: int) -> float:
    """What a hand-written registry would do: copy, INSERT, commit; no hashing, no staging."""
    root.mkdir()
    connection = sqlite3.connect(root / "registry.db")
    connection.execute(
        "CREATE TABLE versions (name TEXT, version INTEGER, path TEXT, PRIMARY KEY (name, version))"
    )
    started = time.perf_counter()
    for version in range(1, count + 1):
        folder = root / "azureml-models" / "bench_model" / str(version)
        folder.mkdir(parents=True)
        shutil.copyfile(source, folder / source.name)
        connection.execute(
            "INSERT INTO versions VALUES (?, ?, ?)",
            ("bench_model", version, str(folder / source.name)),
        )
        connection.commit()
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed


def fsync_latency_ms(workdir: Path, count: int = 200) -> float:
    """The disk's floor for a durable registration: write 4 KB to a new file and fsync it."""
    folder = workdir / "fsync-probe"
    folder.mkdir()
    data = os.urandom(4096)
    samples = []
    for index in range(count):
        started = time.perf_counter()
        descriptor = os.open(folder / str(index), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def register_rates(workdir: Path, source: Path, count: int, rounds: int) -> dict[str, Any]:
    """modelstore and the naive loop take turns, so both meet the same disk and machine load
    (the machine may be shared; an fsync costs what the disk's queue makes it cost)."""
    registry = Registry(home=workdir / "rate-home")
    registry.register(source, "warmup")  # the first open creates and migrates the catalog
    modelstore: list[float] = []
    naive: list[float] = []
    for index in range(rounds):
        modelstore.append(modelstore_register_rate(registry, source, f"bench{index}", count))
        naive.append(naive_register_rate(workdir / f"naive-home-{index}", source, count))
    return {
        "versions_per_round": count,
        "rounds": rounds,
        "modelstore_per_s": round(max(modelstore), 1),
        "modelstore_median_per_s": round(statistics.median(modelstore), 1),
        "naive_copy_sqlite_commit_per_s": round(max(naive), 1),
        "naive_median_per_s": round(statistics.median(naive), 1),
        "ok": max(modelstore) >= REGISTER_TARGET_PER_S,
    }


# --- path lookups ---------------------------------------------------------------------------


def time_calls(call: Callable[[int], object], versions: int, lookups: int) -> dict[str, float]:
    picks = [random.randint(1, versions) for _ in range(lookups)]
    for version in picks[:100]:  # warm-up: caches, first-statement compilation
        call(version)
    samples = []
    for version in picks:
        started = time.perf_counter_ns()
        call(version)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return {
        "p50_us": round(percentile(samples, 0.50), 1),
        "p95_us": round(percentile(samples, 0.95), 1),
    }


def modelstore_path_latency(
    workdir: Path, source: Path, levels: list[int], lookups: int
) -> list[dict[str, Any]]:
    registry = Registry(home=workdir / "lookup-home")
    stored = 0
    results = []
    for level in levels:
        while stored < level:
            registry.register(source, "bench_model")
            stored += 1
        by_version = time_calls(lambda v: registry.path("bench_model", v), level, lookups)
        latest = time_calls(lambda _v: registry.path("bench_model"), level, lookups)
        row = {
            "versions": level,
            **by_version,
            "latest_p50_us": latest["p50_us"],
            "latest_p95_us": latest["p95_us"],
        }
        if hasattr(registry, "set_alias"):  # NAME@ALIAS: one more indexed query (issue 13)
            registry.set_alias("bench_model", "champion", level // 2)
            alias = time_calls(lambda _v: registry.path("bench_model@champion"), level, lookups)
            row |= {"alias_p50_us": alias["p50_us"], "alias_p95_us": alias["p95_us"]}
        results.append(row)
    return results


# --- MLflow, in its own interpreter ---------------------------------------------------------

MLFLOW_SCRIPT = r"""
import json, random, shutil, sys, time, logging
from pathlib import Path
logging.disable(logging.WARNING)
import mlflow
from mlflow import MlflowClient

work, source, count, levels, lookups = sys.argv[1:6]
work, source, count, lookups = Path(work), Path(source), int(count), int(lookups)
levels = [int(x) for x in levels.split(",") if x]

def client_for(folder):
    folder.mkdir(parents=True)
    uri = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient()
    client.create_registered_model("bench_model")
    return client

def register(client, folder, version):
    target = folder / "artifacts" / str(version)
    target.mkdir(parents=True)
    shutil.copyfile(source, target / source.name)
    client.create_model_version("bench_model", source=str(target))

folder = work / "mlflow-rate"
client = client_for(folder)
started = time.perf_counter()
for version in range(1, count + 1):
    register(client, folder, version)
rate = count / (time.perf_counter() - started)

folder = work / "mlflow-lookup"
client = client_for(folder)
stored, latency = 0, []
for level in levels:
    while stored < level:
        stored += 1
        register(client, folder, stored)
    samples = []
    for _ in range(lookups):
        version = random.randint(1, level)
        started = time.perf_counter_ns()
        client.get_model_version("bench_model", str(version)).source
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    latency.append({"versions": level, "p50_us": round(samples[len(samples) // 2], 1),
                    "p95_us": round(samples[int(0.95 * len(samples))], 1)})
print(json.dumps({"version": mlflow.__version__, "register_per_s": round(rate, 1),
                  "path_lookup": latency}))
"""


def mlflow_baseline(
    python: str, workdir: Path, source: Path, count: int, levels: list[int], lookups: int
) -> dict[str, Any]:
    done = subprocess.run(
        [
            python,
            "-c",
            MLFLOW_SCRIPT,
            str(workdir / "mlflow"),
            str(source),
            str(count),
            ",".join(map(str, levels)),
            str(lookups),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- one large file -------------------------------------------------------------------------


def elapsed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def copy_and_fsync(source: Path, target: Path) -> None:
    """The write floor of a durable registration: copy (no hashing), then fsync the copy."""
    shutil.copyfile(source, target)
    descriptor = os.open(target, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def large_file(workdir: Path, size: int, runs: int) -> dict[str, Any]:
    """sha256sum, a plain copy+fsync and a registration take turns on the same warm file.

    Before each timed action the page cache's dirty pages are written out (untimed), so no
    round pays for the previous round's writes; best of ``runs`` each.
    """
    source = make_file(workdir / "large_model.bin", size)
    warm(source)
    registry = Registry(home=workdir / "large-home")
    registry.register(workdir / "rate-source.bin", "warmup")
    copy_target = workdir / "large_copy.bin"
    hash_only = ["sha256sum", str(source)]
    times: dict[str, list[float]] = {"sha256sum": [], "copy_fsync": [], "register": []}
    for _ in range(runs):
        os.sync()
        times["sha256sum"].append(
            elapsed(lambda: subprocess.run(hash_only, check=True, capture_output=True))
        )
        os.sync()
        times["copy_fsync"].append(elapsed(lambda: copy_and_fsync(source, copy_target)))
        copy_target.unlink()
        os.sync()
        times["register"].append(elapsed(lambda: registry.register(source, "large_model")))
        registry.delete("large_model")
    best = {what: min(values) for what, values in times.items()}
    ratio = best["register"] / best["sha256sum"]
    return {
        "size_mb": size // (1024 * 1024),
        "register_s": round(best["register"], 3),
        "sha256sum_s": round(best["sha256sum"], 3),
        "copy_fsync_s": round(best["copy_fsync"], 3),
        "ratio": round(ratio, 2),
        "ratio_per_round": [
            round(r / h, 2) for r, h in zip(times["register"], times["sha256sum"], strict=True)
        ],
        "target_ratio": LARGE_RATIO_TARGET,
        "ok": ratio <= LARGE_RATIO_TARGET,
        "method": (
            f"best of {runs} alternating rounds; source warm in the page cache; dirty pages "
            "written out (untimed) before each action; copy_fsync = shutil.copyfile + fsync, "
            "the write floor without hashing"
        ),
    }


# --- CLI start-up ---------------------------------------------------------------------------


def wall_times(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def cli_help(runs: int) -> dict[str, Any]:
    script = Path(sys.executable).parent / "modelstore"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "modelstore"]
    wall_times([*command, "--help"], 1)  # bytecode compiled, files cached
    help_times = wall_times([*command, "--help"], runs)
    bare = wall_times([sys.executable, "-c", "pass"], runs)
    median = statistics.median(help_times)
    return {
        "command": " ".join([Path(command[0]).name, *command[1:], "--help"]),
        "median_s": round(median, 3),
        "best_s": round(min(help_times), 3),
        "python_c_pass_median_s": round(statistics.median(bare), 3),
        "target_s": HELP_TARGET_S,
        "ok": median <= HELP_TARGET_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A smaller run (about 10 s).")
    parser.add_argument(
        "--mlflow-python", help="Interpreter with MLflow installed, for the MLflow baseline."
    )
    parser.add_argument("--workdir", type=Path, help="Scratch folder [default: a temp folder].")
    options = parser.parse_args()

    count = 200 if options.quick else 1000
    levels = [100, 1000] if options.quick else [100, 1000, 10000]
    mlflow_levels = [100] if options.quick else [100, 1000]
    lookups = 500 if options.quick else LOOKUPS_PER_LEVEL
    large_size = (20 if options.quick else 200) * 1024 * 1024
    runs = 5

    load_at_start = os.getloadavg()[0]  # other work on the machine skews fsync-bound figures
    workdir = Path(tempfile.mkdtemp(prefix="modelstore-bench-", dir=options.workdir))
    try:
        source = make_file(workdir / "rate-source.bin", 4096)
        rates = register_rates(workdir, source, count, rounds=3)
        fsync_ms = fsync_latency_ms(workdir)
        mlflow = (
            mlflow_baseline(options.mlflow_python, workdir, source, count, mlflow_levels, lookups)
            if options.mlflow_python
            else None
        )
        lookup = modelstore_path_latency(workdir, source, levels, lookups)
        result = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "load_average_1m_at_start": round(load_at_start, 2),
                "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            },
            "quick": options.quick,
            "register_4k": {
                **rates,
                "mlflow_per_s": (mlflow or {}).get("register_per_s"),
                "disk_write_4k_fsync_median_ms": round(fsync_ms, 3),
                "target_per_s": REGISTER_TARGET_PER_S,
            },
            "path_lookup": {
                "modelstore": lookup,
                "mlflow_get_model_version": (mlflow or {}).get("path_lookup"),
                "target_p50_us": PATH_P50_TARGET_US,
                "ok": all(level["p50_us"] <= PATH_P50_TARGET_US for level in lookup),
            },
            "register_large": large_file(workdir, large_size, runs),
            "cli_help": cli_help(7),
            "mlflow": {"version": mlflow.get("version"), "error": mlflow.get("error")}
            if mlflow
            else None,
        }
    finally:
        remove_tree(workdir)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
