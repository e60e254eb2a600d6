"""Reading a v2 YAML file while remembering where every key was written.

Validation errors must name the line of the offending key, and PyYAML's plain loaders forget
the node marks once they have built dicts. This loader builds ``dict``/``list`` subclasses that
keep the 1-based line of every key and item, and it refuses a key written twice in one mapping
(PyYAML silently keeps the last one, which hides a typo such as two ``model:`` blocks).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import yaml

from modelstore.errors import SpecError

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class LineMapping(dict[Any, Any]):
    """A YAML mapping that knows its own line and the line of each of its keys."""

    line: int
    key_lines: dict[Any, int]


class LineSequence(list[Any]):
    """A YAML sequence that knows its own line and the line of each item."""

    line: int
    item_lines: list[int]


class _DuplicateKeyError(yaml.MarkedYAMLError):
    def __init__(self, key: Any, mark: yaml.Mark) -> None:
        super().__init__(None, None, f"the key {key!r} is written twice", mark)
        self.key = key


class _LineLoader(_BaseLoader):  # type: ignore[misc]
    def construct_line_mapping(self, node: yaml.MappingNode) -> LineMapping:
        # Keys brought in by a `<<:` merge may legitimately be overridden, so the duplicate
        # check only applies to mappings without one.
        has_merge = any(key.tag == _MERGE_TAG for key, _ in node.value)
        self.flatten_mapping(node)
        mapping = LineMapping()
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found an unhashable key",
                    key_node.start_mark,
                )
            if key in mapping and not has_merge:
                raise _DuplicateKeyError(key, key_node.start_mark)
            mapping[key] = self.construct_object(value_node, deep=True)
            mapping.key_lines[key] = key_node.start_mark.line + 1
        return mapping

    def construct_line_sequence(self, node: yaml.SequenceNode) -> LineSequence:
        sequence = LineSequence(self.construct_object(child, deep=True) for child in node.value)
        sequence.line = node.start_mark.line + 1
        sequence.item_lines = [child.start_mark.line + 1 for child in node.value]
        return sequence


_LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_line_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _LineLoader.construct_line_sequence)


def read_yaml_mapping(path: Path, shown: str) -> LineMapping:
    """The top-level mapping of the YAML file ``path``; ``shown`` is how errors name the file.

    Raises :class:`SpecError` for an unreadable file, a YAML syntax error, a duplicate key or a
    document that is not a mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(shown, "", None, "file not found") from None
    except IsADirectoryError:
        raise SpecError(shown, "", None, "is a folder; expected a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(shown, "", None, f"cannot be read ({exc})") from None
    try:
        data = yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass
    except _DuplicateKeyError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise SpecError(shown, str(exc.key), line, "written twice; give each key once") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(shown, "", line, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError(shown, "", None, f"invalid YAML: {exc}") from None
    if not isinstance(data, LineMapping):
        raise SpecError(shown, "", None, "expected a mapping of keys (key: value) at the top level")
    return data


def line_of(data: LineMapping, loc: Sequence[Any]) -> tuple[list[str], int]:
    """The readable key path and the best known line for a validation error location.

    Segments of ``loc`` that are not keys of the data (pydantic's union tags, ``[key]``) are
    dropped, except a last segment under a mapping, which names a missing key. The line is the
    one of the deepest key found, so a missing key points at the mapping that lacks it.
    """
    keys: list[str] = []
    line = data.line
    current: Any = data
    for index, segment in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(current, LineMapping) and segment in current:
            line = current.key_lines.get(segment, line)
            current = current[segment]
            keys.append(str(segment))
        elif isinstance(current, LineSequence) and isinstance(segment, int):
            if 0 <= segment < len(current):
                line = current.item_lines[segment]
                current = current[segment]
            keys[-1:] = [f"{keys[-1]}[{segment}]"] if keys else [f"[{segment}]"]
        elif last and isinstance(current, LineMapping) and isinstance(segment, str):
            keys.append(segment)  # a missing key of this mapping
    return keys, line
