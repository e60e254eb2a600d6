"""Review findings on settings: a bad config.json value is blamed on the file, not the shell."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelstore.errors import InvalidArgumentError
from modelstore.serving.settings import ServingSettings


@pytest.fixture(autouse=True)
def _clean_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ('{"SCORING_TIMEOUT_MS": "soon"}', "SCORING_TIMEOUT_MS='soon' is not a positive whole"),
        ('{"SCORING_TIMEOUT_MS": true}', "SCORING_TIMEOUT_MS=True is not a positive whole"),
        ('{"SERVICE_NAME": 5}', "SERVICE_NAME=5 is not a string"),
        ('{"SERVICE_PATH_PREFIX": ["a"]}', "SERVICE_PATH_PREFIX=['a'] is not a string"),
    ],
)
def test_a_bad_value_in_config_json_names_the_file_and_the_key(
    tmp_path: Path, content: str, complaint: str
) -> None:
    config = tmp_path / "config.json"
    config.write_text(content)

    with pytest.raises(InvalidArgumentError) as caught:
        ServingSettings.from_environ({"AML_APP_ROOT": str(tmp_path)}, entry_script="s.py")

    message = str(caught.value)
    assert message.startswith(f"config file {config}: {complaint}")
    assert message.endswith("; fix the value in that file or remove the key")


def test_a_good_config_json_value_still_applies(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"SCORING_TIMEOUT_MS": 1500, "SERVICE_NAME": "svc"}')

    settings = ServingSettings.from_environ({"AML_APP_ROOT": str(tmp_path)}, entry_script="s.py")

    assert (settings.scoring_timeout_ms, settings.service_name) == (1500, "svc")
