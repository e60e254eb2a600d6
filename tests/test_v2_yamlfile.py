"""modelstore.v2.yamlfile: YAML read with the line of every key, duplicate keys refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelstore.errors import SpecError
from modelstore.v2.yamlfile import LineMapping, line_of, read_yaml_mapping


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_key_and_item_remembers_its_line(tmp_path: Path) -> None:
    data = read_yaml_mapping(
        write(
            tmp_path,
            "name: blue\n\nrequest_settings:\n  request_timeout_ms: 10\nl:\n  - a\n  - b\n",
        ),
        "spec.yml",
    )
    assert data == {"name": "blue", "request_settings": {"request_timeout_ms": 10}, "l": ["a", "b"]}
    assert data.key_lines == {"name": 1, "request_settings": 3, "l": 5}
    assert isinstance(data["request_settings"], LineMapping)
    assert data["request_settings"].key_lines == {"request_timeout_ms": 4}
    assert data["l"].item_lines == [6, 7]


def test_line_of_names_the_deepest_key_found_and_a_missing_last_key(tmp_path: Path) -> None:
    data = read_yaml_mapping(
        write(tmp_path, "a: 1\nmodel:\n  path: x\nitems:\n  - k: 1\n  - k: 2\n"), "spec.yml"
    )
    assert line_of(data, ("model", "path")) == (["model", "path"], 3)
    assert line_of(data, ("model", "inline", "path")) == (["model", "path"], 3)  # a union tag
    assert line_of(data, ("model", "name")) == (["model", "name"], 2)  # missing: its mapping
    assert line_of(data, ("items", 1, "k")) == (["items[1]", "k"], 6)
    assert line_of(data, ("a", "reference")) == (["a"], 1)  # a tag under a scalar is dropped


def test_a_key_written_twice_is_refused_with_its_second_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as refused:
        read_yaml_mapping(write(tmp_path, "name: blue\nmodel: x\nname: green\n"), "d.yml")
    assert str(refused.value) == "d.yml:3: name: written twice; give each key once"
    assert (refused.value.path, refused.value.key, refused.value.line) == ("d.yml", "name", 3)


def test_a_merge_key_may_be_overridden(tmp_path: Path) -> None:
    text = "base: &b\n  period: 5\n  timeout: 2\nprobe:\n  <<: *b\n  period: 9\n"
    data = read_yaml_mapping(write(tmp_path, text), "d.yml")
    assert data["probe"] == {"period": 9, "timeout": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [blue\n", "d.yml:2: invalid YAML: "),
        ("- name\n", "d.yml: expected a mapping of keys (key: value) at the top level"),
        ("", "d.yml: expected a mapping of keys (key: value) at the top level"),
        ("just text\n", "d.yml: expected a mapping of keys (key: value) at the top level"),
    ],
)
def test_a_file_that_is_not_a_yaml_mapping_is_refused_in_one_line(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(SpecError) as refused:
        read_yaml_mapping(write(tmp_path, text), "d.yml")
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_a_missing_file_or_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^nope\.yml: file not found$"):
        read_yaml_mapping(tmp_path / "nope.yml", "nope.yml")
    with pytest.raises(SpecError, match=r"is a folder; expected a YAML file$"):
        read_yaml_mapping(tmp_path, "dir")


def test_python_tags_are_not_executed(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="invalid YAML"):
        read_yaml_mapping(write(tmp_path, "a: !!python/object/apply:os.getcwd []\n"), "d.yml")
