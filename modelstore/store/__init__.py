"""The on-disk model tree and its working space. Knows nothing of the catalog."""

from __future__ import annotations

from modelstore.store.fsops import remove_tree, tree_size
from modelstore.store.hashing import manifest_digest
from modelstore.store.sources import SourceFile, SourcePlan, plan_source
from modelstore.store.tree import StagedFile, Store
from modelstore.store.verify import TreeCheck, check_version

__all__ = [
    "SourceFile",
    "SourcePlan",
    "StagedFile",
    "Store",
    "TreeCheck",
    "check_version",
    "manifest_digest",
    "plan_source",
    "remove_tree",
    "tree_size",
]
