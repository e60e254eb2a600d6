"""A registry a team shares, under concurrent load, side by side with MLflow 3 in one run;
prints JSON.

    python bench/team_registry.py --mlflow-python /tmp/bench-mlflow3/bin/python \
        [--rounds 3] [--per-process 25] [--size-kb 8]

Target (issue 12): aggregate registrations/s of 8 processes over 2 homes, on one PostgreSQL
catalog and one ``az://`` store on Azurite, at least 2x MLflow 3 under the same load with the
same PostgreSQL server as its backend store and a local artifact root.

It starts its own throwaway PostgreSQL (``tests/pg.py``; with ``fsync`` on, as a team's server
runs: the tests' cluster turns it off) and its own Azurite (``tests/azurite.py``; needs
``azurite-blob`` on PATH), and stops both at the end, Ctrl-C included. Every registration is of
a new file of ``--size-kb`` random bytes (a small pickled model; distinct bytes, so the store's
dedup never spares an upload), prepared before the clock starts. Each worker process opens its
registry (or MLflow client) first, then all start together; the rate is every registration of
the 8 processes over the wall time from the first start to the last finish.

- ``modelstore``: 4 processes per home, two homes, one catalog (``MODELSTORE_DB_URL``) and one
  store (``MODELSTORE_STORE_URL=az://models``), ``Registry.register(path, name)``.
- ``mlflow``: 8 processes, ``MlflowClient`` with ``postgresql://`` tracking and registry URIs (a
  database of its own on the same server) and an experiment whose artifact root is a local
  folder. One registration is what an MLflow user does to register a model file, through the
  client's direct calls rather than the fluent API (which adds context tags and, in MLflow 3, a
  logged-model search): ``create_run``, ``log_artifact`` (the file, into the run's ``model/``),
  ``set_terminated`` and ``create_model_version(name, source=<the run's model/ folder>,
  run_id=...)``. The registered models exist before the clock starts.
- ``mlflow_bare`` (``--mlflow-bare``): the least MLflow can do to store a file and record a
  version: copy it into the artifact root and ``create_model_version`` (no run), as
  ``bench/registry.py`` does; the floor of any MLflow registration.

Two namings, each timed in every round: ``one_name`` (all 8 processes register versions of one
name: every registration queues on that name's number) and ``own_name`` (one name per process).
Rounds take turns (modelstore, then MLflow, per naming), so both meet the same load; the figure
is the best round of each, with the per-round rates and each round's ratio beside it (on a
shared machine the load drifts between rounds: a round's pair ran back to back).
``--profile DIR`` writes a CPU-time cProfile of each modelstore worker there (to find where its CPU
goes); ``--source DIR`` also times another checkout's modelstore under the same load in every
round (``git archive main modelstore | tar -x -C DIR``), for before/after figures.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from azurite import Azurite, azurite_program, start_azurite
from pg import PgServer, pg_bin_dir, start_server

TARGET_RATIO = 2.0
PROCESSES = 8
HOMES = 2
CONTAINER = "models"
NAMINGS = ("one_name", "own_name")

# --- the worker processes -------------------------------------------------------------------
#
# Both kinds speak the same protocol: open everything, print "ready", wait for a line on stdin,
# register each file given, print one JSON line {"start", "end", "latencies", "errors"}. A
# registration that raises is counted (the first message kept) and the load goes on: MLflow
# gives up on a version after 3 attempts when processes race for one name's next number.

MLFLOW_WORKER = r"""
import json, logging, os, shutil, sys, time, warnings
logging.disable(logging.WARNING)
warnings.filterwarnings("ignore")
from mlflow import MlflowClient

uri, experiment, name, flavour, artifacts, files = (
    sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
)
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
client.get_registered_model(name)  # the store's engine and schema check, before the clock

def register_with_run(path):
    run = client.create_run(experiment)
    client.log_artifact(run.info.run_id, path, "model")
    client.set_terminated(run.info.run_id)
    client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)

def register_bare(path):
    target = os.path.join(artifacts, "bare", f"{os.getpid()}-{time.monotonic_ns()}")
    os.makedirs(target)
    shutil.copyfile(path, os.path.join(target, os.path.basename(path)))
    client.create_model_version(name, target)

register = register_with_run if flavour == "run" else register_bare
print("ready", flush=True)
sys.stdin.readline()
latencies, errors = [], []
start, cpu = time.time(), time.process_time()
for path in files:
    began = time.perf_counter()
    try:
        register(path)
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}"[:300])
        continue
    latencies.append(time.perf_counter() - began)
