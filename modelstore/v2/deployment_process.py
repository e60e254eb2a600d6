"""One deployment of a local v2 endpoint, in its own process as each deployment is its own
container in Azure: ``python -m modelstore.v2_process deployment``, started by
:func:`modelstore.v2.endpoint.local_endpoint` in the deployment's working directory and
environment, with its resolved settings in ``$MODELSTORE_V2_SETTINGS`` and the loopback socket
the endpoint bound for it (and probes meanwhile) in ``$MODELSTORE_V2_LISTENER``. It prints the
usual ``modelstore serve: listening on URL`` line once ``init()`` has run; an ``init()``
failure is its ``Error:`` line and exit code 3."""

from __future__ import annotations

import json
import os
import sys

from modelstore.errors import ModelstoreError


def main() -> int:
    from modelstore.cli.serve_commands import run_server
    from modelstore.serving.lifeline import die_with_starter
    from modelstore.serving.server import BoundListener
    from modelstore.serving.settings import ServingSettings
    from modelstore.v2.endpoint import LISTENER_ENV, SETTINGS_ENV

    die_with_starter()
    settings = ServingSettings.model_validate_json(os.environ.pop(SETTINGS_ENV))
    fd, host, port = json.loads(os.environ.pop(LISTENER_ENV))
    listener = BoundListener(fd=fd, host=host, port=port)
    try:
        return run_server(settings, host, port, False, listener)
    except ModelstoreError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
