"""Loading score.py like azmlinfsrv: module identity, checks, modes, shims, init()."""

from __future__ import annotations

import importlib.util
import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelstore.cli.errors import exit_code
from modelstore.errors import EntryScriptError
from modelstore.serving.app import create_app
from modelstore.serving.loader import InputMode, load_entry_script
from modelstore.serving.settings import ServingSettings
from modelstore.serving.shims import SHIMMED_MODULES, install_import_shims

PLAIN = "def init():\n    pass\n\ndef run(data):\n    return data\n"


def write(folder: Path, source: str, name: str = "score.py") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def load(tmp_path: Path, source: str, **settings: Any) -> Any:
    script = write(tmp_path, source)
    return load_entry_script(
        script, ServingSettings(entry_script=script, app_root=tmp_path, **settings)
    )


def load_error(tmp_path: Path, source: str) -> str:
    with pytest.raises(EntryScriptError) as caught:
        load(tmp_path, source)
    assert exit_code(caught.value) == 3
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- module identity --------------------------------------------------------------------------


def test_script_runs_as_entry_module_outside_sys_modules(tmp_path: Path) -> None:
    source = """
    import sys
    seen_name = __name__
    main_block_ran = False
    if __name__ == "__main__":
        main_block_ran = True
    registered = "entry_module" in sys.modules

    def init():
        pass

    def run(data):
        return data
    """
    script = load(tmp_path, source)
    assert script.module.seen_name == "entry_module"
    assert script.module.main_block_ran is False
    assert script.module.registered is False
    assert "entry_module" not in sys.modules
    assert script.module.__file__ == str(tmp_path / "score.py")


def test_each_load_executes_a_fresh_module(tmp_path: Path) -> None:
    source = "counter = []\ndef init():\n    counter.append(1)\ndef run(data):\n    return data\n"
    first = load(tmp_path, source)
    second = load(tmp_path, source)
    first.init()
    assert first.module is not second.module
    assert second.module.counter == []


def test_script_on_a_pyfakefs_filesystem_loads(fs: Any) -> None:
    fs.create_file(
        "/app/score.py", contents="def init():\n    pass\ndef run(data):\n    return 7\n"
    )
    settings = ServingSettings(entry_script=Path("/app/score.py"), app_root=Path("/app"))
    script = load_entry_script("/app/score.py", settings)
    assert script.run("x") == 7


def test_sibling_modules_of_the_script_are_importable(tmp_path: Path) -> None:
    write(tmp_path / "src", "def double(x):\n    return 2 * x\n", name="sibling_helpers_h4a.py")
    script = write(
        tmp_path / "src",
        "from sibling_helpers_h4a import double\ndef init():\n    pass\ndef run(data):\n"
        "    return double(3)\n",
    )
    settings = ServingSettings(entry_script=script, app_root=tmp_path / "elsewhere")
    assert load_entry_script(script, settings).run("x") == 6


def test_sys_path_gets_app_root_source_directory_and_script_folder_once(tmp_path: Path) -> None:
    script = write(tmp_path / "code", PLAIN)
    settings = ServingSettings(entry_script=script, app_root=tmp_path, source_directory="lib")
    load_entry_script(script, settings)
    load_entry_script(script, settings)
    for entry in (str(tmp_path), str(tmp_path / "lib"), str(tmp_path / "code")):
        assert sys.path.count(entry) == 1
    position = [sys.path.index(e) for e in (str(tmp_path), str(tmp_path / "lib"))]
    assert position == sorted(position)


# --- failures ---------------------------------------------------------------------------------


def test_missing_script_is_a_one_line_exit_3_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ServingSettings(entry_script=Path("nope.py"), app_root=tmp_path)
    with pytest.raises(EntryScriptError, match=r"nope\.py does not exist") as caught:
        create_app(settings)
    assert exit_code(caught.value) == 3
    assert "No such file or directory." in caplog.text


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "def init():\n    pass\n\ndef run(data)\n    return 1\n")
    assert "has a syntax error at line 4" in message


