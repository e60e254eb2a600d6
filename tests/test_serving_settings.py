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


def test_app_root_defaults_to_aml_app_root_then_the_launch_directory(tmp_path: Path) -> None:
    settings = ServingSettings.resolve({}, tmp_path, {"entry_script": "score.py"})
    assert settings.app_root == tmp_path
    settings = ServingSettings.resolve({"AML_APP_ROOT": "root"}, tmp_path, {"entry_script": "s.py"})
    assert settings.app_root == tmp_path / "root"


def test_relative_entry_script_is_joined_onto_the_app_root_and_absolute_wins(
    tmp_path: Path,
) -> None:
    relative = ServingSettings(entry_script=Path("code/score.py"), app_root=tmp_path)
    assert relative.entry_script == tmp_path / "code" / "score.py"
    absolute = ServingSettings(entry_script=Path("/abs/score.py"), app_root=tmp_path)
    assert absolute.entry_script == Path(os.path.abspath("/abs/score.py"))


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


# --- ServingSettings.resolve: one resolution, from every source -------------------------------


def resolve(
    environ: dict[str, str],
    cwd: Path,
    flags: dict[str, object] | None = None,
    deployment_env: dict[str, str] | None = None,
) -> ServingSettings:
    return ServingSettings.resolve(environ, cwd, {"entry_script": "score.py", **(flags or {})},
                                   deployment_env)  # fmt: skip


def test_resolve_flag_beats_variable_beats_config_json_beats_default(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"SCORING_TIMEOUT_MS": 1500, "SERVICE_NAME": "file"}')
    assert resolve({}, tmp_path).scoring_timeout_ms == 1500
    assert resolve({}, tmp_path).service_version == "1.0"
    assert resolve({"SCORING_TIMEOUT_MS": "2500"}, tmp_path).scoring_timeout_ms == 2500
    flagged = resolve({"SCORING_TIMEOUT_MS": "2500"}, tmp_path, {"scoring_timeout_ms": 3500})
    assert flagged.scoring_timeout_ms == 3500


@pytest.mark.parametrize(
    ("field", "variable", "text", "flag", "default"),
    [
        ("workers", "WORKER_COUNT", "3", 4, 1),
        ("read_timeout_s", "MODELSTORE_READ_TIMEOUT", "0.5", 7.0, 5.0),
        ("worker_timeout_s", "WORKER_TIMEOUT", "30", 40, 300),
    ],
)
def test_resolve_server_options_flag_beats_variable_beats_default(
    tmp_path: Path, field: str, variable: str, text: str, flag: float, default: float
) -> None:
    assert getattr(resolve({}, tmp_path), field) == default
    assert getattr(resolve({variable: ""}, tmp_path), field) == default
    assert str(getattr(resolve({variable: text}, tmp_path), field)) == str(type(default)(text))
    assert getattr(resolve({variable: text}, tmp_path, {field: flag}), field) == flag


