"""The official frontend in a real browser (Debian's chromium driven by playwright): the graph
editor boots without page errors, a no-model workflow loads, runs, and its image appears."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.server.conftest import request

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = Path(__file__).parent / "data" / "browser_workflow.json"


@pytest.fixture
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise TimeoutError(what)


def test_frontend_boots_runs_workflow_and_shows_image(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # a returning user: no first-run templates dialog over the graph
    assert request(server.url, "POST", "/api/settings", {"Comfy.TutorialCompleted": True}).status == 200
    page.goto(server.url + "/", wait_until="networkidle", timeout=90_000)
    page.wait_for_function("() => window.app && window.app.graph && document.querySelector('canvas')", timeout=60_000)
    assert errors == [], errors

    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", json.loads(WORKFLOW.read_text()))
    assert page.evaluate("() => window.app.graph.nodes.map(n => n.type).sort()") == ["SaveTestImage", "SolidImage"]
    before = set(request(server.url, "GET", "/history").json())
    page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    new = _wait(lambda: set(request(server.url, "GET", "/history").json()) - before, 60, "the prompt never finished")
    entry = request(server.url, "GET", f"/history/{new.pop()}").json()
    (item,) = entry.values()
    assert item["status"]["status_str"] == "success"
    filename = item["outputs"]["2"]["images"][0]["filename"]
    page.wait_for_function(
        """(name) => { const n = window.app.graph.getNodeById(2);
             return n && n.imgs && n.imgs.length > 0 && n.imgs[0].complete && n.imgs[0].naturalWidth === 64
                    && n.imgs[0].src.includes(name); }""",
        arg=filename, timeout=60_000,
    )
    page.evaluate("() => { const c = window.app.canvas; c.ds.offset = [0, 0]; c.ds.scale = 1; c.setDirty(true, true); }")
    page.wait_for_timeout(500)
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "server_browser_workflow.png"))
    assert errors == [], errors


def test_frontend_works_behind_a_token(tmp_path, browser):
    from nodeloom.server.app import create_app
    from nodeloom.server.config import ServerConfig
    from tests.server.conftest import LiveServer, make_engine

    engine = make_engine(tmp_path)
    srv = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "q.db"), token="browser-token"))
    try:
        page = browser.new_page()
        errors: list[str] = []
        refused: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("response", lambda r: refused.append(r.url) if r.status == 401 else None)
        page.goto(srv.url + "/?token=browser-token", wait_until="networkidle", timeout=90_000)
        page.wait_for_function("() => window.app && window.app.graph && window.app.api.socket"
                               " && window.app.api.socket.readyState === 1", timeout=60_000)
        assert errors == [] and refused == []
        assert request(srv.url, "GET", "/").status == 401  # without the browser's cookie
    finally:
        srv.close()
        engine.close()
