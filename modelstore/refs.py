"""Model references as users type them: ``name``, ``name:VERSION`` or ``name:latest``."""

from __future__ import annotations

from dataclasses import dataclass

from modelstore.errors import InvalidRefError, VersionOutOfRangeError
from modelstore.layout import MAX_VERSION, validate_name

LATEST = "latest"


@dataclass(frozen=True)
class ModelRef:
    """``version`` None means the latest version. ``explicit`` tells ``NAME:latest`` (one
    version, named on purpose) from a bare ``NAME`` (which some commands read as every version),
    so callers never look at the text again."""

    name: str
    version: int | None = None
    explicit: bool = False  # the REF names a version: NAME:VERSION or NAME:latest

    def __str__(self) -> str:
        return f"{self.name}:{LATEST if self.version is None else self.version}"


def parse_ref(text: str) -> ModelRef:
    """Parse a REF; every malformed form gets a message saying what a REF looks like."""
    name, sep, version_text = text.partition(":")
    if not sep:
        return ModelRef(validate_name(name))
    validate_name(name)
    if version_text == LATEST:
        return ModelRef(name, explicit=True)
    digits = version_text.lstrip("0")  # not int(): it refuses more than 4300 digits
    if not version_text.isascii() or not version_text.isdigit() or not digits:
        raise InvalidRefError(
            f"invalid model reference {text!r}: the version after ':' must be a whole number "
            f"from 1 or 'latest' (write NAME, NAME:VERSION or NAME:latest, e.g. {name}:1)"
        )
    if len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
        shown = digits if len(digits) <= 40 else f"{digits[:20]}...({len(digits)} digits)"
        raise VersionOutOfRangeError(
            f"invalid model reference '{name}:{shown}': the version is out of range (versions "
            f"go from 1 to {MAX_VERSION}); give an existing version or 'latest', e.g. {name}:1",
            name=name,
            version=_as_int(digits),
        )
    return ModelRef(name, int(digits), explicit=True)


def _as_int(digits: str) -> int:
    """``int(digits)`` even past Python's 4300-digit limit on str -> int conversions."""
    from decimal import Decimal

    return int(digits) if len(digits) < 4000 else int(Decimal(digits))
