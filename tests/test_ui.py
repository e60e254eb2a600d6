"""``modelstore ui``: the read-only registry pages, through Flask's test client and the CLI."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelstore.cli import main
from modelstore.registry import Registry
from modelstore.ui import create_ui_app
from modelstore.ui.app import CONTENT_SECURITY_POLICY
from modelstore.ui.server import is_loopback

HOSTILE = '<script>alert("x")</script> \'quoted\' "double" ünïcødé ✓'


def snapshot(home: Path) -> dict[str, str]:
    """Every file under ``home`` with its sha256: the registry byte for byte."""
    result = {}
    for folder, _dirs, files in os.walk(home):
        for name in files:
            path = Path(folder, name)
            result[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    source = tmp_path / "model"
    (source / "sub").mkdir(parents=True)
    (source / "weights.bin").write_bytes(b"w" * 2048)
    (source / "sub" / "config.json").write_text('{"a": 1}', encoding="utf-8")
    plain = tmp_path / "plain.txt"
    plain.write_text("plain", encoding="utf-8")
    with Registry(home) as registry:
        registry.register(source, "churn", tags={"stage": "prod"}, description="first")
        registry.register(source, "churn", tags={"stage": "dev"})
        registry.register(plain, "other-model", tags={"team": "a"})
        registry.register(plain, "hostile", tags={"note": HOSTILE}, description=HOSTILE)
        registry.add_properties("hostile", 1, {"prop": HOSTILE})
        registry.set_alias("churn", "champion", 1)
    return home


def test_registry_page_lists_every_model_with_versions_tags_aliases_and_digests(
    home: Path,
) -> None:
    client = create_ui_app(home).test_client()
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    with Registry(home, read_only=True) as registry:
        for model in registry.list():
            assert f'href="/models/{model.name}/{model.version}"' in html
            assert model.sha256[:12] in html
        churn = registry.get("churn", 1)
    assert "stage=prod" in html and "stage=dev" in html
    assert "@champion" in html
    assert "first" in html
    assert churn.created_at.strftime("%Y-%m-%d %H:%M:%S") in html
    assert "2.0 KiB" in html


def test_version_page_shows_files_layout_and_commands(home: Path) -> None:
    client = create_ui_app(home).test_client()
    page = client.get("/models/churn/1")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    with Registry(home, read_only=True) as registry:
        files = registry.files("churn", 1)
        model = registry.get("churn", 1)
    assert [f.path for f in files] == ["model/sub/config.json", "model/weights.bin"]
    for f in files:
        assert f.path in html and f.sha256 in html
    assert model.sha256 in html
    assert "AZUREML_MODEL_DIR=./app/azureml-models/churn/1" in html
    assert 'data-copy="modelstore deploy churn:1 --app-root ./app"' in html
    assert 'data-copy="modelstore serve --entry-script score.py --model churn:1"' in html
    assert "@champion" in html


def test_hostile_tags_descriptions_and_properties_are_shown_as_text(home: Path) -> None:
    client = create_ui_app(home).test_client()
    escaped = (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &#39;quoted&#39; &#34;double&#34; "
        "ünïcødé ✓"
    )
    for url in ("/", "/models/hostile/1"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>alert" not in html
        assert html.count(escaped) >= 3, url  # tag, description, property
        scripts = re.findall(r"<script[^>]*>", html)
        assert scripts == ['<script src="/static/copy.js" defer>'], scripts


def test_filters_by_name_and_tag(home: Path) -> None:
    client = create_ui_app(home).test_client()
    by_name = client.get("/", query_string={"name": "CHUR"}).get_data(as_text=True)
    assert 'data-name="churn"' in by_name and 'data-name="other-model"' not in by_name
    by_tag = client.get("/", query_string={"tag": "stage=prod"}).get_data(as_text=True)
    assert 'href="/models/churn/1"' in by_tag and 'href="/models/churn/2"' not in by_tag
    assert 'data-name="other-model"' not in by_tag
    by_key = client.get("/", query_string={"tag": "team"}).get_data(as_text=True)
    assert 'data-name="other-model"' in by_key and 'data-name="churn"' not in by_key
    none = client.get("/", query_string={"name": "nothing-like-it"}).get_data(as_text=True)
    assert "No model matches." in none


def test_unknown_version_or_bad_name_is_a_404_page(home: Path) -> None:
    client = create_ui_app(home).test_client()
    missing = client.get("/models/churn/9")
    assert missing.status_code == 404
    assert "churn" in missing.get_data(as_text=True)
    assert client.get("/models/bad%20name/1").status_code == 404


SQLITE_SIDECARS = ("registry.db-wal", "registry.db-shm")
"""SQLite's shared-memory index and an empty log, which any reader of a WAL catalog may leave
(as ``modelstore list`` does); the catalog itself and every model file must not change."""
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def test_browsing_leaves_the_registry_byte_identical(home: Path) -> None:
    before = snapshot(home)
    client = create_ui_app(home).test_client()
    for url in ("/", "/?name=churn&tag=stage", "/models/churn/1", "/models/hostile/1", "/x"):
        client.get(url)
    after = snapshot(home)
    assert after.get("registry.db-wal", EMPTY_SHA256) == EMPTY_SHA256
    assert {k: v for k, v in after.items() if k not in SQLITE_SIDECARS} == {
        k: v for k, v in before.items() if k not in SQLITE_SIDECARS
    }
    assert "registry.db" in after


def test_ui_without_a_registry_is_one_error_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "none"), "ui", "--port", "0"])
    assert result.exit_code != 0
    assert result.output.startswith("Error: there is no modelstore registry at ")
    assert result.output.count("\n") == 1
    assert not (tmp_path / "none").exists()


def test_pages_forbid_inline_scripts_and_other_origins(home: Path) -> None:
    client = create_ui_app(home).test_client()
    for url in ("/", "/models/churn/1", "/models/churn/9"):
        answer = client.get(url)
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY


def _ui_process(home: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MODELSTORE_DB_URL", None)
    command = [sys.executable, "-m", "modelstore", "--home", str(home), "ui", *args]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_ui_command_serves_on_loopback_and_prints_its_url(home: Path) -> None:
    import requests

    process = _ui_process(home, "--port", "0")
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the port is bound
        match = re.fullmatch(r"Registry pages at (http://127\.0\.0\.1:\d+/)\n", line)
        assert match, line
        page = requests.get(match.group(1), timeout=30)
        assert page.status_code == 200 and 'href="/models/churn/1"' in page.text
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


def test_ui_on_a_taken_port_is_one_error_line(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _ui_process(home, "--port", str(port))
        out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert out == ""
    assert err == (
        f"Error: port {port} on 127.0.0.1 is already in use (is another server running?); "
        "stop it or choose another --port\n"
    )


def test_pages_refuse_requests_naming_another_host(home: Path) -> None:
    client = create_ui_app(home).test_client()
    for host in ("localhost", "127.0.0.1:5050", "[::1]:5050", "LOCALHOST"):
        assert client.get("/", headers={"Host": host}).status_code == 200, host
    rebound = client.get("/models/churn/1", headers={"Host": "attacker.example:5050"})
    assert rebound.status_code == 403
    html = rebound.get_data(as_text=True)
    assert "answer only requests for localhost or 127.0.0.1" in html
    assert "churn" not in html
    open_client = create_ui_app(home, loopback_only=False).test_client()
    assert open_client.get("/", headers={"Host": "box.lan:5050"}).status_code == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False), ("box", False)],
)
def test_only_a_loopback_bound_server_checks_the_host_name(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