def test_import_time_exception_is_reported_with_its_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    message = load_error(tmp_path, "raise RuntimeError('bad config')\n" + PLAIN)
    assert "failed while importing: RuntimeError: bad config" in message
    assert "Traceback" in caplog.text


def test_missing_module_error_carries_a_hint(tmp_path: Path) -> None:
    message = load_error(tmp_path, "import no_such_module_h4a\n" + PLAIN)
    assert "ModuleNotFoundError: No module named 'no_such_module_h4a'" in message
    assert (
        "hint: 'no_such_module_h4a' is neither installed nor a module beside the script" in message
    )


@pytest.mark.parametrize("missing", ["init", "run"])
def test_missing_init_or_run_uses_the_azmlinfsrv_text(
    tmp_path: Path, missing: str, caplog: pytest.LogCaptureFixture
) -> None:
    source = "def init():\n    pass\n" if missing == "run" else "def run(data):\n    pass\n"
    message = load_error(tmp_path, source)
    text = f"User script at {tmp_path / 'score.py'} does not have a {missing}() function defined."
    assert message.startswith(text)
    assert text in caplog.text


@pytest.mark.parametrize(
    ("signature", "text"),
    [
        ("data, /", "run() cannot accept positional-only arguments, *args, or **kwargs."),
        ("*args", "run() cannot accept positional-only arguments, *args, or **kwargs."),
        ("data, **kwargs", "run() cannot accept positional-only arguments, *args, or **kwargs."),
        ("request_headers", 'run() needs to accept an argument other than "request_headers".'),
        ("", "run() needs to accept an argument for input data."),
    ],
)
def test_bad_run_signatures_use_the_azmlinfsrv_text(
    tmp_path: Path, signature: str, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    message = load_error(tmp_path, f"def init():\n    pass\n\ndef run({signature}):\n    pass\n")
    assert message.startswith(text)
    assert text in caplog.text


def test_run_that_is_not_a_function_is_refused(tmp_path: Path) -> None:
    assert "is not a function" in load_error(tmp_path, "def init():\n    pass\nrun = 5\n")


def test_rawhttp_with_input_schema_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("inference_schema")
    source = """
    from azureml.contrib.services.aml_request import rawhttp
    from inference_schema.schema_decorators import input_schema
    from inference_schema.parameter_types.standard_py_parameter_type import (
        StandardPythonParameterType,
    )

    def init():
        pass

    @rawhttp
    @input_schema("data", StandardPythonParameterType(1))
    def run(data):
        return data
    """
    message = load_error(tmp_path, source)
    assert message.startswith("run() cannot be decorated with both @rawhttp and @input_schema")


# --- input mode -------------------------------------------------------------------------------


def test_mode_is_logged_with_the_azmlinfsrv_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    script = load(tmp_path, PLAIN)
    assert script.mode is InputMode.JSON_STRING
    assert "run() is not decorated. Server will invoke it with the input in JSON string." in (
        caplog.text
    )


def test_object_mode_log_lists_parameters_without_request_headers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("inference_schema")
    caplog.set_level(logging.INFO)
    source = """
    from inference_schema.schema_decorators import input_schema
    from inference_schema.parameter_types.standard_py_parameter_type import (
        StandardPythonParameterType,
    )

    def init():
        pass

    @input_schema("Inputs", StandardPythonParameterType(1))
    def run(Inputs, request_headers, GlobalParameters=1):
        return Inputs
    """
    script = load(tmp_path, source)
    assert script.mode is InputMode.OBJECT
    assert script.accepts_request_headers
    assert (
        "Server will invoke it with the following arguments: Inputs, GlobalParameters."
        in caplog.text
    )


def test_rawhttp_flag_does_not_leak_into_the_next_loaded_script(tmp_path: Path) -> None:
    raw = (
        "from azureml.contrib.services.aml_request import rawhttp\n@rawhttp\ndef run(r):\n"
        "    return 1\ndef init():\n    pass\n"
    )
    assert load(tmp_path, raw).mode is InputMode.RAW_REQUEST
    assert load(tmp_path, PLAIN).mode is InputMode.JSON_STRING


def test_schemas_of_an_earlier_script_do_not_leak_or_clash(tmp_path: Path) -> None:
    pytest.importorskip("inference_schema")
    decorated = """
    from inference_schema.schema_decorators import output_schema
    from inference_schema.parameter_types.standard_py_parameter_type import (
        StandardPythonParameterType,
    )

    def init():
        pass

    @output_schema(StandardPythonParameterType(1))
    def run(data):
        return data
    """
    assert load(tmp_path, decorated).mode is InputMode.OBJECT
    assert load(tmp_path, decorated).mode is InputMode.OBJECT  # no "already defined" error
    assert load(tmp_path, PLAIN).mode is InputMode.JSON_STRING


def test_driver_module_run_is_called_and_outer_init_is_kept(tmp_path: Path) -> None:
    write(tmp_path, "def run(data):\n    return 'inner ' + data\n", name="inner_driver_h4a.py")
    source = """
    import inner_driver_h4a as driver_module
    calls = []

    def init():
        calls.append("outer init")

    def run(data):
        return "outer"
    """
    script = load(tmp_path, source)
    script.init()
    assert script.module.calls == ["outer init"]
    assert script.call_run({"data": "x"}, {}) == "inner x"


# --- shims ------------------------------------------------------------------------------------


def test_all_documented_import_forms_of_the_shims_work(tmp_path: Path) -> None:
    source = """
    from azureml.contrib.services.aml_request import AMLRequest, rawhttp
    from azureml.contrib.services.aml_response import AMLResponse
    from azureml_inference_server_http.api.aml_request import rawhttp as server_rawhttp
    from azureml_inference_server_http.api.aml_response import AMLResponse as ServerResponse

    def init():
        pass

    def run(data):
        return AMLResponse is ServerResponse and rawhttp is server_rawhttp
    """
    assert load(tmp_path, source).run("x") is True


@pytest.mark.parametrize(
    "statement",
    ["from azureml.contrib.services import rawhttp", "import azureml.contrib.services.aml_request"],
)
def test_import_forms_azmlinfsrv_does_not_support_fail_the_same_way(
    tmp_path: Path, statement: str
) -> None:
    if "azureml" in sys.modules or _azureml_installed():
        pytest.skip("an azureml package is installed here")
    assert "ModuleNotFoundError" in load_error(tmp_path, f"{statement}\n{PLAIN}")


def _azureml_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("azureml") is not None


def _importable(site: Path) -> Iterator[Path]:
    """``site`` first on sys.path with every azureml module forgotten, for the fixture's
    lifetime; sys.path and the azureml modules as they were afterwards."""
    saved = {name: sys.modules.get(name) for name in list(sys.modules) if "azureml" in name}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for name in [name for name in sys.modules if "azureml" in name]:
            del sys.modules[name]
        sys.modules.update({k: v for k, v in saved.items() if v is not None})


@pytest.fixture
def installed_contrib_services(tmp_path: Path) -> Iterator[Path]:
    """A stand-in azureml-contrib-services on sys.path; sys.modules restored afterwards."""
    site = tmp_path / "site"
    package = site / "azureml" / "contrib" / "services"
    package.mkdir(parents=True)
    (site / "azureml" / "__init__.py").write_text("")
    (site / "azureml" / "contrib" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("from .aml_request import rawhttp as rawhttp\n")
    (package / "aml_request.py").write_text(
        "REAL = True\n_rawHttpRequested = False\ndef rawhttp(f):\n"
        "    global _rawHttpRequested\n    _rawHttpRequested = True\n    return f\n"
    )
    (package / "aml_response.py").write_text("REAL = True\n")
    yield from _importable(site)


def test_an_installed_azureml_package_is_never_shadowed(
    installed_contrib_services: Path, tmp_path: Path
) -> None:
    installed = install_import_shims()
    assert "azureml.contrib.services.aml_request" not in installed
    assert "azureml.contrib.services.aml_response" not in installed
    source = """
    from azureml.contrib.services import rawhttp
    from azureml.contrib.services.aml_request import REAL

    def init():
        pass

    @rawhttp
    def run(request):
        return REAL
    """
    script = load(tmp_path / "app", source)
    assert script.run("x") is True
    assert script.mode is InputMode.RAW_REQUEST
    assert (
        sys.modules["azureml.contrib.services.aml_request"]
        is not (SHIMMED_MODULES["azureml.contrib.services.aml_request"])
    )


def _azureml_core_installed() -> bool:
    import importlib.metadata

    try:
        importlib.metadata.distribution("azureml-core")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_no_azureml_core = pytest.mark.skipif(
    _azureml_core_installed(), reason="azureml-core is installed: its own Model is used"
)

MLOPS_SCORE = """
import os
import joblib
from azureml.core.model import Model
from azureml.core import Model as CoreModel

def init():
    global model, same
    # MLOpsPython's diabetes score.py: the name is the second-to-last part of AZUREML_MODEL_DIR.
    model_path = Model.get_model_path(os.getenv("AZUREML_MODEL_DIR").split("/")[-2])
    same = CoreModel.get_model_path(model_name="m", version=2) == model_path
    with open(model_path, "rb") as handle:
        model = handle.read().decode()

def run(data):
    return {"model": model, "same": same}
"""


@needs_no_azureml_core
def test_an_unmodified_azureml_core_script_runs_without_azureml_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tmp_path / "app"
    (app / "azureml-models" / "m" / "2").mkdir(parents=True)
    (app / "azureml-models" / "m" / "2" / "model.pkl").write_bytes(b"weights")
    monkeypatch.setenv("AML_APP_ROOT", str(app))
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(app / "azureml-models" / "m" / "2"))
    script = write(app, MLOPS_SCORE)

    client = create_app(ServingSettings(entry_script=script, app_root=app)).test_client()

    assert client.post("/score", data="x").get_json() == {"model": "weights", "same": True}


@needs_no_azureml_core
@pytest.mark.parametrize(
    ("statement", "missing"),
    [
        ("from azureml.core import Workspace", "azureml.core.Workspace"),
        ("from azureml.core.model import InferenceConfig", "azureml.core.model.InferenceConfig"),
    ],
)
def test_what_the_azureml_core_stand_in_lacks_fails_with_one_line_naming_modelstore(
    tmp_path: Path, statement: str, missing: str
) -> None:
    message = load_error(tmp_path, f"{statement}\n{PLAIN}")

    assert message == (
        f"entry script {tmp_path / 'score.py'} failed while importing: ImportError: {missing} is "
        "not available: modelstore stands in for azureml-core here (it is not installed) and "
        "offers only Model.get_model_path(model_name, version=None, _workspace=None); pip "
        "install azureml-core to use it"
    )


@needs_no_azureml_core
def test_the_azureml_core_model_stand_in_offers_only_get_model_path(tmp_path: Path) -> None:
    install_import_shims()
    import inspect

    from azureml.core import Model as CoreModel
    from azureml.core.model import Model

    assert CoreModel is Model
    assert list(inspect.signature(Model.get_model_path).parameters) == [
        "model_name",
        "version",
        "_workspace",
    ]
    with pytest.raises(AttributeError, match=r"^azureml.core.model.Model.register is not avail"):
        Model.register  # noqa: B018 - the attribute access is what fails
    assert not hasattr(Model, "list")
    with pytest.raises(TypeError, match=r"^azureml.core.model.Model\(...\) is not available: "):
        Model(object(), name="m")


@pytest.fixture
def installed_azureml_core(tmp_path: Path) -> Iterator[Path]:
    """A stand-in azureml-core on sys.path whose ``__init__`` records that it ran."""
    site = tmp_path / "site"
    core = site / "azureml" / "core"
    core.mkdir(parents=True)
    (site / "azureml" / "__init__.py").write_text("")
    (core / "__init__.py").write_text("from .model import Model as Model\n")
    (core / "model.py").write_text(
        "class Model:\n    REAL = True\n    @staticmethod\n"
        "    def get_model_path(model_name, version=None, _workspace=None):\n"
        "        return 'real:' + model_name\n"
    )
    yield from _importable(site)


def test_an_installed_azureml_core_is_never_shadowed(
    installed_azureml_core: Path, tmp_path: Path
) -> None:
    installed = install_import_shims()
    assert "azureml.core" not in installed
    assert "azureml.core.model" not in installed
    assert "azureml.core" not in sys.modules  # deciding did not run azureml-core's __init__
    source = """
    from azureml.core.model import Model
    from azureml.core import Model as CoreModel

    def init():
        pass

    def run(data):
        return [Model.REAL, CoreModel is Model, Model.get_model_path("m")]
    """
    assert load(tmp_path / "app", source).run("x") == [True, True, "real:m"]


@pytest.mark.skipif(not _azureml_core_installed(), reason="needs azureml-core (tox -e aml)")
def test_the_real_azureml_core_is_used_when_installed(tmp_path: Path) -> None:
    source = """
    from azureml.core.model import Model

    def init():
        pass

    def run(data):
        return Model
    """
    model = load(tmp_path, source).run("x")

    assert model is not SHIMMED_MODULES["azureml.core.model"].Model
    assert sys.modules["azureml.core.model"] is not SHIMMED_MODULES["azureml.core.model"]
    assert hasattr(model, "register")


# --- init() -----------------------------------------------------------------------------------


def test_init_runs_once_and_its_prints_go_to_the_print_logger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    source = """
    import sys
    calls = []

    def init():
        calls.append(1)
        print("loading", "model")
        print("to stderr", file=sys.stderr)

    def run(data):
        print("scoring")
        return len(calls)
    """
    script = write(tmp_path, source)
    client = create_app(ServingSettings(entry_script=script, app_root=tmp_path)).test_client()
    assert client.post("/score", data="x").get_json() == 1
    printed = [r.getMessage() for r in caplog.records if r.name == "azmlinfsrv.print"]
    assert printed == ["loading model", "scoring"]
    assert "to stderr" in capsys.readouterr().err


def test_run_init_false_skips_init(tmp_path: Path) -> None:
    script = write(tmp_path, "def init():\n    raise SystemExit(9)\ndef run(data):\n    return 1\n")
    app = create_app(ServingSettings(entry_script=script, app_root=tmp_path), run_init=False)
    assert app.test_client().post("/score", data="x").get_json() == 1


def test_init_failure_logs_traceback_and_model_tree_then_raises_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    models = tmp_path / "models"
    (models / "clf" / "1").mkdir(parents=True)
    (models / "clf" / "1" / "model.pkl").write_bytes(b"x")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(models))
    source = "def init():\n    open('/no/such/model.pkl')\ndef run(data):\n    return 1\n"
    script = write(tmp_path, source)
    with pytest.raises(EntryScriptError) as caught:
        create_app(ServingSettings(entry_script=script, app_root=tmp_path))
    assert exit_code(caught.value) == 3
    assert str(caught.value).startswith(f"init() of {script} raised FileNotFoundError: ")
    messages = [r.getMessage() for r in caplog.records]
    assert "User's init function failed" in messages
    assert any("Traceback" in m and "/no/such/model.pkl" in m for m in messages)
    start = messages.index("Model Directory Contents:")
    assert messages[start + 1 : start + 5] == [
        "models/",
        "    clf/",
        "        1/",
        "            model.pkl",
    ]


