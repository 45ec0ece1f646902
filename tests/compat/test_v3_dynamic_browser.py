"""The official frontend in a real browser draws the fixture pack's ``io.Autogrow`` and
``io.DynamicCombo`` inputs, builds a prompt with their dotted socket names, and the server runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeloom.engine import Engine
from nodeloom.server.app import create_app
from nodeloom.server.config import ServerConfig
from tests.compat.test_v3_dynamic import write_dynamic_pack
from tests.compat.test_v3_browser import open_app, queue_from_frontend
from tests.server.conftest import LiveServer
from tests.server.test_browser import browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

# Builds: floats into DynGrowSum's three first sockets (which grows a fourth), a DynShape switched to "rect", both shown.
BUILD = """
async () => {
  const g = window.app.graph;
  const add = (type) => { const n = LiteGraph.createNode(type); g.add(n); return n; };
  const slot = (node, name) => node.inputs.findIndex((i) => i.name === name);
  const a = add("PrimitiveFloat"), b = add("PrimitiveFloat");
  a.widgets[0].value = 1.5; b.widgets[0].value = 2.0;
  const sum = add("DynGrowSum");
  const before = sum.inputs.map((i) => i.name);
  a.connect(0, sum, slot(sum, "values.value0"));
  b.connect(0, sum, slot(sum, "values.value1"));
  a.connect(0, sum, slot(sum, "values.value2"));
  await new Promise((resolve) => setTimeout(resolve, 100));
  const grown = sum.inputs.map((i) => i.name);
  add("DynShow"); sum.connect(0, g.nodes[g.nodes.length - 1], 0);
  const shape = add("DynShape");
  shape.widgets.find((w) => w.name === "shape").value = "rect";
  shape.widgets.find((w) => w.name === "shape.width").value = 3;
  shape.widgets.find((w) => w.name === "shape.height").value = 5;
  add("DynShow"); shape.connect(0, g.nodes[g.nodes.length - 1], 0);
  const built = await window.app.graphToPrompt();
  return {before, grown, widgets: shape.widgets.map((w) => w.name), output: built.output,
          ids: {sum: String(sum.id), shape: String(shape.id)}};
}
"""


def test_frontend_grows_dynamic_sockets_and_the_server_runs_them(tmp_path: Path, browser) -> None:  # noqa: F811
    engine = Engine(base_dir=tmp_path / "base", custom_nodes_dirs=[write_dynamic_pack(tmp_path / "custom_nodes")])
    srv = LiveServer(create_app(engine, ServerConfig(db_path=tmp_path / "queue.sqlite3")))
    try:
        page, errors, _ = open_app(browser, srv.url)
        page.evaluate("() => window.app.graph.clear()")
        built = page.evaluate(BUILD)
        assert errors == [], errors
        assert built["before"] == ["values.value0", "values.value1", "values.value2"]  # min 2, plus one free socket
        assert built["grown"] == ["values.value0", "values.value1", "values.value2", "values.value3"]
        assert built["widgets"][:3] == ["shape", "shape.width", "shape.height"]
        sent_sum = built["output"][built["ids"]["sum"]]["inputs"]
        sent_shape = built["output"][built["ids"]["shape"]]["inputs"]
        assert sorted(sent_sum) == ["values.value0", "values.value1", "values.value2"]
        assert sent_shape == {"shape": "rect", "shape.width": 3, "shape.height": 5, "scale": 1.0}
        item = queue_from_frontend(page, srv.url)
        shown = sorted(out["text"][0] for out in item["outputs"].values())
        assert shown == ["15.0", "5.0"]
        assert errors == [], errors
    finally:
        srv.close()
        engine.close()
