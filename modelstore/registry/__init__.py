"""The registry: one facade (``facade.Registry``, one method per user operation) over the catalog
and the store, with the features it delegates to beside it: ``reports`` (the pydantic results),
``doctor`` (the leftover scan and repair), ``rebuild`` (a lost catalog rebuilt from the tree) and
``archive`` (export, import, adopting a tree).

``from modelstore.registry import Registry`` is the public import path.
"""

from __future__ import annotations

from modelstore.registry.facade import *  # noqa: F403 (the facade's __all__ is the one list)
from modelstore.registry.facade import __all__ as __all__