def test_init_missing_a_model_file_names_the_nearest_real_path_in_the_summary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's local layout (relative AZUREML_MODEL_DIR), a model registered as a folder."""
    caplog.set_level(logging.INFO)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AML_APP_ROOT", raising=False)
    monkeypatch.setenv("AZUREML_MODEL_DIR", "azureml-models/mymodel/1")
    (tmp_path / "azureml-models" / "mymodel" / "1" / "model").mkdir(parents=True)
    (tmp_path / "azureml-models" / "mymodel" / "1" / "model" / "model.pkl").write_bytes(b"x")
    source = """
    import os

    def init():
        open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb")

    def run(data):
        return 1
    """
    script = write(tmp_path, source)

    with pytest.raises(EntryScriptError) as caught:
        create_app(ServingSettings(entry_script=script, app_root=tmp_path))

    advice = (
        ": did you mean azureml-models/mymodel/1/model/model.pkl? A registered folder keeps its "
        "own name under AZUREML_MODEL_DIR. (files under azureml-models: mymodel/1/model/model.pkl)"
    )
    assert str(caught.value) == (
        f"init() of {script} raised FileNotFoundError: [Errno 2] No such file or directory: "
        f"'azureml-models/mymodel/1/model.pkl'{advice}; see the log above"
    )
    messages = [r.getMessage() for r in caplog.records]
    assert f"modelstore: azureml-models/mymodel/1/model.pkl does not exist{advice}" in messages
    assert "Models tree under azureml-models:" in messages


