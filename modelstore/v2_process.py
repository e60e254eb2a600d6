"""Where the processes of a local v2 endpoint begin: ``python -m modelstore.v2_process
deployment`` (one per deployment) and ``... router`` (the front end), started by
:func:`modelstore.v2.endpoint.local_endpoint` in their own process groups.

A module of its own, outside the ``modelstore.v2`` package (whose import pulls in pydantic and
YAML, a second or more): the endpoint stops a process with SIGINT, and until the server in it
has installed its own signal handlers that arrives as a KeyboardInterrupt somewhere in those
imports. Caught here, it ends the process quietly, as the stop it is, instead of printing an
import traceback into the endpoint's log after the user pressed Ctrl-C.
"""

from __future__ import annotations

import sys

ROLES = ("deployment", "router")


def main(argv: list[str]) -> int:
    try:
        if argv[1:] == ["deployment"]:
            from modelstore.v2.deployment_process import main as run
        elif argv[1:] == ["router"]:
            from modelstore.v2.router_process import main as run
        else:
            print(f"usage: python -m modelstore.v2_process {'|'.join(ROLES)}", file=sys.stderr)
            return 2
        return run()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
