"""The Azure ML model-name rule and the REF grammar."""

from __future__ import annotations

import pytest

from modelstore.cli.errors import exit_code
from modelstore.errors import (
    InvalidNameError,
    InvalidRefError,
    UsageError,
    VersionOutOfRangeError,
)
from modelstore.layout import MAX_VERSION, local_model_name, validate_name
from modelstore.refs import ModelRef, parse_ref

VALID = ["m", "1model", "my-model_1.0", "UPPER.Case", "a" * 255]
INVALID = [
    "-model",
    "_model",
    ".model",
    "my model",
    "my/model",
    "my:model",
    "model\n",
    "",
    "a" * 256,
    "ÄÖ",
    "x@y",
    "../x",
    "a/b",
]


@pytest.mark.parametrize("name", VALID)
def test_valid_names_are_accepted(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", INVALID)
def test_invalid_names_are_rejected_with_the_sdk_rule_text(name: str) -> None:
    with pytest.raises(InvalidNameError, match="provided model name is invalid"):
        validate_name(name)


def test_a_non_string_name_is_rejected() -> None:
    with pytest.raises(InvalidNameError):
        validate_name(None)


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("m", ModelRef("m")),
        ("m:latest", ModelRef("m", explicit=True)),  # one version, unlike a bare NAME
        ("m:1", ModelRef("m", 1, explicit=True)),
        ("m:12", ModelRef("m", 12, explicit=True)),
        ("m:007", ModelRef("m", 7, explicit=True)),
        (f"m:{2**63 - 1}", ModelRef("m", 2**63 - 1, explicit=True)),  # the highest SQLite INTEGER
    ],
)
def test_refs_parse(text: str, ref: ModelRef) -> None:
    assert parse_ref(text) == ref


@pytest.mark.parametrize("text", ["m:", "m:0", "m:-1", "m:x", "m:1.0", "m:\u0661"])
def test_malformed_refs_say_what_a_ref_looks_like(text: str) -> None:
    with pytest.raises(InvalidRefError, match="NAME:VERSION") as info:
        parse_ref(text)
    assert isinstance(info.value, UsageError) and exit_code(info.value) == 2


@pytest.mark.parametrize(
    "version", [2**63, 2**64, 10**30, 10**5000], ids=["2**63", "2**64", "10**30", "10**5000"]
)
def test_a_version_beyond_sqlite_integer_is_out_of_range_in_one_line(version: int) -> None:
    """10**5000 has more digits than Python's int() accepts from a str by default."""
    digits = str(version) if version < 10**100 else "1" + "0" * 5000
    with pytest.raises(VersionOutOfRangeError, match="out of range") as info:
        parse_ref(f"m:{digits}")
    error = info.value
    assert (error.name, error.version, exit_code(error)) == ("m", version, 2)
    assert isinstance(error, UsageError) and isinstance(error, ValueError)
    assert str(MAX_VERSION) in str(error) and "\n" not in str(error) and len(str(error)) < 300


def test_a_ref_with_a_bad_name_is_a_name_error() -> None:
    with pytest.raises(InvalidNameError):
        parse_ref("../x:1")


def test_local_model_names_are_truncated_to_30_characters_like_azure_ml() -> None:
    assert local_model_name("/tmp/" + "x" * 40 + ".pkl") == "x" * 30
    assert local_model_name("/tmp/model_dir/") == "model_dir"