def test_init_asking_for_a_registered_model_not_deployed_here_says_how_to_add_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelstore.registry import Registry

    home = tmp_path / "home"
    (tmp_path / "other.pkl").write_bytes(b"x")
    with Registry(home) as registry:
        registry.register(tmp_path / "other.pkl", "other")
    app = tmp_path / "app"
    (app / "azureml-models" / "m" / "1").mkdir(parents=True)
    (app / "azureml-models" / "m" / "1" / "model.pkl").write_bytes(b"x")
    monkeypatch.setenv("MODELSTORE_HOME", str(home))
    monkeypatch.delenv("MODELSTORE_DB_URL", raising=False)
    monkeypatch.setenv("AML_APP_ROOT", str(app))
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(app / "azureml-models" / "m" / "1"))
    source = """
    from modelstore import Model

    def init():
        Model.get_model_path("other")

    def run(data):
        return 1
    """
    script = write(app, source)

    with pytest.raises(EntryScriptError) as caught:
        create_app(ServingSettings(entry_script=script, app_root=app))

    assert str(caught.value).startswith(
        f"init() of {script} raised ModelNotFoundError: Model other not found in cache at "
    )
    assert str(caught.value).endswith(
        f" other:1 is registered in the modelstore registry at {home} but is not deployed here; "
        "add it to the deployment with `--model other:1` (modelstore serve, score, exec or "
        "deploy), or 'other:1' among the models given to Registry.deploy or azureml_deployment "
        "in Python; see the log above"
    )


