"""ServingSettings from azmlinfsrv's environment variables, with CLI overrides on top."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelstore.cli.errors import exit_code
from modelstore.errors import EntryScriptError, InvalidArgumentError
from modelstore.serving.settings import ServingSettings


@pytest.fixture(autouse=True)
def _clean_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray config.json from the directory the suite runs in."""
    monkeypatch.chdir(tmp_path)


def test_defaults_match_azmlinfsrv() -> None:
    settings = ServingSettings.from_environ({}, entry_script=Path("score.py"))
    assert settings.scoring_timeout_ms == 3_600_000
    assert settings.service_name == "ML service"
    assert settings.service_version == "1.0"
    assert settings.service_path_prefix == ""
    assert settings.cors_origins == []
    assert settings.server_version_header is True
    assert settings.max_body_bytes == 100 * 1024 * 1024
    assert (settings.numpy_json, settings.validation_400) == (False, False)
    assert settings.split_header_values is True


def test_environment_variables_are_read() -> None:
    environ = {
        "AML_APP_ROOT": "/srv/app",
        "AZUREML_SOURCE_DIRECTORY": "src",
        "AML_CORS_ORIGINS": " https://a.example ,https://b.example,",
        "SCORING_TIMEOUT_MS": "2500",
        "SERVICE_NAME": "svc",
        "SERVICE_VERSION": "3",
        "SERVICE_PATH_PREFIX": "/api",
        "SERVER_VERSION_LOG_RESPONSE_ENABLED": "TRUE",
    }
    settings = ServingSettings.from_environ(environ, entry_script=Path("score.py"))
    assert settings.app_root == Path("/srv/app")
    assert settings.source_directory == "src"
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.scoring_timeout_ms == 2500
    assert (settings.service_name, settings.service_version) == ("svc", "3")
    assert settings.service_path_prefix == "/api"
    assert settings.server_version_header is True


@pytest.mark.parametrize("value", ["false", "0", "yes", ""])
def test_server_version_header_is_on_only_for_true(value: str) -> None:
    environ = {"SERVER_VERSION_LOG_RESPONSE_ENABLED": value}
    assert not ServingSettings.from_environ(
        environ, entry_script=Path("s.py")
    ).server_version_header


def test_overrides_win_over_the_environment_and_accept_origin_text() -> None:
    settings = ServingSettings.from_environ(
        {"SCORING_TIMEOUT_MS": "10", "AML_CORS_ORIGINS": "https://env.example"},
        entry_script=Path("score.py"),
        scoring_timeout_ms=20,
        cors_origins="https://x.example, *",
    )
    assert settings.scoring_timeout_ms == 20
    assert settings.cors_origins == ["https://x.example", "*"]


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5"])
def test_malformed_scoring_timeout_is_one_clear_line(value: str) -> None:
    with pytest.raises(InvalidArgumentError, match="SCORING_TIMEOUT_MS") as caught:
        ServingSettings.from_environ({"SCORING_TIMEOUT_MS": value}, entry_script=Path("s.py"))
    assert exit_code(caught.value) == 2
    assert "\n" not in str(caught.value)


def test_invalid_override_is_one_clear_line() -> None:
    with pytest.raises(InvalidArgumentError, match="max_body_bytes") as caught:
        ServingSettings.from_environ({}, entry_script=Path("s.py"), max_body_bytes=0)
    assert "\n" not in str(caught.value)


def test_app_root_defaults_to_aml_app_root_then_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AML_APP_ROOT", raising=False)
    settings = ServingSettings(entry_script=Path("score.py"))
    assert settings.resolved_app_root() == tmp_path
    monkeypatch.setenv("AML_APP_ROOT", str(tmp_path / "root"))
    assert settings.resolved_app_root() == tmp_path / "root"


def test_relative_entry_script_is_joined_onto_the_app_root_and_absolute_wins(
    tmp_path: Path,
) -> None:
    relative = ServingSettings(entry_script=Path("code/score.py"), app_root=tmp_path)
    assert relative.resolved_entry_script() == tmp_path / "code" / "score.py"
    absolute = ServingSettings(entry_script=Path("/abs/score.py"), app_root=tmp_path)
    assert absolute.resolved_entry_script() == Path(os.path.abspath("/abs/score.py"))


# --- config.json -------------------------------------------------------------------------------


def test_config_json_in_the_app_root_sets_named_settings(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        '{"SCORING_TIMEOUT_MS": 1500, "SERVICE_NAME": "from-file", "subscription_id": "x"}'
    )
    settings = ServingSettings.from_environ({"AML_APP_ROOT": str(tmp_path)}, entry_script="s.py")
    assert (settings.scoring_timeout_ms, settings.service_name) == (1500, "from-file")


def test_environment_then_overrides_win_over_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"SCORING_TIMEOUT_MS": 1500, "SERVICE_NAME": "file"}')
    environ = {"AML_APP_ROOT": str(tmp_path), "SCORING_TIMEOUT_MS": "2500"}
    settings = ServingSettings.from_environ(environ, entry_script="s.py", service_name="flag")
    assert (settings.scoring_timeout_ms, settings.service_name) == (2500, "flag")


def test_azureml_config_file_wins_and_empty_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"SERVICE_NAME": "root"}')
    (tmp_path / "explicit.json").write_text('{"SERVICE_NAME": "explicit"}')
    (tmp_path / "empty.json").write_text("")
    environ = {
        "AML_APP_ROOT": str(tmp_path),
        "AZUREML_CONFIG_FILE": str(tmp_path / "explicit.json"),
    }
    assert ServingSettings.from_environ(environ, entry_script="s.py").service_name == "explicit"
    environ["AZUREML_CONFIG_FILE"] = str(tmp_path / "empty.json")
    assert ServingSettings.from_environ(environ, entry_script="s.py").service_name == "root"


def test_config_json_beside_the_script_is_the_last_resort(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "config.json").write_text('{"SERVICE_VERSION": "9"}')
    settings = ServingSettings.from_environ(
        {}, app_root=tmp_path, entry_script=tmp_path / "code" / "score.py"
    )
    assert settings.service_version == "9"


@pytest.mark.parametrize("content", ["[1, 2]", "{broken"])
def test_config_json_that_is_not_an_object_stops_start_up_with_exit_3(
    tmp_path: Path, content: str
) -> None:
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(EntryScriptError, match="Invalid config file!") as caught:
        ServingSettings.from_environ({"AML_APP_ROOT": str(tmp_path)}, entry_script="s.py")
    assert exit_code(caught.value) == 3
    assert "\n" not in str(caught.value)


def test_only_really_unsupported_config_keys_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "config.json").write_text('{"SERVICE_NAME": "a", "HOSTNAME": "h"}')
    ServingSettings.from_environ({"AML_APP_ROOT": str(tmp_path)}, entry_script="s.py")
    assert "extra keys" not in caplog.text
    (tmp_path / "config.json").write_text('{"SERVICE_NAME": "a", "workspace": "w"}')
    ServingSettings.from_environ({"AML_APP_ROOT": str(tmp_path)}, entry_script="s.py")
    assert "Extra keys = ['workspace']" in caplog.text


def test_bad_scoring_timeout_in_config_json_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"SCORING_TIMEOUT_MS": "soon"}')
    with pytest.raises(InvalidArgumentError, match="SCORING_TIMEOUT_MS='soon'"):
        ServingSettings.from_environ({"AML_APP_ROOT": str(tmp_path)}, entry_script="s.py")
