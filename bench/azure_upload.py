"""The client's CPU per request of an ``az://`` store, on Azurite; prints JSON.

    python bench/azure_upload.py [--files 200] [--size-kb 8] [--rounds 5] [--source DIR]
        [--extra-env N] [--profile FILE]

What a registration of one small file costs the client in the store (issue 12: its share of
the ~15 ms of client CPU per registration): ``put`` is ``upload_missing(store, [file])`` of a
new file of ``--size-kb`` random bytes (what ``Registry.register`` calls for a one-file
version: the buffer and the upload), ``has`` is ``store.has`` of a blob that exists. Each figure
is client CPU (``time.process_time``) and wall time per call, averaged over ``--files`` calls in
a worker process that opened the store first (the SDK's imports and the first connection are
not counted). ``--source DIR`` also times another checkout's modelstore
(``git archive main modelstore | tar -x -C DIR``) in every round, taking turns with this one,
for before/after figures under the same load; the figures of each are the medians of its
rounds (CPU time swings with what else runs on a shared machine), with every round's beside
them. ``--extra-env N`` adds N variables to the workers' environment (a CI runner or a
developer's shell often has 100 or more): a client that scans the environment on every request
pays for each of them. The JSON records how many variables the workers had. Starts its own
Azurite (``tests/azurite.py``; ``azurite-blob`` on PATH, e.g.
``export PATH=/work/tools/npm/node_modules/.bin:$PATH``) and stops it at the end.
``--profile FILE`` writes a CPU-time cProfile of this checkout's puts and has of the last round
(cProfile inflates the cost of many small Python calls several times over: read it for where
the CPU goes, never for how much).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from azurite import azurite_program, start_azurite

CONTAINER = "models"


def worker(argv: list[str]) -> None:
    """``_worker STORE_URL PROFILE|- FILE...``: one JSON line of totals (the environment holds
    AZURE_STORAGE_CONNECTION_STRING)."""
    from modelstore.store.shared import open_store, upload_missing

    store_url, profile, *files = argv
    digests = []
    for path in files:
        with open(path, "rb") as reader:
            digests.append(hashlib.sha256(reader.read()).hexdigest())
    store = open_store(store_url)
    profiler = cProfile.Profile(time.process_time) if profile != "-" else None
    if profiler is not None:
        profiler.enable()
    cpu, wall = time.process_time(), time.perf_counter()
    written = sum(upload_missing(store, [pair]) for pair in zip(files, digests, strict=True))
    put_cpu, put_wall = time.process_time() - cpu, time.perf_counter() - wall
    cpu, wall = time.process_time(), time.perf_counter()
    found = sum(store.has(digest) for digest in digests)
    has_cpu, has_wall = time.process_time() - cpu, time.perf_counter() - wall
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    count = len(files)
    print(
        json.dumps(
            {
                "written": written,
                "found": found,
                "put_cpu_ms": round(put_cpu / count * 1e3, 3),
                "put_wall_ms": round(put_wall / count * 1e3, 3),
                "has_cpu_ms": round(has_cpu / count * 1e3, 3),
                "has_wall_ms": round(has_wall / count * 1e3, 3),
            }
        )
    )


def make_files(folder: Path, count: int, size: int) -> list[str]:
    folder.mkdir(parents=True)
    paths = []
    for index in range(count):
        path = folder / f"{index}.pkl"
        path.write_bytes(os.urandom(size))
        paths.append(str(path))
    return paths


def run_worker(
    files: list[str], env: dict[str, str], source: Path | None, profile: str
) -> dict[str, Any]:
    if source is not None:
        env = {**env, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [sys.executable, __file__, "_worker", f"az://{CONTAINER}", profile, *files],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"a worker failed: {done.stderr.strip()[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    if report["written"] != len(files) or report["found"] != len(files):
        raise RuntimeError(f"a worker did not upload every file: {report}")
    return report


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="Puts (and has) per round.")
    parser.add_argument("--size-kb", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--extra-env", type=int, default=0, help="Variables to add to the env.")
    parser.add_argument("--source", type=Path, help="Another checkout to time beside this one.")
    parser.add_argument("--profile", help="cProfile output of this checkout's last round.")
    options = parser.parse_args()
    program = azurite_program()
    if program is None:
        sys.exit(
            "Error: this benchmark needs Azurite (azurite-blob on PATH, e.g. "
            "export PATH=/work/tools/npm/node_modules/.bin:$PATH)"
        )
    from azure.storage.blob import BlobServiceClient

    load_at_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-azure-"))
    azurite = start_azurite(program)
    sides = {"modelstore": None} | (
        {"other_source": options.source.resolve()} if options.source else {}
    )
    figures: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    try:
        BlobServiceClient.from_connection_string(azurite.connection_string).create_container(
            CONTAINER
        )
        env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
        env |= {f"BENCH_EXTRA_{index}": "x" * 40 for index in range(options.extra_env)}
        for round_ in range(options.rounds):
            for side, source in sides.items():
                files = make_files(work / f"{side}-{round_}", options.files, options.size_kb * 1024)
                last = round_ == options.rounds - 1
                profile = options.profile if options.profile and last and source is None else "-"
                figure = run_worker(files, env, source, profile)
                figures[side].append(figure)
                print(f"round {round_} {side}: {figure}", file=sys.stderr)
    finally:
        azurite.stop()
        shutil.rmtree(work, ignore_errors=True)

    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in load_at_start],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "load": {
            "files_per_round": options.files,
            "size_kb": options.size_kb,
            "rounds": options.rounds,
            "store": "az:// on Azurite (loopback)",
            "environment_variables": len(env),
            "other_source": None if options.source is None else str(options.source),
        },
    }
    measures = ("put_cpu_ms", "put_wall_ms", "has_cpu_ms", "has_wall_ms")
    for side, rounds in figures.items():
        result[side] = {
            **{what: round(statistics.median(r[what] for r in rounds), 3) for what in measures},
            "put_cpu_ms_per_round": [r["put_cpu_ms"] for r in rounds],
            "has_cpu_ms_per_round": [r["has_cpu_ms"] for r in rounds],
        }
    if "other_source" in result:
        for what in ("put_cpu_ms", "has_cpu_ms"):
            ratio = result["modelstore"][what] / result["other_source"][what]
            result[f"{what}_ratio_vs_other_source"] = round(ratio, 2)
            # each round's pair ran back to back, under (nearly) the same load
            result[f"{what}_ratio_per_round"] = [
                round(m[what] / o[what], 2)
                for m, o in zip(figures["modelstore"], figures["other_source"], strict=True)
            ]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
