"""The front end of a local v2 endpoint, in its own process: ``python -m
modelstore.v2_process router``, started by :func:`modelstore.v2.endpoint.local_endpoint` once
every deployment listens. Its routes, traffic, keys or token and the socket the endpoint bound
on the user's port come in ``$MODELSTORE_V2_ROUTER``; it serves
:class:`modelstore.v2.endpoint.Router` under the same gunicorn worker as the deployments."""

from __future__ import annotations

import json
import os
import sys

from modelstore.errors import ModelstoreError


def main() -> int:
    from modelstore.serving.lifeline import die_with_starter
    from modelstore.serving.limits import InFlightGauge
    from modelstore.serving.server import BoundListener, ServerOptions, serve
    from modelstore.v2.endpoint import ROUTER_ENV, Router, routes_of

    die_with_starter()
    config = json.loads(os.environ.pop(ROUTER_ENV))
    routes = routes_of(config["routes"])
    # Made before gunicorn forks: every router worker counts into the same slots.
    gauge = InFlightGauge(slots=2 * config["workers"] + 2)

    def app() -> Router:
        return Router(
            routes,
            config["traffic"],
            keys=config["keys"],
            seed=config["seed"],
            max_concurrent=config["max_concurrent"],
            gauge=gauge,
            tokens=config["tokens"],
        )

    listener = BoundListener(fd=config["fd"], host=config["host"], port=config["port"])
    options = ServerOptions(host=listener.host, port=listener.port, workers=config["workers"])
    try:
        return serve(app, options, listener)
    except ModelstoreError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
