"""The two pages in a real headless Chromium (Debian's ``chromium``), with every host but
loopback unreachable, so a page needing a CDN fails. Screenshots go to pytest's tmp folder.

Skipped only when chromium is missing and ``CI`` is unset; in CI a missing browser fails.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_serve_http import clean_environment, running, stop, write_script
from test_v2_endpoint import FILES, ROWS, _start, system_tmp, trained  # noqa: F401 (fixtures)
from werkzeug.serving import make_server

from modelstore.registry import Registry
from modelstore.ui import create_ui_app

pytestmark = pytest.mark.browser
FIXTURES = Path(__file__).parent.parent / "fixtures"
PICTURE = FIXTURES / "images" / "tiny.png"
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
PLAIN = """
import json

def init():
    pass

def run(data):
    return {"received": json.loads(data), "answered_by": "the plain script"}
"""
IMAGE_ECHO = """
from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    pass

@rawhttp
def run(request):
    return AMLResponse(request.get_data(), 200, {"Content-Type": request.content_type})
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
    refused: list[str] = []

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    page.on("console", on_console)
    yield page
    context.close()
    assert failed == [], f"requests failed (offline?): {failed}"
    assert refused == [], f"the page broke its Content-Security-Policy: {refused}"


@contextmanager
def serving(app: Callable[..., Any]) -> Iterator[str]:
    """A WSGI app on a free loopback port, in a thread; yields its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def open_score(page: Any, url: str) -> Any:
    """``/docs`` at ``url`` with the ``POST /score`` operation opened."""
    page.goto(url + "/docs")
    operation = page.locator(".opblock-post", has_text="/score").first
    operation.wait_for(timeout=30_000)
    operation.locator(".opblock-summary").click()
    return operation


def test_docs_page_renders_score_and_sends_the_example(page: Any, tmp_path: Path) -> None:
    pytest.importorskip("inference_schema")
    script = write_script(tmp_path, SCRIPT)
    env = clean_environment(tmp_path / "home")
    with running(["--entry-script", str(script)], tmp_path / "srv", cwd=tmp_path, env=env) as srv:
        open_score(page, srv.url)
        page.locator("button.execute").first.click()
        body = page.locator(".responses-wrapper .live-responses-table .highlight-code").first
        body.wait_for(timeout=30_000)
        text = body.inner_text()
        page.screenshot(path=str(tmp_path / "docs-page.png"), full_page=True)
    assert '"total": 6' in text and "the test script" in text, text


def test_docs_page_sends_an_edited_body_to_a_plain_json_script(page: Any, tmp_path: Path) -> None:
    """No inference-schema decorator: ``run(data)`` gets the body as a string, edited here."""
    script = write_script(tmp_path, PLAIN)
    env = clean_environment(tmp_path / "home")
    with running(["--entry-script", str(script)], tmp_path / "srv", cwd=tmp_path, env=env) as srv:
        operation = open_score(page, srv.url)
        page.locator("textarea.body-param__text").first.fill('{"rows": [4, 5], "note": "edited"}')
        page.locator("button.execute").first.click()
        body = page.locator(".responses-wrapper .live-responses-table .highlight-code").first
        body.wait_for(timeout=30_000)
        text = body.inner_text()
        offered_a_file = operation.locator(".modelstore-send-file").count()
        page.screenshot(path=str(tmp_path / "docs-plain-script.png"), full_page=True)
    assert '"note": "edited"' in text and "the plain script" in text, text
    assert offered_a_file == 0  # the file control is for @rawhttp scripts only


def _send_file(page: Any, operation: Any, content_type: str, field: str) -> None:
    panel = operation.locator(".modelstore-send-file")
    panel.wait_for(timeout=30_000)
    panel.locator("input[type=file]").set_input_files(str(PICTURE))
    assert panel.locator("input.modelstore-content-type").input_value() == "image/png"
    panel.locator("input.modelstore-content-type").fill(content_type)
    panel.locator("input.modelstore-field").fill(field)
    panel.locator("button.modelstore-send").click()
    panel.locator(".modelstore-file-answer").wait_for(timeout=30_000)


def test_docs_page_uploads_a_file_in_a_form_field_to_a_rawhttp_script(
    page: Any, tmp_path: Path
) -> None:
    """The gallery's image script reads a multipart field named ``image``."""
    script = FIXTURES / "scripts" / "rawhttp_image" / "score.py"
    env = clean_environment(tmp_path / "home")
    with running(["--entry-script", str(script)], tmp_path / "srv", cwd=tmp_path, env=env) as srv:
        operation = open_score(page, srv.url)
        _send_file(page, operation, "image/png", "image")
        status = operation.locator(".modelstore-file-status").inner_text()
        headers = operation.locator(".modelstore-file-headers").inner_text()
        body = operation.locator(".modelstore-file-body").inner_text()
        page.screenshot(path=str(tmp_path / "docs-rawhttp-upload.png"), full_page=True)
        panel = operation.locator(".modelstore-send-file")
        panel.screenshot(path=str(tmp_path / "docs-send-file.png"))  # docs/ui-docs-send-file.png
    assert status == "200 OK"
    assert "content-type: application/json" in headers.splitlines(), headers
    assert "x-ms-server-version: azmlinfsrv/1.5.1" in headers.splitlines(), headers
    with Image.open(PICTURE) as picture:
        assert json.loads(body) == list(picture.size), body