end, cpu = time.time(), time.process_time() - cpu
report = {"start": start, "end": end, "cpu": cpu, "latencies": latencies, "errors": errors}
print(json.dumps(report))
"""


def modelstore_worker(argv: list[str]) -> None:
    """``_worker HOME DB_URL STORE_URL NAME PROFILE|- FILE...`` (the environment is the
    parent's, with AZURE_STORAGE_CONNECTION_STRING)."""
    from modelstore import Registry

    home, db_url, store_url, name, profile, *files = argv
    registry = Registry(home, db_url, store_url=store_url)
    print("ready", flush=True)
    sys.stdin.readline()
    profiler = cProfile.Profile(time.process_time) if profile != "-" else None
    latencies, errors = [], []
    start, cpu = time.time(), time.process_time()
    if profiler is not None:
        profiler.enable()
    for path in files:
        began = time.perf_counter()
        try:
            registry.register(path, name)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
            continue
        latencies.append(time.perf_counter() - began)
    end, cpu = time.time(), time.process_time() - cpu
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    registry.close()
    report = {"start": start, "end": end, "cpu": cpu, "latencies": latencies, "errors": errors}
    print(json.dumps(report))


# --- running one load -----------------------------------------------------------------------


def make_models(folder: Path, count: int, size: int) -> list[str]:
    """``count`` new files ``<folder>/<i>/model.pkl`` of random bytes (one entry name for all,
    as a retrained model's file keeps its name)."""
    paths = []
    for index in range(count):
        target = folder / str(index)
        target.mkdir(parents=True)
        (target / "model.pkl").write_bytes(os.urandom(size))
        paths.append(str(target / "model.pkl"))
    return paths


def _line(stream: IO[str] | None) -> str:
    assert stream is not None
    return stream.readline()


def run_load(commands: list[list[str]], env: dict[str, str]) -> dict[str, Any]:
    """Start every worker, wait until each is ready, let them go at once; the rate over the
    wall time from the first start to the last finish."""
    workers = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for command in commands
    ]
    try:
        for worker in workers:
            if _line(worker.stdout).strip() != "ready":
                worker.wait()
                raise RuntimeError(f"a worker failed before starting: {worker.args[:4]}")
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = []
        for worker in workers:
            line = _line(worker.stdout)
            if worker.wait() != 0 or not line:
                raise RuntimeError(f"a worker failed: {worker.args[:4]}")
            reports.append(json.loads(line))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    latencies = sorted(x for report in reports for x in report["latencies"])
    errors = [e for report in reports for e in report["errors"]]
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    return {
        "registrations": len(latencies),
        "failed": len(errors),
        **({"first_error": errors[0]} if errors else {}),
        "wall_s": round(wall, 3),
        "per_s": round(len(latencies) / wall, 1),
        "latency_p50_ms": round(statistics.median(latencies) * 1e3, 1),
        "latency_p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1e3, 1),
        "client_cpu_ms_per_registration": round(
            sum(r["cpu"] for r in reports) / max(len(latencies), 1) * 1e3, 2
        ),
    }


