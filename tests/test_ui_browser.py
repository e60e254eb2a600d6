"""The two pages in a real headless Chromium (Debian's ``chromium``), with every host but
loopback unreachable, so a page needing a CDN fails. Screenshots go to pytest's tmp folder.

Skipped only when chromium is missing and ``CI`` is unset; in CI a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_serve_http import clean_environment, running, stop, write_script
from test_v2_endpoint import FILES, ROWS, _start, system_tmp, trained  # noqa: F401 (fixtures)
from werkzeug.serving import make_server

from modelstore.registry import Registry
from modelstore.ui import create_ui_app

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script> "q" ü ✓'

SCRIPT = """
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

def init():
    pass

@input_schema("data", StandardPythonParameterType([1, 2, 3]))
@output_schema(StandardPythonParameterType({"total": 6}))
def run(data):
    return {"total": sum(data), "answered_by": "the test script"}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[OFFLINE, "--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    yield page
    context.close()
    assert failed == [], f"requests failed (offline?): {failed}"


def test_docs_page_renders_score_and_sends_the_example(page: Any, tmp_path: Path) -> None:
    pytest.importorskip("inference_schema")
    script = write_script(tmp_path, SCRIPT)
    env = clean_environment(tmp_path / "home")
    with running(["--entry-script", str(script)], tmp_path / "srv", cwd=tmp_path, env=env) as srv:
        page.goto(srv.url + "/docs")
        operation = page.locator(".opblock-post", has_text="/score").first
        operation.wait_for(timeout=30_000)
        operation.locator(".opblock-summary").click()
        page.locator("button.execute").first.click()
        body = page.locator(".responses-wrapper .live-responses-table .highlight-code").first
        body.wait_for(timeout=30_000)
        text = body.inner_text()
        page.screenshot(path=str(tmp_path / "docs-page.png"), full_page=True)
    assert '"total": 6' in text and "the test script" in text, text


def test_registry_page_lists_a_model_and_its_digest_and_never_runs_its_text(
    page: Any, tmp_path: Path
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    with Registry(tmp_path / "home") as registry:
        model = registry.register(source, "churn", tags={"note": HOSTILE}, description=HOSTILE)
    server = make_server("127.0.0.1", 0, create_ui_app(tmp_path / "home"), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        page.goto(url)
        section = page.locator("section.model", has_text="churn")
        assert section.locator("code.digest").inner_text() == model.sha256[:12]
        assert section.locator("td.description").inner_text() == HOSTILE
        page.screenshot(path=str(tmp_path / "registry-page.png"), full_page=True)
        page.get_by_role("link", name="1", exact=True).click()
        page.locator("code.digest").wait_for()
        assert page.locator("code.digest").inner_text() == model.sha256
        assert page.locator("dd.description").inner_text() == HOSTILE
        assert page.evaluate("window.pwned === undefined")
        page.screenshot(path=str(tmp_path / "version-page.png"), full_page=True)
    finally:
        server.shutdown()
        thread.join()


def test_the_browser_resolves_no_host_but_loopback(browser: Any) -> None:
    """What makes the page tests prove there is no CDN: any other host fails to load."""
    from playwright.sync_api import Error

    context = browser.new_context()
    try:
        with pytest.raises(Error, match="ERR_NAME_NOT_RESOLVED"):
            context.new_page().goto("https://cdn.jsdelivr.net/npm/swagger-ui-dist/")
    finally:
        context.close()


def test_docs_page_behind_a_v2_endpoint_sends_to_the_picked_deployment_with_the_typed_key(
    page: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gallery: Path = request.getfixturevalue("trained")  # fixtures/v2, trained and registered
    emptied: Path = request.getfixturevalue("system_tmp")
    env = clean_environment(gallery.parent / "home", {"TMPDIR": str(emptied)})
    process, url = _start(["--auth", *(f"-f{f}" for f in FILES)], gallery, env, tmp_path / "l")
    try:
        stdout = (tmp_path / "l" / "stdout.txt").read_text().splitlines()
        key = next(line.split(": ", 1)[1] for line in stdout if line.startswith("Key ("))
        page.goto(url + "/docs")
        picker = page.locator("select#deployment")
        picker.wait_for(timeout=30_000)
        assert picker.locator("option").all_inner_texts() == ["by traffic", "blue", "green"]
        assert key not in page.content()
        page.fill("input#key", key)
        page.locator("input#key").press("Enter")
        picker.select_option("green")
        operation = page.locator(".opblock-post", has_text="/score").first
        operation.wait_for(timeout=30_000)
        operation.locator(".opblock-summary").click()
        page.locator("textarea.body-param__text").first.fill(ROWS)
        page.locator("button.execute").first.click()
        body = page.locator(".responses-wrapper .live-responses-table .highlight-code").first
        body.wait_for(timeout=30_000)
        text = body.inner_text()
        page.screenshot(path=str(tmp_path / "endpoint-docs-page.png"), full_page=True)
    finally:
        stop(process)
    assert '"deployment": "green"' in text, text
