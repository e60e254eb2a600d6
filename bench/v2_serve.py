"""Ready time of ``modelstore serve -f blue-deployment.yml`` against the same script and model
laid out by hand; prints JSON.

The gallery's blue deployment (``fixtures/v2``: a Ridge model loaded with joblib in ``init()``)
is served three ways, rounds alternating, each measured from process start to the first
``GET /`` 200: ``serve -f`` (layout, environment and notes included), ``modelstore serve
--entry-script ... --model-dir ...`` on a folder laid out by hand as the cloud lays it out, and,
when given ``--azmlinfsrv PATH``, the real inference server on that same folder. The issue's
target is ``serve -f`` within 1.2x of azmlinfsrv's ready time; without azmlinfsrv the hand-laid
modelstore server is the baseline, which isolates what ``-f`` adds.

    python bench/v2_serve.py [--rounds 5] [--azmlinfsrv /path/to/bin/azmlinfsrv]
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve import Candidate, started

REPO = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.2


def lay_out(workdir: Path) -> tuple[Path, Path]:
    """The gallery with a trained model, and the same deployment laid out by hand: the
    code folder and ``azureml-models/<name>/1/model`` in an app root."""
    gallery = workdir / "v2"
    shutil.copytree(REPO / "fixtures" / "v2", gallery, ignore=shutil.ignore_patterns("model"))
    runpy.run_path(str(REPO / "fixtures" / "make_models.py"))["write_regression_model"](
        gallery / "model"
    )
    app = workdir / "by-hand"
    shutil.copytree(gallery / "onlinescoring", app / "onlinescoring")
    shutil.copytree(gallery / "model", app / "azureml-models" / "anonymous" / "1" / "model")
    return gallery, app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--azmlinfsrv", type=Path, help="azmlinfsrv 1.5.1 in its own venv")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-v2-") as scratch:
        workdir = Path(scratch)
        gallery, app = lay_out(workdir)
        modelstore = [sys.executable, "-m", "modelstore", "serve"]
        model_dir = os.fspath(app / "azureml-models" / "anonymous" / "1")
        script = os.fspath(app / "onlinescoring" / "score.py")
        candidates = [
            Candidate(
                "serve -f",
                lambda port: [
                    *modelstore,
                    "--port",
                    str(port),
                    "-f",
                    f"{gallery}/blue-deployment.yml",
                ],
            ),
            Candidate(
                "serve by hand",
                lambda port: [
                    *modelstore,
                    "--port",
                    str(port),
                    "--entry-script",
                    script,
                    "--model-dir",
                    model_dir,
                ],
            ),
        ]
        if args.azmlinfsrv is not None:
            azmlinfsrv = os.fspath(args.azmlinfsrv)
            candidates.append(
                Candidate(
                    "azmlinfsrv by hand",
                    lambda port: [azmlinfsrv, "--entry_script", script, "--port", str(port)],
                )
            )
        env = {
            **os.environ,
            "AML_APP_ROOT": os.fspath(app / "onlinescoring"),
            "AZUREML_MODEL_DIR": model_dir,
            "MODEL_COLOR": "blue",
        }
        ready: dict[str, list[float]] = {c.name: [] for c in candidates}
        for _ in range(args.rounds):
            for candidate in candidates:
                # serve -f sets its own variables; the others get the hand-made environment
                run_env = dict(os.environ) if candidate.name == "serve -f" else env
                with started(candidate, workdir, run_env) as (_port, seconds, _pid):
                    ready[candidate.name].append(seconds)
        medians = {name: statistics.median(values) for name, values in ready.items()}
        baseline = "azmlinfsrv by hand" if args.azmlinfsrv is not None else "serve by hand"
        ratio = medians["serve -f"] / medians[baseline]
        print(
            json.dumps(
                {
                    "ready_s_median": {k: round(v, 3) for k, v in medians.items()},
                    "ready_s_all": {k: [round(v, 3) for v in vs] for k, vs in ready.items()},
                    "baseline": baseline,
                    "ratio": round(ratio, 3),
                    "target_ratio": TARGET_RATIO,
                    "ok": ratio <= TARGET_RATIO,
                    "loadavg": os.getloadavg(),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
