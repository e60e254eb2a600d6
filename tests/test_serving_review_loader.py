"""Review findings on loading score.py: the failure lines must point at the real fix."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

from modelstore.cli.errors import exit_code
from modelstore.errors import EntryScriptError
from modelstore.serving.loader import load_entry_script
from modelstore.serving.settings import ServingSettings

PLAIN = "def init():\n    pass\n\ndef run(data):\n    return data\n"

needs_no_azureml = pytest.mark.skipif(
    importlib.util.find_spec("azureml") is not None,
    reason="an installed azureml package makes these imports work",
)


def load_error(tmp_path: Path, source: str) -> str:
    script = tmp_path / "score.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    with pytest.raises(EntryScriptError) as caught:
        load_entry_script(script, ServingSettings(entry_script=script, app_root=tmp_path))
    assert exit_code(caught.value) == 3
    return str(caught.value)


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
