"""Model references as users type them: ``name``, ``name:VERSION`` or ``name:latest``."""

from __future__ import annotations

from dataclasses import dataclass

from modelstore.errors import InvalidRefError
from modelstore.layout import validate_name

LATEST = "latest"


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None  # None: the latest version

    def __str__(self) -> str:
        return f"{self.name}:{LATEST if self.version is None else self.version}"


def parse_ref(text: str) -> ModelRef:
    """Parse a REF; every malformed form gets a message saying what a REF looks like."""
    name, sep, version_text = text.partition(":")
    if not sep:
        return ModelRef(validate_name(name))
    validate_name(name)
    if version_text == LATEST:
        return ModelRef(name)
    if not version_text.isascii() or not version_text.isdigit() or int(version_text) < 1:
        raise InvalidRefError(
            f"invalid model reference {text!r}: the version after ':' must be a whole number "
            f"from 1 or 'latest' (write NAME, NAME:VERSION or NAME:latest, e.g. {name}:1)"
        )
    return ModelRef(name, int(version_text))