class Bench:
    """The servers, the scratch folder and what each system needs to run one load."""

    def __init__(self, options: argparse.Namespace, pg: PgServer, azurite: Azurite) -> None:
        self.options = options
        self.pg = pg
        self.azurite = azurite
        self.work = Path(tempfile.mkdtemp(prefix="bench-team-"))
        self.size = options.size_kb * 1024
        self.catalog_url = pg.createdb("modelstore")
        self.store_url = f"az://{CONTAINER}"
        self.env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
        self.homes = [self.work / f"home-{chr(ord('a') + i)}" for i in range(HOMES)]
        self.loads = 0
        self.mlflow_uri = ""
        self.experiment = ""

    def prepare_modelstore(self) -> None:
        """The container, then a first registration from each home (creates the catalog's
        schema, records its store), untimed."""
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.azurite.connection_string)
        service.create_container(CONTAINER)
        os.environ["AZURE_STORAGE_CONNECTION_STRING"] = self.azurite.connection_string
        from modelstore import Registry

        for home in self.homes:
            with Registry(home, self.catalog_url, store_url=self.store_url) as registry:
                source = make_models(self.work / f"warmup-{home.name}", 1, self.size)[0]
                registry.register(source, "warmup")

    def prepare_mlflow(self, python: str, names: list[str]) -> str:
        """A database of its own on the same server, MLflow's schema in it, an experiment
        with a local artifact root and the registered models; MLflow's version."""
        database = self.pg.createdb("mlflow").replace("+psycopg://", "+psycopg2://")
        artifacts = self.work / "mlflow-artifacts"
        artifacts.mkdir()
        setup = (
            "import logging, sys, warnings; logging.disable(logging.WARNING); "
            "warnings.filterwarnings('ignore'); import mlflow; from mlflow import MlflowClient\n"
            "uri, root, names = sys.argv[1], sys.argv[2], sys.argv[3:]\n"
            "client = MlflowClient(tracking_uri=uri, registry_uri=uri)\n"
            "experiment = client.create_experiment('team-bench', artifact_location=root)\n"
            "for name in names: client.create_registered_model(name)\n"
            "print(experiment, mlflow.__version__)\n"
        )
        done = subprocess.run(
            [python, "-c", setup, database, artifacts.as_uri(), *names],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"MLflow set-up failed: {done.stderr.strip()[-2000:]}")
        self.experiment, version = done.stdout.split()[-2:]
        self.mlflow_uri = database
        return version

    def _names(self, system: str, naming: str, round_: int) -> list[str]:
        base = f"{system}-{naming}-r{round_}"
        if naming == "one_name":
            return [base] * PROCESSES
        return [f"{base}-p{index}" for index in range(PROCESSES)]

    def _files(self, per_process: int) -> list[list[str]]:
        self.loads += 1
        folder = self.work / f"models-{self.loads}"
        return [
            make_models(folder / str(index), per_process, self.size) for index in range(PROCESSES)
        ]

    def modelstore(self, naming: str, round_: int, source: Path | None = None) -> dict[str, Any]:
        """This checkout's modelstore, or the one in ``source`` (first on PYTHONPATH)."""
        files = self._files(self.options.per_process)
        names = self._names("modelstore" if source is None else "source", naming, round_)
        commands = []
        for index in range(PROCESSES):
            home = self.homes[index * HOMES // PROCESSES]
            profile = "-"
            if self.options.profile is not None and source is None:
                profile = str(self.options.profile / f"{naming}-r{round_}-p{index}.prof")
            commands.append(
                [
                    sys.executable,
                    __file__,
                    "_worker",
                    str(home),
                    self.catalog_url,
                    self.store_url,
                    names[index],
                    profile,
                    *files[index],
                ]
            )
        env = self.env if source is None else {**self.env, "PYTHONPATH": str(source)}
        return run_load(commands, env)

    def mlflow(self, python: str, flavour: str, naming: str, round_: int) -> dict[str, Any]:
        files = self._files(self.options.per_process)
        names = self._names(f"mlflow_{flavour}", naming, round_)
        artifacts = str(self.work / "mlflow-artifacts")
        commands = [
            [
                python,
                "-c",
                MLFLOW_WORKER,
                self.mlflow_uri,
                self.experiment,
                names[index],
                flavour,
                artifacts,
                *files[index],
            ]
            for index in range(PROCESSES)
        ]
        return run_load(commands, self.env)

    def mlflow_names(self, flavours: list[str]) -> list[str]:
        return sorted(
            {
                name
                for flavour in flavours
                for naming in NAMINGS
                for round_ in range(self.options.rounds)
                for name in self._names(f"mlflow_{flavour}", naming, round_)
            }
        )

    def close(self) -> None:
        for folder, _dirs, _files in os.walk(self.work):
            os.chmod(folder, 0o755)  # stored entries are read-only
        shutil.rmtree(self.work, ignore_errors=True)


def _best(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    best = max(rounds, key=lambda r: float(r["per_s"]))
    return {
        **best,
        "per_round_per_s": [r["per_s"] for r in rounds],
        "failed_per_round": [r["failed"] for r in rounds],
    }


@contextlib.contextmanager
def servers() -> Iterator[tuple[PgServer, Azurite]]:
    """PostgreSQL (fsync on) and Azurite, both stopped on the way out, Ctrl-C included."""
    bin_dir = pg_bin_dir()
    program = azurite_program()
    if bin_dir is None or program is None:
        sys.exit(
            "Error: this benchmark needs PostgreSQL (initdb/pg_ctl) and Azurite (azurite-blob "
            "on PATH, e.g. export PATH=/work/tools/npm/node_modules/.bin:$PATH)"
        )
    pg = start_server(bin_dir)
    try:
        # The tests' cluster runs with fsync=off on its command line, which no later setting
        # overrides: restart it on the same port with the server's default (fsync on).
        pg.stop()
        options = f"-c listen_addresses=127.0.0.1 -p {pg.port} -k {pg.root} -c max_connections=200"
        pg.run(
            "pg_ctl", "start", "-D", str(pg.data), "-w", "-l", str(pg.root / "log"), "-o", options
        )
        azurite = start_azurite(program)
        try:
            yield pg, azurite
        finally:
            azurite.stop()
    finally:
        try:
            pg.stop()
        finally:
            shutil.rmtree(pg.root, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        modelstore_worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow-python", help="Interpreter with MLflow 3 and psycopg2.")
    parser.add_argument("--mlflow-bare", action="store_true", help="Also time mlflow_bare.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-process", type=int, default=25, help="Registrations each.")
    parser.add_argument("--size-kb", type=int, default=8, help="Size of each model file.")
    parser.add_argument("--profile", type=Path, help="Folder for the workers' cProfile output.")
    parser.add_argument("--source", type=Path, help="Another checkout to time beside this one.")
    options = parser.parse_args()
    if options.profile is not None:
        options.profile.mkdir(parents=True, exist_ok=True)
    flavours = ["run", "bare"] if options.mlflow_bare else ["run"]
    if not options.mlflow_python:
        flavours = []

    load_at_start = os.getloadavg()
    with servers() as (pg, azurite):
        bench = Bench(options, pg, azurite)
        try:
            bench.prepare_modelstore()
            mlflow_version = (
                bench.prepare_mlflow(options.mlflow_python, bench.mlflow_names(flavours))
                if flavours
                else None
            )
            figures: dict[str, dict[str, list[dict[str, Any]]]] = {
                naming: {"modelstore": [], **{f"mlflow_{f}": [] for f in flavours}}
                for naming in NAMINGS
            }
            if options.source is not None:
                for naming in NAMINGS:
                    figures[naming]["other_source"] = []
            for round_ in range(options.rounds):
                for naming in NAMINGS:
                    loads: dict[str, Callable[[], dict[str, Any]]] = {
                        "modelstore": functools.partial(bench.modelstore, naming, round_)
                    }
                    if options.source is not None:
                        loads["other_source"] = functools.partial(
                            bench.modelstore, naming, round_, options.source.resolve()
                        )
                    for flavour in flavours:
                        loads[f"mlflow_{flavour}"] = functools.partial(
                            bench.mlflow, options.mlflow_python, flavour, naming, round_
                        )
                    for system, load in loads.items():
                        figure = load()
                        figures[naming][system].append(figure)
                        print(f"round {round_} {naming} {system}: {figure}", file=sys.stderr)
        finally:
            bench.close()

    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in load_at_start],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "load": {
            "processes": PROCESSES,
            "homes": HOMES,
            "registrations_per_process": options.per_process,
            "model_size_kb": options.size_kb,
            "rounds": options.rounds,
            "catalog": "postgresql (fsync on)",
            "modelstore_store": "az:// on Azurite",
            "other_source": None if options.source is None else str(options.source),
            "mlflow": None
            if mlflow_version is None
            else f"MLflow {mlflow_version}, postgresql backend store, local artifact root",
        },
        "target_ratio": TARGET_RATIO,
    }
    ok = bool(flavours)
    for naming in NAMINGS:
        rows = {system: _best(rounds) for system, rounds in figures[naming].items()}
        if "mlflow_run" in rows:
            ratio = rows["modelstore"]["per_s"] / rows["mlflow_run"]["per_s"]
            rows["ratio_vs_mlflow_run"] = round(ratio, 2)
            # each round's pair ran back to back, under (nearly) the same load
            rows["ratio_vs_mlflow_run_per_round"] = [
                round(m["per_s"] / f["per_s"], 2)
                for m, f in zip(
                    figures[naming]["modelstore"], figures[naming]["mlflow_run"], strict=True
                )
            ]
            ok = ok and ratio >= TARGET_RATIO
        ok = ok and not any(rows["modelstore"]["failed_per_round"])
        if "other_source" in rows:
            ratio = rows["modelstore"]["per_s"] / rows["other_source"]["per_s"]
            rows["ratio_vs_other_source"] = round(ratio, 2)
        if "mlflow_bare" in rows:
            ratio = rows["modelstore"]["per_s"] / rows["mlflow_bare"]["per_s"]
            rows["ratio_vs_mlflow_bare"] = round(ratio, 2)
        result[naming] = rows
    result["ok"] = ok
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