def test_resolve_does_not_parse_a_server_variable_whose_option_is_given(tmp_path: Path) -> None:
    environ = {"WORKER_COUNT": "many", "MODELSTORE_READ_TIMEOUT": "soon"}
    settings = resolve(environ, tmp_path, {"workers": 2, "read_timeout_s": 1.5})
    assert (settings.workers, settings.read_timeout_s) == (2, 1.5)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "WORKER_COUNT",
            "abc",
            "WORKER_COUNT='abc' is not a whole number of worker processes (1 or more); "
            "set it to e.g. WORKER_COUNT=2 or unset it",
        ),
        (
            "WORKER_TIMEOUT",
            "soon",
            "WORKER_TIMEOUT='soon' is not a positive whole number of seconds; "
            "set it to e.g. WORKER_TIMEOUT=300 or unset it",
        ),
        (
            "MODELSTORE_READ_TIMEOUT",
            "0",
            "MODELSTORE_READ_TIMEOUT='0' is not a number of seconds above 0; "
            "set it to e.g. MODELSTORE_READ_TIMEOUT=5 or unset it",
        ),
    ],
)
def test_resolve_names_the_variable_of_a_bad_server_option(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        resolve({variable: value}, tmp_path)
    assert str(caught.value) == message
    assert exit_code(caught.value) == 2


def test_resolve_deployment_env_beats_the_environment_and_is_exported(tmp_path: Path) -> None:
    deployed = tmp_path / "deployed"
    settings = resolve(
        {"AML_APP_ROOT": str(tmp_path / "mine"), "AZUREML_MODEL_DIR": "old", "HOME": "/h"},
        tmp_path,
        deployment_env={"AML_APP_ROOT": str(deployed), "AZUREML_MODEL_DIR": str(deployed / "m")},
    )
    assert settings.app_root == deployed
    assert settings.model_dir == str(deployed / "m")
    assert settings.script_environ == {
        "AML_APP_ROOT": str(deployed),
        "AZUREML_MODEL_DIR": str(deployed / "m"),
        "AZUREML_ENTRY_SCRIPT": str(tmp_path / "score.py"),
    }


def test_resolve_model_dir_option_beats_the_deployment_variable(tmp_path: Path) -> None:
    settings = resolve({}, tmp_path, {"model_dir": "flag"}, {"AZUREML_MODEL_DIR": "deployed"})
    assert settings.model_dir == settings.script_environ["AZUREML_MODEL_DIR"] == "flag"


def test_resolve_exports_what_azmlinfsrv_sets_for_the_script(tmp_path: Path) -> None:
    settings = resolve({}, tmp_path, {"model_dir": "models", "cors_origins": "https://a, *"})
    assert settings.script_environ == {
        "AML_APP_ROOT": str(tmp_path),
        "AZUREML_MODEL_DIR": "models",
        "AML_CORS_ORIGINS": "https://a, *",
        "AZUREML_ENTRY_SCRIPT": str(tmp_path / "score.py"),
    }
    assert (settings.model_dir, settings.cors_origins) == ("models", ["https://a", "*"])
    kept = resolve({"AML_APP_ROOT": "", "AML_CORS_ORIGINS": "https://env"}, tmp_path)
    assert "AML_APP_ROOT" not in kept.script_environ  # set (even empty): left as the user set it
    assert kept.app_root == tmp_path
    assert kept.cors_origins == ["https://env"]


def test_resolve_takes_the_script_flag_from_the_launch_directory_and_the_variable_from_the_app_root(
    tmp_path: Path,
) -> None:
    environ = {"AML_APP_ROOT": str(tmp_path / "app")}
    from_flag = ServingSettings.resolve(environ, tmp_path, {"entry_script": "code/score.py"})
    assert from_flag.entry_script == tmp_path / "code" / "score.py"
    environ["AZUREML_ENTRY_SCRIPT"] = "code/score.py"
    from_variable = ServingSettings.resolve(environ, tmp_path)
    assert from_variable.entry_script == tmp_path / "app" / "code" / "score.py"


def test_resolve_follows_symlinks_of_the_script_flag_as_azmlinfsrv(tmp_path: Path) -> None:
    (tmp_path / "real.py").write_text("")
    (tmp_path / "link.py").symlink_to(tmp_path / "real.py")
    settings = ServingSettings.resolve({}, tmp_path, {"entry_script": "link.py"})
    assert settings.entry_script == tmp_path / "real.py"
    assert settings.script_environ["AZUREML_ENTRY_SCRIPT"] == str(tmp_path / "real.py")


def test_resolve_without_a_script_says_how_to_name_one(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        ServingSettings.resolve({}, tmp_path)
    assert str(caught.value) == (
        "no entry script given; pass entry_script= or set AZUREML_ENTRY_SCRIPT"
    )


def test_resolved_settings_do_not_change_with_the_environment_or_directory_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AML_APP_ROOT", raising=False)
    monkeypatch.delenv("AML_CORS_ORIGINS", raising=False)
    settings = ServingSettings.from_environ(os.environ, entry_script="code/score.py")
    before = settings.model_dump()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setenv("AML_APP_ROOT", str(tmp_path / "other"))
    monkeypatch.setenv("AML_CORS_ORIGINS", "https://late")
    assert settings.model_dump() == before
    assert settings.app_root == tmp_path
    assert settings.entry_script == tmp_path / "code" / "score.py"


def test_apply_script_environ_writes_exactly_the_exported_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    monkeypatch.setenv("UNRELATED", "kept")
    settings = resolve({}, tmp_path, {"model_dir": "m"})
    assert "AZUREML_MODEL_DIR" not in os.environ  # resolving writes nothing
    settings.apply_script_environ()
    assert os.environ["AZUREML_MODEL_DIR"] == "m"
    assert os.environ["AZUREML_ENTRY_SCRIPT"] == str(tmp_path / "score.py")
    assert os.environ["UNRELATED"] == "kept"


def test_resolve_takes_a_prepared_deployment_environment_as_one_more_input(tmp_path: Path) -> None:
    """What an Azure ML v2 deployment gives its script (app root, script, models, its YAML's
    environment_variables) goes in as ``deployment_env``, through the same rules."""
    app = tmp_path / "app"
    deployment_env = {
        "AML_APP_ROOT": str(app),
        "AZUREML_ENTRY_SCRIPT": "onlinescoring/score.py",
        "AZUREML_MODEL_DIR": str(app / "models"),
        "WORKER_COUNT": "2",
        "SCORING_TIMEOUT_MS": "1000",
    }
    settings = ServingSettings.resolve({"WORKER_COUNT": "5"}, tmp_path, None, deployment_env)
    assert settings.entry_script == app / "onlinescoring" / "score.py"
    assert (settings.workers, settings.scoring_timeout_ms) == (2, 1000)
    assert settings.script_environ == deployment_env  # the script sees them as given
    with pytest.raises(InvalidArgumentError, match=r"^WORKER_COUNT='many' is not"):
        ServingSettings.resolve({}, tmp_path, None, {**deployment_env, "WORKER_COUNT": "many"})
