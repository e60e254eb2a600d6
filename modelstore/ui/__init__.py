"""``modelstore ui``: read-only pages over a registry (names, versions, files, how to deploy).

Plain server-rendered HTML (Jinja2, autoescaped) and two small shipped files; it reads through
the public :class:`~modelstore.registry.Registry` API, opened read-only for each request.
"""

from modelstore.ui.app import create_ui_app

__all__ = ["create_ui_app"]
