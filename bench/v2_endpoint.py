"""Throughput of a local v2 endpoint (router + two deployments) against one deployment served
directly, in one run; prints JSON.

The gallery's endpoint (``fixtures/v2``: blue with an inline model, green with the registered
one, traffic 90/10) is started once with :func:`modelstore.v2.endpoint.local_endpoint`. Rounds
alternate between three loads with the same keep-alive clients:

* ``direct``: blue's own server, on its private port (serving one deployment directly);
* ``routed_blue``: the endpoint's router with ``azureml-model-deployment: blue``, so the very
  same server answers: the difference is the router's cost;
* ``routed_traffic``: the endpoint's router with its 90/10 split over both deployments.

The issue's target is ``routed_blue`` within 15% of ``direct`` (ratio >= 0.85). Both
deployments' ``max_concurrent_requests_per_instance`` is 2 in the copy, so that the router
admits the four clients (it answers 429 past twice that many requests in flight at a
deployment, as Azure does); with ``--connections`` above 4, raise it further.

    python bench/v2_endpoint.py [--rounds 3] [--seconds 5] [--connections 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from modelstore.registry import Registry
from modelstore.v2.endpoint import local_endpoint

REPO = Path(__file__).resolve().parent.parent
BODY = b'{"data": [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]}'
TARGET_RATIO = 0.85


def load(url: str, headers: dict[str, str], connections: int, seconds: float) -> float:
    """Requests per second answered 200 by keep-alive clients on ``connections`` threads."""
    parts = urlsplit(url)
    done = [0] * connections
    errors = [0] * connections
    stop_at = time.perf_counter() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        sent = {"Content-Type": "application/json", **headers}
        while time.perf_counter() < stop_at:
            try:
                connection.request("POST", "/score", body=BODY, headers=sent)
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    done[index] += 1
                else:
                    errors[index] += 1
            except OSError:
                errors[index] += 1
                connection.close()
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if sum(errors):
        raise SystemExit(f"{sum(errors)} requests to {url} failed")
    return sum(done) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-v2-endpoint-") as scratch:
        gallery = Path(scratch) / "v2"
        shutil.copytree(REPO / "fixtures" / "v2", gallery, ignore=shutil.ignore_patterns("model"))
        runpy.run_path(str(REPO / "fixtures" / "make_models.py"))["write_regression_model"](
            gallery / "model"
        )
        # A deployment admits 2 x max_concurrent_requests_per_instance requests at once (429
        # past that, as in Azure): 2 lets all four clients in, even if all go to green.
        blue = gallery / "blue-deployment.yml"
        blue.write_text(blue.read_text().replace("_per_instance: 1", "_per_instance: 2"))
        green = gallery / "green-deployment.yml"
        green.write_text(
            green.read_text() + "request_settings:\n  max_concurrent_requests_per_instance: 2\n"
        )
        home = Path(scratch) / "home"
        subprocess.run(
            [sys.executable, "-m", "modelstore", "--home", os.fspath(home), "register", "-f",
             os.fspath(gallery / "model.yml")],
            check=True, capture_output=True,
        )  # fmt: skip
        files = [gallery / name for name in ("endpoint.yml", "blue-deployment.yml",
                                             "green-deployment.yml")]  # fmt: skip
        record: dict[str, list[float]] = {"direct": [], "routed_blue": [], "routed_traffic": []}
        with (
            open(os.devnull, "w") as quiet,
            local_endpoint(files, lambda: Registry(home), log=quiet) as endpoint,
        ):
            loads = {
                "direct": (endpoint.urls["blue"], {}),
                "routed_blue": (endpoint.url, {"azureml-model-deployment": "blue"}),
                "routed_traffic": (endpoint.url, {}),
            }
            for url, headers in loads.values():  # warm up every path once
                load(url, headers, args.connections, 0.5)
            for _ in range(args.rounds):
                for name, (url, headers) in loads.items():
                    record[name].append(load(url, headers, args.connections, args.seconds))
    medians = {name: statistics.median(values) for name, values in record.items()}
    ratio = medians["routed_blue"] / medians["direct"]
    print(
        json.dumps(
            {
                "connections": args.connections,
                "seconds_per_load": args.seconds,
                "rounds": args.rounds,
                "requests_per_s": {k: [round(v, 1) for v in vs] for k, vs in record.items()},
                "median_requests_per_s": {k: round(v, 1) for k, v in medians.items()},
                "routed_over_direct": round(ratio, 3),
                "target_ratio_at_least": TARGET_RATIO,
                "meets_target": ratio >= TARGET_RATIO,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
