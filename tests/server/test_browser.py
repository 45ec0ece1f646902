"""The official frontend in a real browser (Debian's chromium driven by playwright): the graph
editor boots without page errors, an example workflow that needs no models
loads, runs, and its output image appears in the graph."""

from __future__ import annotations

import io
import json
import shutil
import urllib.parse
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.server.conftest import request

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]
#: an example shipped with nodeloom that needs no model weights (API format)
EXAMPLE = ROOT / "examples" / "workflows" / "invert_scale.json"


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


def server_output(server, image: dict) -> io.BytesIO:
    query = urllib.parse.urlencode({k: image[k] for k in ("filename", "subfolder", "type")})
    return io.BytesIO(request(server.url, "GET", f"/view?{query}").body)


def _boot(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # a returning user: no first-run templates dialog over the graph
    assert request(server.url, "POST", "/api/settings", {"Comfy.TutorialCompleted": True}).status == 200
    page.goto(server.url + "/", wait_until="networkidle", timeout=90_000)
    page.wait_for_function("() => window.app && window.app.graph && document.querySelector('canvas')", timeout=60_000)
    return page, errors


def test_frontend_boots_runs_example_workflow_and_shows_image(server, browser):
    page, errors = _boot(server, browser)
    assert errors == [], errors

    example = json.loads(EXAMPLE.read_text())
    page.evaluate("async (wf) => { await window.app.loadApiJson(wf, 'invert_scale.json'); }", example)
    page.wait_for_function("(n) => window.app.graph.nodes.length === n", arg=len(example), timeout=30_000)
    # lay the chain out in one row and zoom out so every node (and its image) is drawn
    page.evaluate("""() => { const g = window.app.graph, c = window.app.canvas; g.arrange(40);
                             c.ds.scale = 0.8; c.ds.offset = [40, 100]; c.setDirty(true, true); }""")
    types = page.evaluate("() => window.app.graph.nodes.map(n => n.type).sort()")
    assert types == sorted(node["class_type"] for node in example.values())
    before = set(request(server.url, "GET", "/history").json())
    page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    new = _wait(lambda: set(request(server.url, "GET", "/history").json()) - before, 60, "the prompt never finished")
    entry = request(server.url, "GET", f"/history/{new.pop()}").json()
    (item,) = entry.values()
    assert item["status"]["status_str"] == "success"
    (save_id,) = [nid for nid, node in example.items() if node["class_type"] == "SaveImage"]
    image = item["outputs"][save_id]["images"][0]
    with Image.open(server_output(server, image)) as saved:
        width = saved.size[0]
    page.wait_for_function(
        """([name, width]) => window.app.graph.nodes.some(n => n.imgs && n.imgs.length > 0 && n.imgs[0].complete
                && n.imgs[0].naturalWidth === width && n.imgs[0].src.includes(encodeURIComponent(name)))""",
        arg=[image["filename"], width], timeout=60_000,
    )
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


def test_templates_dialog_lists_the_official_templates(server, browser):
    pytest.importorskip("comfyui_workflow_templates_json", reason="the official templates are not installed")
    groups = request(server.url, "GET", "/templates/index.json").json()
    titles = [t["title"] for g in groups for t in g["templates"] if not t["name"].startswith("api_")]
    page, errors = _boot(server, browser)
    page.evaluate("async () => { await window.app.extensionManager.command.execute('Comfy.BrowseTemplates'); }")
    shown = _wait(lambda: page.evaluate(
        "(titles) => titles.filter(t => document.body.innerText.includes(t)).length", titles[:40]), 60,
        "the Templates dialog listed none of the official templates")
    page.wait_for_timeout(500)
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "server_browser_templates.png"))
    assert shown >= 3 and errors == [], errors


def test_default_workflow_loads_with_no_unknown_node(server, browser):
    page, errors = _boot(server, browser)
    page.evaluate("async () => { await window.app.loadGraphData(); }")
    page.wait_for_function("() => window.app.graph.nodes.length > 0", timeout=30_000)
    types = page.evaluate("() => window.app.graph.nodes.map(n => n.type)")
    unknown = page.evaluate("() => window.app.graph.nodes.filter(n => !LiteGraph.registered_node_types[n.type])"
                            ".map(n => n.type)")
    assert "KSampler" in types and errors == [], errors
    assert unknown == [], f"the frontend's default workflow has node types nodeloom lacks: {sorted(set(unknown))}"
