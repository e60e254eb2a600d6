"""The registry pages' HTTP server: werkzeug's threaded server, enough for one person's browser."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable

from werkzeug.serving import make_server

from modelstore.serving.server import bind_listener
from modelstore.ui.app import create_ui_app


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``): only this machine connects."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_ui(
    home: str | os.PathLike[str] | None, host: str, port: int, announce: Callable[[str], None]
) -> int:
    """Serve until interrupted; ``announce`` gets the URL once the port is bound (0 when done)."""
    app = create_ui_app(home, loopback_only=is_loopback(host))
    # bound here, as `serve` binds: a taken port is one clear error, not werkzeug's own lines
    listener = bind_listener(host, port)
    server = make_server(listener.host, listener.port, app, threaded=True, fd=listener.fd)
    shown = f"[{host}]" if ":" in host else host
    announce(f"http://{shown}:{listener.port}/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