def test_model_tree_log_stops_after_200_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    models = tmp_path / "models"
    models.mkdir()
    for index in range(250):
        (models / f"f{index:03}").write_bytes(b"")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(models))
    script = write(
        tmp_path, "def init():\n    raise ValueError('x')\ndef run(data):\n    return 1\n"
    )
    with pytest.raises(EntryScriptError):
        create_app(ServingSettings(entry_script=script, app_root=tmp_path))
    messages = [r.getMessage() for r in caplog.records]
    start = messages.index("Model Directory Contents:")
    assert len(messages[start + 1 : start + 201]) == 200
    assert messages[start + 201] == "Output Truncated. First 200 lines shown."


def test_rawhttp_on_another_function_logs_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = """
    from azureml.contrib.services.aml_request import rawhttp

    @rawhttp
    def helper():
        pass

    def init():
        pass

    def run(request):
        return 1
    """
    assert load(tmp_path, source).mode is InputMode.RAW_REQUEST
    assert "@rawhttp was applied to helper, not to run()" in caplog.text


def test_rawhttp_on_run_itself_logs_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = """
    import functools
    from azureml.contrib.services.aml_request import rawhttp

    def logged(function):
        @functools.wraps(function)
        def wrapper(request):
            return function(request)
        return wrapper

    def init():
        pass

    @logged
    @rawhttp
    def run(request):
        return 1
    """
    assert load(tmp_path, source).mode is InputMode.RAW_REQUEST
    assert "@rawhttp was applied" not in caplog.text


