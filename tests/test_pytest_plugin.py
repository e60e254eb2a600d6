"""The pytest plugin as users meet it: inner test files run under ``pytester``.

Each outer test writes a small user test suite, runs it in-process (fast) and checks what a
user would see: outcomes, messages, and the state the run leaves behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Mapping
from pathlib import Path

# pytester's in-process runs forget every module first imported inside a run; a later import
# then makes a second copy (two classes for one name; C extensions such as pandas break).
# So load beforehand what the inner runs use: modelstore, and numpy/pandas (pyfakefs imports
# them to patch them).
import numpy  # noqa: F401
import pandas  # type: ignore[import-untyped, unused-ignore]  # noqa: F401
import platformdirs
import pytest

import modelstore.deployment
import modelstore.registry
import modelstore.resolve
import modelstore.serving.app
import modelstore.testing  # noqa: F401
from modelstore.pytest_plugin import _import_modelstore_before_pyfakefs

pytest_plugins = ["pytester"]

_import_modelstore_before_pyfakefs()  # also the lazy imports of a first registry (alembic...)

MODELSTORE_VARIABLES = ("MODELSTORE_HOME", "MODELSTORE_DB_URL", "AZUREML_MODEL_DIR")
OUTER_APP_ROOT = "/nonexistent/outer-app-root"


@pytest.fixture
def outer_environment(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's shell: HOME and XDG dirs in a temporary folder, no registry configured, and an
    ``AML_APP_ROOT`` the fixtures must hide during a test and give back after it."""
    home = pytester.path / "user-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    for variable in MODELSTORE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AML_APP_ROOT", OUTER_APP_ROOT)
    return Path(platformdirs.user_data_dir("modelstore", appauthor=False))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def without_pytest_own(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment minus ``PYTEST_CURRENT_TEST``, which the inner run itself clears."""
    return {key: value for key, value in environ.items() if key != "PYTEST_CURRENT_TEST"}


def test_importing_the_plugin_loads_no_heavy_library() -> None:
    probe = (
        "import sys, modelstore.pytest_plugin; "
        "print([m for m in ('sqlalchemy', 'alembic', 'flask', 'werkzeug', 'pydantic', "
        "'pyfakefs', 'numpy') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_pytest_fixtures_lists_every_fixture_with_its_documentation(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest_inprocess("--fixtures")
    out = result.stdout.str()
    for name, documented in [
        ("model_registry", "An empty modelstore ``Registry`` of this test only"),
        ("fake_model_registry", "on pyfakefs's fake filesystem"),
        ("azureml_deployment", "Deploy models as Azure ML does"),
        ("scoring_client", "Load a ``score.py`` as ``modelstore serve`` does"),
    ]:
        assert f"\n{name} -- " in out
        assert documented in out


def test_nothing_a_test_does_reaches_the_next_test_or_the_real_home(
    pytester: pytest.Pytester, outer_environment: Path
) -> None:
    environ_before = dict(os.environ)
    path_before = list(sys.path)
    write(pytester.path / "model.txt", "weights v1")
    for folder, value in (("app_one", 1), ("app_two", 2)):
        write(pytester.path / folder / "helper.py", f"VALUE = {value}\n")
        write(
            pytester.path / folder / "score.py",
            """
            import os
            import helper

            def init():
                os.environ["SET_BY_INIT"] = "yes"

            def run(data):
                return {"helper": helper.VALUE}
            """,
        )
    pytester.makepyfile(
        test_user=f"""
        import os, sys
        import pytest
        from modelstore import get_model_path
        from modelstore.errors import ModelNotFoundError

        HOMES = []

        def test_1_everything(model_registry, scoring_client):
            HOMES.append(str(model_registry.home))
            model_registry.register("model.txt", name="m")
            client = scoring_client("app_one/score.py", models=["m:1"])
            assert client.post(data="{{}}").json() == {{"helper": 1}}
            assert os.environ["SET_BY_INIT"] == "yes"
            assert os.environ["MODELSTORE_HOME"] == HOMES[0]
            assert os.environ["AML_APP_ROOT"] != {OUTER_APP_ROOT!r}

        def test_2_a_plain_test_sees_the_shell_as_it_was():
            for variable in ("SET_BY_INIT", "MODELSTORE_HOME", "MODELSTORE_DB_URL",
                             "AZUREML_MODEL_DIR"):
                assert variable not in os.environ, variable
            assert os.environ["AML_APP_ROOT"] == {OUTER_APP_ROOT!r}
            assert "helper" not in sys.modules
            assert not any(entry.endswith(("app_one", "app_two")) for entry in sys.path)
            with pytest.raises(ModelNotFoundError):
                get_model_path("m")

        def test_3_a_new_registry_is_empty(model_registry):
            assert model_registry.list() == []
            assert str(model_registry.home) != HOMES[0]

        def test_4_a_sibling_module_of_another_script_is_its_own(scoring_client):
            assert scoring_client("app_two/score.py").post(data="{{}}").json() == {{"helper": 2}}

        def test_5_fake_registry(fake_model_registry, azureml_deployment, fs):
            fs.create_file("/data/model.txt", contents="fake weights")
            fake_model_registry.register("/data/model.txt", name="m")
            deployment = azureml_deployment("m:1")
            assert open(get_model_path("m")).read() == "fake weights"
            assert os.environ["MODELSTORE_DB_URL"].startswith("sqlite:///file:")

        def test_6_after_the_fake_registry_the_shell_is_back():
            test_2_a_plain_test_sees_the_shell_as_it_was()
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    assert not outer_environment.exists()
    assert not (Path(os.environ["HOME"]) / ".local").exists()
    assert without_pytest_own(os.environ) == without_pytest_own(environ_before)
    assert sys.path == path_before


ANSWERING_SCRIPT = """
    import os
    from modelstore import get_model_path

    answers = {}

    def relative(path):
        return os.path.relpath(path, os.environ["AML_APP_ROOT"])

    def init():
        for name in ("weights", "encoder"):
            found = get_model_path(name)
            answers[name] = relative(found)
            if os.path.isdir(found):
                answers[name + " files"] = sorted(os.listdir(found))
            else:
                answers[name + " text"] = open(found).read()
        answers["encoder:2"] = relative(get_model_path("encoder", version=2))
        answers["AZUREML_MODEL_DIR"] = relative(os.environ["AZUREML_MODEL_DIR"])

    def run(data):
        return answers
"""


def test_the_same_user_test_gives_the_same_answers_on_disk_and_on_pyfakefs(
    pytester: pytest.Pytester, outer_environment: Path
) -> None:
    pytester.makepyfile(
        test_user=f"""
        import json, os, tempfile
        from pathlib import Path
        import pytest

        SCRIPT = {textwrap.dedent(ANSWERING_SCRIPT)!r}

        @pytest.fixture(params=["model_registry", "fake_model_registry"])
        def registry(request):
            return request.getfixturevalue(request.param)

        def test_answers(registry, scoring_client, request):
            work = Path(tempfile.mkdtemp())  # on the real disk, or in the fake filesystem
            (work / "weights.bin").write_text("w1")
            (work / "vocabulary").mkdir()
            (work / "vocabulary" / "words.txt").write_text("a b c")
            (work / "vocabulary" / "labels.txt").write_text("x y")
            (work / "score.py").write_text(SCRIPT)
            registry.register(work / "weights.bin", name="weights")
            registry.register(work / "vocabulary", name="encoder")
            registry.register(work / "vocabulary", name="encoder")
            client = scoring_client(work / "score.py", models=["weights:1", "encoder:2"])
            response = client.post(json={{"data": 1}})
            assert response.status_code == 200
            variant = request.node.callspec.params["registry"]
            print("ANSWER", variant, json.dumps(response.json(), sort_keys=True))
        """
    )
    result = pytester.runpytest_inprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    answers = {}
    for line in result.stdout.lines:
        if "ANSWER " in line:  # -s output follows the progress text on its line
            _, variant, payload = line[line.index("ANSWER ") :].split(" ", 2)
            answers[variant] = json.loads(payload)
    assert (
        answers["model_registry"]
        == answers["fake_model_registry"]
        == {
            "AZUREML_MODEL_DIR": "azureml-models",
            "encoder": "azureml-models/encoder/2/vocabulary",
            "encoder files": ["labels.txt", "words.txt"],
            "encoder:2": "azureml-models/encoder/2/vocabulary",
            "weights": "azureml-models/weights/1/weights.bin",
            "weights text": "w1",
        }
    )


def test_modelstore_stays_loaded_when_the_first_test_starts_pyfakefs_first(
    pytester: pytest.Pytester,
) -> None:
    """pyfakefs unloads modules first imported while it runs; the plugin imports its own
    before ``fs`` starts, even when ``fs`` comes first, so classes keep one identity."""
    pytester.makepyfile(
        test_user="""
        import sys

        SEEN = []

        def test_1_fs_listed_first(fs, fake_model_registry):
            SEEN.append(sys.modules["modelstore.registry"].Registry)

        def test_2_the_same_class(fake_model_registry):
            assert type(fake_model_registry) is SEEN[0]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")  # a fresh process
    result.assert_outcomes(passed=2)


def test_the_two_registries_pattern_works_whatever_order_the_fixtures_are_listed_in(
    pytester: pytest.Pytester, outer_environment: Path
) -> None:
    """The README's ``registry`` fixture asks for a registry only once it runs, so a factory
    listed before it must not have picked the real-disk one already."""
    pytester.makepyfile(
        test_user="""
        import os, tempfile
        from pathlib import Path
        import pytest
        from modelstore import get_model_path

        @pytest.fixture(params=["model_registry", "fake_model_registry"])
        def registry(request):
            return request.getfixturevalue(request.param)

        def register(registry):
            work = Path(tempfile.mkdtemp())  # on the real disk, or in the fake filesystem
            (work / "model.txt").write_text("w1")
            registry.register(work / "model.txt", name="m")

        def test_deployment_first(azureml_deployment, registry):
            register(registry)
            deployment = azureml_deployment("m:1")
            assert open(get_model_path("m")).read() == "w1"
            assert os.environ["MODELSTORE_HOME"] == str(registry.home)

        def test_client_first(scoring_client, registry):
            register(registry)
            script = Path(tempfile.mkdtemp()) / "score.py"
            script.write_text(
                "from modelstore import get_model_path\\n"
                "def init():\\n    global text\\n    text = open(get_model_path('m')).read()\\n"
                "def run(data):\\n    return text\\n"
            )
            assert scoring_client(script, models=["m:1"]).post(json={}).json() == "w1"

        def test_a_client_alone_still_hides_the_real_home(scoring_client):
            assert "modelstore-home" in os.environ["MODELSTORE_HOME"]
            assert "AML_APP_ROOT" not in os.environ
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_libraries_installed_inside_the_scripts_folder_stay_loaded_after_the_test(
    pytester: pytest.Pytester, outer_environment: Path
) -> None:
    """A project's own ``.venv`` often sits beside ``score.py``. Only the script's sibling
    modules are forgotten after a test: a library from that venv stays loaded, because many
    (numpy...) cannot be loaded twice in one process."""
    site = pytester.path / ".venv" / "lib" / "site-packages"
    write(site / "heavylib" / "__init__.py", "LOADS = 1\n")
    write(pytester.path / "helper.py", "VALUE = 'h'\n")
    write(
        pytester.path / "score.py",
        """
        import heavylib, helper
        def init():
            pass
        def run(data):
            return helper.VALUE
        """,
    )
    pytester.makeconftest(f"import sys\nsys.path.insert(0, {str(site)!r})\n")
    pytester.makepyfile(
        test_user="""
        import sys

        def test_1_loads_the_script(scoring_client):
            assert "heavylib" not in sys.modules
            assert scoring_client("score.py").post(json={}).json() == "h"

        def test_2_only_the_sibling_module_is_forgotten():
            assert "helper" not in sys.modules
            assert "heavylib" in sys.modules
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_deployment_variables_a_later_fixture_sets_reach_the_test(
    pytester: pytest.Pytester, outer_environment: Path
) -> None:
    """With no registry fixture named, the registry is set up just before the test body; the
    caller's shell values are hidden, but what the test's own fixtures set stays."""
    pytester.makepyfile(
        test_user="""
        import os
        import pytest

        @pytest.fixture
        def model_dir_variable(monkeypatch):
            monkeypatch.setenv("AZUREML_MODEL_DIR", "/set/by/a/fixture")

        def test_fixture_value_kept(scoring_client, model_dir_variable):
            assert os.environ["AZUREML_MODEL_DIR"] == "/set/by/a/fixture"
            assert "AML_APP_ROOT" not in os.environ  # the shell's value stays hidden
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_shells_deployment_variables_stay_hidden_whichever_registry_is_named(
    pytester: pytest.Pytester, outer_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", "/from/the/shell")
    pytester.makepyfile(
        test_user="""
        import os

        def check():
            assert "AML_APP_ROOT" not in os.environ
            assert "AZUREML_MODEL_DIR" not in os.environ

        def test_named_real(scoring_client, model_registry):
            check()

        def test_named_fake(scoring_client, fake_model_registry):
            check()

        def test_none_named(scoring_client):
            check()
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_test_registry_never_uses_the_shells_shared_model_store(
    pytester: pytest.Pytester, outer_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    team_store = pytester.path / "team-store"
    team_store.mkdir()
    monkeypatch.setenv("MODELSTORE_STORE_URL", f"file://{team_store}")
    write(pytester.path / "model.txt", "weights")
    pytester.makepyfile(
        test_inner=f"""
        import os

        def test_register(model_registry):
            assert "MODELSTORE_STORE_URL" not in os.environ
            assert model_registry.store_url is None
            model_registry.register({str(pytester.path / "model.txt")!r}, "m")
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert os.listdir(team_store) == []
    assert os.environ["MODELSTORE_STORE_URL"] == f"file://{team_store}"


def test_from_endpoint_leaves_no_process_or_app_root_after_the_test(
    pytester: pytest.Pytester, outer_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_tmp = pytester.path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # the inner run reads TMPDIR afresh
    pids = pytester.path / "pids.txt"
    write(
        pytester.path / "src" / "score.py",
        f"""
        import os

        def init():
            with open({str(pids)!r}, "a") as handle:
                handle.write(f"{{os.getpid()}}\\n")

        def run(data):
            return os.environ["COLOR"]
        """,
    )
    write(pytester.path / "endpoint.yml", "name: e\ntraffic:\n  blue: 100\n")
    for color in ("blue", "green"):
        write(
            pytester.path / f"{color}.yml",
            f"""
            name: {color}
            endpoint_name: e
            instance_type: Standard_DS3_v2
            code_configuration:
              code: src
              scoring_script: score.py
            environment_variables:
              COLOR: {color}
            """,
        )
    pytester.makepyfile(
        test_user="""
        def test_green_by_header(scoring_client):
            client = scoring_client.from_endpoint("endpoint.yml", "blue.yml", "green.yml")
            answer = client.post(json={}, headers={"azureml-model-deployment": "green"})
            assert answer.json() == "green"
            assert client.post(json={}).json() == "blue"
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    started = [int(line) for line in pids.read_text().split()]
    assert len(started) == 2
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert os.listdir(system_tmp) == []