def test_docs_page_sends_a_file_as_the_whole_body_and_shows_an_image_answer(
    page: Any, tmp_path: Path
) -> None:
    """No field name: the bytes are the body, with the typed Content-Type; an image comes back
    as an image."""
    script = write_script(tmp_path, IMAGE_ECHO)
    env = clean_environment(tmp_path / "home")
    with running(["--entry-script", str(script)], tmp_path / "srv", cwd=tmp_path, env=env) as srv:
        operation = open_score(page, srv.url)
        _send_file(page, operation, "image/png; source=typed", "")
        image = operation.locator("img.modelstore-file-image")
        image.wait_for(timeout=30_000)
        page.wait_for_function(
            "() => document.querySelector('img.modelstore-file-image').naturalWidth > 0"
        )
        size = image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
        headers = operation.locator(".modelstore-file-headers").inner_text()
        page.screenshot(path=str(tmp_path / "docs-rawhttp-image.png"), full_page=True)
    assert "content-type: image/png; source=typed" in headers.splitlines(), headers
    with Image.open(PICTURE) as picture:
        assert size == list(picture.size)


def test_registry_page_lists_a_model_and_its_digest_and_never_runs_its_text(
    page: Any, tmp_path: Path
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    with Registry(tmp_path / "home") as registry:
        model = registry.register(source, "churn", tags={"note": HOSTILE}, description=HOSTILE)
    with serving(create_ui_app(tmp_path / "home")) as url:
        page.goto(url + "/")
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


FETCH_SCORE = """async (url) => {
  try {
    const answer = await fetch(url, {
      method: "POST", headers: {"Content-Type": "application/json"}, body: '{"rows": [1]}',
    });
    document.body.textContent = "answered: " + await answer.text();
    return "answered: " + answer.status;
  } catch (error) {
    document.body.textContent = "blocked: " + error;
    return "blocked: " + error;
  }
}"""


def _blank(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Another site: a page of its own on another loopback port, so another origin."""
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [b"<!DOCTYPE html><title>another site</title><body>calling /score</body>"]


def test_browser_lets_only_the_allowed_origin_read_score_answers(
    browser: Any, tmp_path: Path
) -> None:
    """``AML_CORS_ORIGINS`` as a real browser enforces it: a JSON POST needs a preflight, and
    the answer is readable only by a page from the allowed origin."""
    script = write_script(tmp_path, PLAIN)
    results: dict[str, str] = {}
    with serving(_blank) as allowed, serving(_blank) as other:
        env = clean_environment(tmp_path / "home", {"AML_CORS_ORIGINS": allowed})
        args = ["--entry-script", str(script)]
        with running(args, tmp_path / "srv", cwd=tmp_path, env=env) as srv:
            for name, origin in (("allowed", allowed), ("other", other)):
                context = browser.new_context()
                try:
                    page = context.new_page()
                    page.goto(origin + "/")
                    results[name] = page.evaluate(FETCH_SCORE, srv.url + "/score")
                    page.screenshot(path=str(tmp_path / f"cors-{name}-origin.png"))
                finally:
                    context.close()
    assert results["allowed"] == "answered: 200", results
    assert results["other"] == "blocked: TypeError: Failed to fetch", results