# --- failure lines that point at the real fix ------------------------------------------------

needs_no_azureml = pytest.mark.skipif(
    importlib.util.find_spec("azureml") is not None,
    reason="an installed azureml package makes these imports work",
)


@needs_no_azureml
@pytest.mark.parametrize(
    "statement",
    [
        "import azureml.contrib.services.aml_request",
        "from azureml.contrib.services import rawhttp",
        "import azureml.core.model",
        "from azureml.exceptions import WebserviceException",
    ],
)
def test_an_azureml_import_without_the_package_names_the_import_forms_that_work(
    tmp_path: Path, statement: str
) -> None:
    message = load_error(tmp_path, f"{statement}\n{PLAIN}")

    assert "ModuleNotFoundError: No module named 'azureml'" in message
    # Not the generic advice to put an azureml.py next to the script.
    assert "azureml.py" not in message
    assert "from azureml.contrib.services.aml_request import AMLRequest, rawhttp" in message
    assert "from azureml.contrib.services.aml_response import AMLResponse" in message
    assert "from modelstore import Model" in message
    assert "`from azureml.core.model import Model` or `from azureml.core import Model`" in message
    assert "\n" not in message


def test_a_missing_azureml_subpackage_is_named_when_azureml_itself_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A namespace-less stand-in for an installed azureml distribution without azureml.core.
    (tmp_path / "azureml").mkdir()
    (tmp_path / "azureml" / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [name for name in sys.modules if name.split(".")[0] == "azureml"]:
        monkeypatch.delitem(sys.modules, name)

    try:
        message = load_error(tmp_path, "from azureml.train.estimator import Estimator\n" + PLAIN)
    finally:
        sys.modules.pop("azureml", None)

    assert "No module named 'azureml.train'" in message
    assert message.endswith(
        "(hint: azureml.train is not installed; pip install the azureml package providing it)"
    )


def test_a_script_with_a_nul_byte_is_a_syntax_error_without_a_line_of_none(
    tmp_path: Path,
) -> None:
    script = tmp_path / "score.py"
    script.write_bytes(b'x = "\x00"\n' + PLAIN.encode())
    with pytest.raises(EntryScriptError) as caught:
        load_entry_script(script, ServingSettings(entry_script=script, app_root=tmp_path))

    assert str(caught.value) == (
        f"entry script {script} has a syntax error: source code string cannot contain null "
        "bytes; fix it and start again"
    )


def test_a_driver_module_without_a_file_fails_to_start_in_one_line(tmp_path: Path) -> None:
    # azmlinfsrv logs the driver's __file__ and fails to boot (exit 3) on such a module.
    message = load_error(
        tmp_path,
        """
        import types

        driver_module = types.ModuleType("driver")
        driver_module.run = lambda data: data

        def init():
            pass

        def run(data):
            return data
        """,
    )

    assert message == (
        f"driver_module of {tmp_path / 'score.py'} has no __file__ (azmlinfsrv fails to boot "
        "on it); make driver_module a module imported from a file"
    )
