"""ComfyUI's own V3 ``comfy_extras`` modules load unchanged, run, and declare what ComfyUI declares.

The modules are read from the local git copy of ComfyUI named by ``$COMFY_MIRROR`` (skipped
when unset) and copied into a temporary ``custom_nodes/`` folder; they are GPL and never
stored here. The declaration check also needs ComfyUI itself to dump its ``object_info``:
``$COMFY_SRC`` (a ComfyUI tree) and ``$COMFY_VENV`` (its virtual environment), as made by
``comfy_ref_setup.sh``; without them that test is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from nodeloom.core.context import activate_services
from nodeloom.engine import Engine
from tests.compat.v3_packs import write_packs

ROOT = Path(__file__).resolve().parents[2]
COMFY_MIRROR = Path(os.environ["COMFY_MIRROR"]) if os.environ.get("COMFY_MIRROR") else None
#: V3 modules of comfy_extras (ComfyUI a125cd84) whose imports nodeloom's shims satisfy; the
#: first eight need no model at all, the others patch or condition models when run
V3_MODULES = (
    "nodes_string", "nodes_primitive", "nodes_rebatch", "nodes_compositing", "nodes_align_your_steps",
    "nodes_gits", "nodes_optimalsteps", "nodes_video",
    "nodes_apg", "nodes_attention_multiply", "nodes_camera_trajectory", "nodes_cfg", "nodes_chroma_radiance",
    "nodes_clip_sdxl", "nodes_cond", "nodes_differential_diffusion", "nodes_eps", "nodes_fresca", "nodes_hypertile",
    "nodes_ip2p", "nodes_lora_extract", "nodes_lotus", "nodes_lumina2", "nodes_mahiro", "nodes_mochi",
    "nodes_model_downscale", "nodes_pixart", "nodes_sdupscale", "nodes_stable3d", "nodes_stable_cascade",
    "nodes_tcfg", "nodes_tomesd", "nodes_torch_compile",
)

#: a frame source for the video modules (the built-in packs are not loaded beside them)
FRAMES_PACK = """
import torch
from comfy_api.latest import ComfyExtension, io


