"""The official frontend in a real browser reads the V3 fixture pack's node definitions
(MatchType and AutogrowDynamic inputs included), loads a V3 prompt and queues it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from nodeloom.engine import Engine
from nodeloom.server.app import create_app
from nodeloom.server.config import ServerConfig
from tests.compat.test_v3_api import _graphs
from tests.compat.v3_packs import write_packs
from tests.server.conftest import LiveServer, request
from tests.server.test_browser import browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser


def open_app(browser, url: str) -> tuple[Any, list[str], list[str]]:  # noqa: F811
    """A page with the frontend booted on ``url``: ``(page, page errors, console warnings)``."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    warnings: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: warnings.append(msg.text) if msg.type in ("warning", "error") else None)
    assert request(url, "POST", "/api/settings", {"Comfy.TutorialCompleted": True}).status == 200
    page.goto(url + "/", wait_until="networkidle", timeout=90_000)
    page.wait_for_function("() => window.app && window.app.graph && document.querySelector('canvas')", timeout=60_000)
    assert errors == [], errors
    return page, errors, warnings


def queue_from_frontend(page: Any, url: str) -> dict[str, Any]:
    """Queue the page's graph as the Queue button does; the finished, successful history item."""
    before = set(request(url, "GET", "/history").json())
    page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    deadline = time.monotonic() + 60
    while not (new := set(request(url, "GET", "/history").json()) - before) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert new, "the prompt never finished"
    (item,) = request(url, "GET", f"/history/{new.pop()}").json().values()
    assert item["status"]["status_str"] == "success", item["status"]
    return item  # type: ignore[no-any-return]


def test_frontend_reads_v3_nodes_and_runs_a_v3_prompt(tmp_path: Path, browser) -> None:  # noqa: F811
    engine = Engine(base_dir=tmp_path / "base", custom_nodes_dirs=[write_packs(tmp_path / "custom_nodes")])
    srv = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "queue.sqlite3")))
    try:
        page, errors, warnings = open_app(browser, srv.url)
        v3_ids = sorted(n for n in engine.registry.classes() if n.startswith("V3"))
        known = page.evaluate("(ids) => ids.filter(id => id in LiteGraph.registered_node_types)", v3_ids)
        assert known == v3_ids
        assert not [w for w in warnings if "V3" in w], warnings  # no node definition was rejected
        prompt = {k: v for k, v in _graphs("V3").items() if k not in ("20", "21")}
        page.evaluate("async (wf) => { await window.app.loadApiJson(wf, 'v3.json'); }", prompt)
        page.wait_for_function("(n) => window.app.graph.nodes.length === n", arg=len(prompt), timeout=30_000)
        item = queue_from_frontend(page, srv.url)
        assert item["outputs"]["13"] == {"text": ["13|11|9.5"]}
        assert errors == [], errors
    finally:
        srv.close()
        engine.close()
