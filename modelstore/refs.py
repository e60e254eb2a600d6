"""Model references as users type them: ``name``, ``name:VERSION``, ``name:latest`` or
``name@ALIAS`` (the version an alias points at, looked up in the catalog)."""

from __future__ import annotations

from dataclasses import dataclass

from modelstore.errors import InvalidRefError, VersionOutOfRangeError
from modelstore.layout import MAX_VERSION, validate_alias, validate_name

LATEST = "latest"


@dataclass(frozen=True)
class ModelRef:
    """``version`` None means the latest version. ``explicit`` tells ``NAME:latest`` (one
    version, named on purpose) from a bare ``NAME`` (which some commands read as every version),
    so callers never look at the text again."""

    name: str
    version: int | None = None  # None: the latest version (or the alias's version)
    alias: str | None = None  # set for NAME@ALIAS (version is then None)
    explicit: bool = False  # the REF names a version: NAME:VERSION, NAME:latest or NAME@ALIAS

    def __str__(self) -> str:
        if self.alias is not None:
            return self.target
        return f"{self.name}:{LATEST if self.version is None else self.version}"

    @property
    def target(self) -> str:
        """What the ``Registry`` methods taking a name accept: ``NAME`` or ``NAME@ALIAS``."""
        return self.name if self.alias is None else f"{self.name}@{self.alias}"


def parse_ref(text: str) -> ModelRef:
    """Parse a REF; every malformed form gets a message saying what a REF looks like."""
    if "@" in text:
        return parse_alias_ref(text)
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


def parse_alias_ref(text: str) -> ModelRef:
    """``NAME@ALIAS``; a version cannot be given too (``m@champion:3`` names two versions).
    ``NAME@latest`` is the latest version, as Azure ML v2 spells it (no alias can be 'latest')."""
    name, _, alias = text.partition("@")
    validate_name(name)
    if alias == LATEST:
        return ModelRef(name, explicit=True)
    if ":" in alias:
        raise InvalidRefError(
            f"invalid model reference {text!r}: give either an alias or a version, not both "
            f"(write {name}@ALIAS or {name}:VERSION)"
        )
    return ModelRef(name, None, validate_alias(alias), explicit=True)
