"""The registry pages' HTTP server: werkzeug's threaded server, enough for one person's browser."""

from __future__ import annotations

import os
from collections.abc import Callable

from werkzeug.serving import make_server

from modelstore.errors import ModelstoreError
from modelstore.serving.server import _bind_failure_text
from modelstore.ui.app import create_ui_app


def serve_ui(
    home: str | os.PathLike[str] | None, host: str, port: int, announce: Callable[[str], None]
) -> int:
    """Serve until interrupted; ``announce`` gets the URL once the port is bound (0 when done)."""
    app = create_ui_app(home)
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as exc:
        raise ModelstoreError(_bind_failure_text(host, port, exc)) from exc
    shown = f"[{host}]" if ":" in host else host
    announce(f"http://{shown}:{server.server_port}/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
