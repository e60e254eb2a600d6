"""Archive speed: ``export`` then ``import`` against ``tar`` + ``sha256sum`` of the same files,
in one run; prints JSON.

    python bench/archive.py [--total-mb 1024] [--versions 10] [--rounds 3] [--workdir DIR]
                            [--source DIR]

Target (issue 13): export then import of 1 GB across 10 versions within 1.5x of ``tar cf`` of
the stored files plus ``sha256sum`` of them. Each round runs the baseline and modelstore in
turn (best of the rounds counts); the files are read once beforehand, so both run on a warm
page cache. modelstore's import also fsyncs every file it writes (a durable store), which
neither baseline step does (each step starts after a ``sync``, so none pays for the writeback of
another's files); ``tar_roundtrip`` (tar cf + tar xf + sha256sum) is reported for
context, as the closest thing a shell user would do to move and check the same bytes.
``--source DIR`` also runs export + import with another checkout's modelstore in every round
(``git archive main modelstore | tar -x -C DIR``), for before/after figures under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from modelstore import Registry

TARGET_RATIO = 1.5


def timed(action: Callable[[], object]) -> float:
    """Starts with no dirty data left by the step before (the baselines leave GBs unsynced,
    whose writeback would otherwise land on whichever step follows them)."""
    if hasattr(os, "sync"):
        os.sync()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-mb", type=int, default=1024)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--source", type=Path, default=None, help="another checkout to compare")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-archive-", dir=args.workdir))
    try:
        result = run(work, args.total_mb, args.versions, args.rounds, args.source)
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


_OTHER = """
import json, sys, time
from modelstore import Registry
source, work, refs = Registry(sys.argv[1]), sys.argv[2], sys.argv[3:]
start = time.perf_counter()
source.export(refs, work + "/other.tar")
middle = time.perf_counter()
Registry(work + "/other-target").import_(work + "/other.tar")
print(json.dumps([middle - start, time.perf_counter() - middle]))
"""


def other_checkout(checkout: Path, home: Path, work: Path, refs: list[str]) -> float:
    """export + import seconds with the modelstore of ``checkout`` (timed inside the child)."""
    for leftover in (work / "other.tar", work / "other-target"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        elif leftover.exists():
            leftover.unlink()
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(
        [sys.executable, "-c", _OTHER, str(home), str(work), *refs],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(sum(json.loads(done.stdout)))


def run(
    work: Path, total_mb: int, versions: int, rounds: int, checkout: Path | None = None
) -> dict[str, object]:
    size = total_mb * 1024 * 1024 // versions
    source = Registry(work / "source")
    model = work / "model.bin"
    for _ in range(versions):  # incompressible bytes, different per version
        with open(model, "wb") as handle:
            for _chunk in range(0, size, 1 << 20):
                handle.write(os.urandom(min(1 << 20, size - _chunk)))
        source.register(model, "big")
    model.unlink()
    stored = [str(source.path("big", v)) for v in source.versions("big")]
    models_dir = str(source.layout.models_dir)
    relative = [os.path.relpath(p, models_dir) for p in stored]
    subprocess.run(["cat", *stored], stdout=subprocess.DEVNULL, check=True)  # warm

    def baseline() -> None:
        subprocess.run(
            ["tar", "cf", str(work / "base.tar"), "-C", models_dir, *relative], check=True
        )
        subprocess.run(["sha256sum", *stored], stdout=subprocess.DEVNULL, check=True)

    def tar_roundtrip() -> None:
        baseline()
        (work / "base-x").mkdir()
        subprocess.run(
            ["tar", "xf", str(work / "base.tar"), "-C", str(work / "base-x")], check=True
        )

    refs = [f"big:{v}" for v in source.versions("big")]
    timings: dict[str, list[float]] = {
        "baseline": [],
        "tar_roundtrip": [],
        "export": [],
        "import": [],
    }
    other: list[float] = []
    for round_ in range(rounds):
        for leftover in ("base.tar", "base-x", "out.tar", "target"):
            path = work / leftover
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        timings["baseline"].append(timed(baseline))
        (work / "base.tar").unlink()
        timings["tar_roundtrip"].append(timed(tar_roundtrip))
        timings["export"].append(timed(lambda: source.export(refs, work / "out.tar")))
        target = Registry(work / "target")
        timings["import"].append(timed(lambda t=target: t.import_(work / "out.tar")))  # type: ignore[misc]
        assert len(target.list()) == versions, round_
        target.close()
        if checkout is not None:
            if hasattr(os, "sync"):
                os.sync()
            other.append(other_checkout(checkout, source.home, work, refs))
    source.close()
    best = {key: min(values) for key, values in timings.items()}
    ours = min(e + i for e, i in zip(timings["export"], timings["import"], strict=True))
    ratio = ours / best["baseline"]
    compared: dict[str, object] = {}
    if other:
        compared = {
            "other_source": str(checkout),
            "other_export_plus_import_s": round(min(other), 3),
            "other_ratio_vs_tar_plus_sha256sum": round(min(other) / best["baseline"], 3),
            "speedup_vs_other": round(min(other) / ours, 3),
        }
    return {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "loadavg": os.getloadavg(),
        "total_mb": total_mb,
        "versions": versions,
        "rounds": rounds,
        "best_s": {key: round(value, 3) for key, value in best.items()},
        "export_plus_import_s": round(ours, 3),
        "ratio_vs_tar_plus_sha256sum": round(ratio, 3),
        "ratio_vs_tar_roundtrip": round(ours / best["tar_roundtrip"], 3),
        "target_ratio": TARGET_RATIO,
        "ok": ratio <= TARGET_RATIO,
        "all_s": {key: [round(v, 3) for v in values] for key, values in timings.items()},
        **compared,
    }


if __name__ == "__main__":
    main()
