"""Engine robustness for real-world packs: "any type" str subclasses, import-time prints,
INPUT_IS_LIST hidden inputs, and monkeypatches of the ``comfy.*`` shims.

The fixture pack is written here; it uses the same tricks as popular packs (ComfyUI-Logic's
``AlwaysEqualProxy``: a str subclass equal to everything and therefore unhashable).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest


from nodeloom.core.graph_builder import GraphBuilder
from nodeloom.engine import Engine

ANY_PACK = '''
print("any pack says hello at import")
import comfy.utils

class AlwaysEqualProxy(str):
    def __eq__(self, _):
        return True
    def __ne__(self, _):
        return False

ANY = AlwaysEqualProxy("*")

def _shrink(samples, width, height, upscale_method, crop):
    raise RuntimeError("a pack's patch of comfy.utils reached a built-in node")

comfy.utils.common_upscale = _shrink  # a pack patching the shim must not change built-ins

class AnyPass:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY, {})}}
    RETURN_TYPES = (ANY,)
    FUNCTION = "run"
    CATEGORY = "test"
    def run(self, value):
        print("AnyPass ran")
        return (value,)

class AnyListInfo:
    INPUT_IS_LIST = True
    OUTPUT_NODE = True
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY, {})},
                "hidden": {"extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"}}
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "test"
    def run(self, value, extra_pnginfo=None, unique_id=None):
        return {"ui": {"text": [repr(extra_pnginfo), repr(unique_id), str(len(value))]}, "result": ("ok",)}

NODE_CLASS_MAPPINGS = {"AnyPass": AnyPass, "AnyListInfo": AnyListInfo}
'''


def _write_pack(root: Path) -> Path:
    pack = root / "custom_nodes" / "any_pack"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(textwrap.dedent(ANY_PACK))
    return root / "custom_nodes"


def _graph() -> tuple[dict, str, str]:
    g = GraphBuilder(prefix="")
    img = g.node("EmptyImage", width=8, height=8, batch_size=1, color=0)
    anyp = g.node("AnyPass", value=img.out(0))
    scaled = g.node("ImageScale", image=anyp.out(0), upscale_method="bilinear", width=4, height=4, crop="disabled")
    g.node("PreviewImage", images=scaled.out(0))
    info = g.node("AnyListInfo", value=anyp.out(0))
    return g.finalize(), scaled.id, info.id


@pytest.fixture
def restore_comfy_utils() -> Iterator[None]:
    """The fixture pack patches the shared ``comfy.utils`` shim; undo it for the other tests."""
    from nodeloom.compat.comfy import utils

    original = utils.common_upscale
    yield
    utils.common_upscale = original


def test_any_type_str_subclass_runs_in_every_engine_path(tmp_path: Path, restore_comfy_utils: None) -> None:
    engine = Engine(base_dir=tmp_path / "base", custom_nodes_dirs=[_write_pack(tmp_path)])
    prompt, scaled, info = _graph()
    assert engine.validate(prompt).ok
    result = engine.run(prompt)
    assert result.status == "success", result.errors[0]["exception_message"]
    assert result.value(scaled).shape == (1, 4, 4, 3)  # the built-in node ignored the pack's patch
    # no extra_pnginfo given: the INPUT_IS_LIST node sees its own default, not [None]
    assert result.outputs[info]["text"] == ["None", f"[{info!r}]", "1"]
    json.dumps(engine.object_info())  # the proxy type serialises like a plain "*"
    engine.close()
    fresh = Engine(base_dir=tmp_path / "base", custom_nodes_dirs=[tmp_path / "custom_nodes"])
    again = fresh.run(prompt, extra_data={"extra_pnginfo": {"workflow": {"nodes": []}}})
    assert again.outputs[info]["text"][0] == "[{'workflow': {'nodes': []}}]"
    fresh.close()


def test_pack_prints_never_reach_json_output(tmp_path: Path) -> None:
    custom = _write_pack(tmp_path)
    prompt, _, _ = _graph()
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(prompt))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, "-m", "nodeloom", "run", str(workflow), "--json",
         "--base-dir", str(tmp_path / "base"), "--custom-nodes", str(custom)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    payload = json.loads(done.stdout)  # stdout is exactly one JSON document
    assert payload["status"] == "success", done.stderr
    assert "any pack says hello at import" not in done.stdout  # it went to the log
    assert "AnyPass ran" in done.stderr


LOGGING_PACK = '''
import logging
import sys

logger = logging.getLogger("chatty_pack")
HANDLER = logging.StreamHandler(sys.stdout)  # captured while stdout goes to the log
logging.getLogger().addHandler(HANDLER)  # on the root logger: our own log records reach it too
logging.getLogger().setLevel(logging.INFO)
logger.setLevel(logging.INFO)
logger.info("chatty pack loaded")

class Noop:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "test"
    def run(self):
        logger.info("chatty pack ran")
        return {"ui": {}}

NODE_CLASS_MAPPINGS = {"ChattyNoop": Noop}
'''


def test_a_pack_logging_to_stdout_at_import_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = tmp_path / "custom_nodes" / "chatty_pack"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(textwrap.dedent(LOGGING_PACK))
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    try:
        engine = Engine(base_dir=tmp_path / "base", custom_nodes_dirs=[tmp_path / "custom_nodes"])
    finally:
        added = [h for h in root.handlers if h not in before]
        for handler in added:
            root.removeHandler(handler)
        root.setLevel(level)
    assert added, "the fixture pack should have added a root handler"
    failed = [p for p in engine.registry.packs if p.error]
    assert not failed, failed[0].error
    g = GraphBuilder(prefix="")
    g.node("ChattyNoop")
    result = engine.run(g.finalize())
    assert result.status == "success", result.errors[0]["exception_message"]
    engine.close()
    assert "chatty pack" not in capsys.readouterr().out