class Frames(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Frames", inputs=[io.Int.Input("frames", default=4, min=1)], outputs=[io.Image.Output()])

    @classmethod
    def execute(cls, frames):
        return io.NodeOutput(torch.linspace(0, 1, frames).view(frames, 1, 1, 1).expand(frames, 16, 16, 3).contiguous())


class Ext(ComfyExtension):
    async def get_node_list(self):
        return [Frames]


def comfy_entrypoint():
    return Ext()
"""


def _copy_modules(target: Path) -> Path:
    target.mkdir(parents=True)
    for name in V3_MODULES:
        text = subprocess.run(["git", "-C", str(COMFY_MIRROR), "show", f"HEAD:comfy_extras/{name}.py"],
                              check=True, capture_output=True, text=True).stdout
        assert "comfy_entrypoint" in text, f"{name} is not a V3 module at this ComfyUI commit"
        (target / f"{name}.py").write_text(text)
    return target


@pytest.fixture(scope="module")
def extras(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, Path]:
    if shutil.which("git") is None or COMFY_MIRROR is None or not COMFY_MIRROR.exists():
        pytest.skip("no local git copy of the ComfyUI repository (set COMFY_MIRROR)")
    root = tmp_path_factory.mktemp("comfy_extras")
    modules = _copy_modules(root / "custom_nodes")
    write_packs(root / "fixtures")
    (root / "fixtures" / "v3_frames.py").write_text(FRAMES_PACK)
    # no built-in packs: ComfyUI's ids must not be shadowed by ours, so each module registers all of its nodes
    engine = Engine(base_dir=root / "base", builtin_packs=False, custom_nodes_dirs=[modules, root / "fixtures"])
    yield engine, modules
    engine.close()


def test_v3_comfy_extras_modules_load_unchanged(extras: tuple[Engine, Path]) -> None:
    engine, _ = extras
    packs = {p.name: p for p in engine.registry.packs}
    assert {name: packs[name].error for name in V3_MODULES if packs[name].error} == {}
    for module, nodes in (("nodes_string", ("StringConcatenate", "RegexExtract", "CaseConverter")),
                          ("nodes_primitive", ("PrimitiveInt", "PrimitiveString", "PrimitiveBoolean")),
                          ("nodes_align_your_steps", ("AlignYourStepsScheduler",))):
        assert set(nodes) <= set(packs[module].node_ids)
    assert engine.object_info("StringLength")["StringLength"]["python_module"] == "custom_nodes.nodes_string"


def _show(value: list[Any]) -> dict[str, Any]:
    return {"class_type": "V3Show", "inputs": {"value": value}}


def test_v3_comfy_extras_nodes_run(extras: tuple[Engine, Path]) -> None:
    engine, _ = extras
    prompt = {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": "hello V3"}},
        "2": {"class_type": "StringConcatenate", "inputs": {"string_a": ["1", 0], "string_b": "world", "delimiter": ", "}},
        "3": {"class_type": "CaseConverter", "inputs": {"string": ["2", 0], "mode": "UPPERCASE"}},
        "4": {"class_type": "RegexExtract", "inputs": {"string": ["3", 0], "regex_pattern": "(V\\d)", "mode": "First Group",
                                                       "case_insensitive": True, "multiline": False, "dotall": False,
                                                       "group_index": 1}},
        "5": {"class_type": "StringLength", "inputs": {"string": ["2", 0]}},
        "6": {"class_type": "AlignYourStepsScheduler", "inputs": {"model_type": "SD1", "steps": 10, "denoise": 1.0}},
        "7": {"class_type": "GITSScheduler", "inputs": {"coeff": 1.2, "steps": 10, "denoise": 1.0}},
        "10": _show(["3", 0]), "11": _show(["4", 0]), "12": _show(["5", 0]), "13": _show(["6", 0]), "14": _show(["7", 0]),
    }
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    assert result.value("3") == "HELLO V3, WORLD"
    assert result.value("4") == "V3"
    assert result.value("5") == len("hello V3, world")
    ays, gits = result.value("6"), result.value("7")
    assert ays.shape == gits.shape == (11,)
    assert float(ays[0]) == pytest.approx(14.615, abs=1e-3) and float(ays[-1]) == 0.0
    assert torch.all(gits[:-1] > gits[1:])  # strictly decreasing to 0


def test_v3_comfy_extras_video_nodes_run_on_nodeloom_video_values(extras: tuple[Engine, Path]) -> None:
    pytest.importorskip("av")
    engine, _ = extras
    prompt = {
        "1": {"class_type": "V3Frames", "inputs": {"frames": 4}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 12.0}},
        "3": {"class_type": "GetVideoComponents", "inputs": {"video": ["2", 0]}},
        "5": _show(["3", 0]), "6": _show(["3", 2]),
        "4": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "video/v3", "format": "mp4",
                                                    "codec": "h264"}},
    }
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    assert tuple(result.value("3", 0).shape) == (4, 16, 16, 3) and result.value("3", 2) == 12.0
    (saved,) = result.outputs["4"]["images"]
    path = engine.paths.output_dir / saved["subfolder"] / saved["filename"]
    from nodeloom.ops.video_value import VideoFromFile

    assert path.suffix == ".mp4" and VideoFromFile(path).get_frame_count() == 4


def _load_compare() -> Any:
    spec = importlib.util.spec_from_file_location("comfy_nodes_compare", ROOT / "tools" / "comfy_nodes" / "compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_v3_comfy_extras_object_info_equals_comfyui(extras: tuple[Engine, Path], tmp_path: Path) -> None:
    if not os.environ.get("COMFY_SRC") or not os.environ.get("COMFY_VENV"):
        pytest.skip("set COMFY_SRC to a ComfyUI tree and COMFY_VENV to its virtual environment to compare declarations")
    engine, _ = extras
    dump = subprocess.run([str(Path(os.environ["COMFY_VENV"]) / "bin" / "python"),
                           str(ROOT / "tools" / "comfy_nodes" / "compare.py"), "dump", os.environ["COMFY_SRC"]],
                          capture_output=True, text=True, timeout=600, check=True).stdout
    theirs = json.loads(dump)
    compare = _load_compare()
    ids = [n for p in engine.registry.packs if p.name in V3_MODULES for n in p.node_ids]
    assert len(ids) >= 60
    with activate_services(engine.services):  # LoadVideo lists the input folder in its schema
        problems = {n: compare.node_problems(theirs[n], engine.registry, n) for n in ids}
    assert {n: p for n, p in problems.items() if p} == {}
    assert all("object_info" in theirs[n] for n in ids)  # every entry was compared whole
