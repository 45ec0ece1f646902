"""The rest of the V3 surface packs use: ``io.DynamicSlot`` (a socket that adds inputs once
connected), ``cls.resources`` on a V3 node (state dicts from the model folders), and
``comfy_api.torch_helpers.set_torch_compile_wrapper`` on a MODEL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from nodeloom.compat.comfy.api.torch_helpers import set_torch_compile_wrapper
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.engine import Engine

SURFACE_PACK = r'''
from comfy_api.latest import ComfyExtension, io
from comfy_api.latest._resources import TorchDictFolderFilename
from comfy_api.torch_helpers import set_torch_compile_wrapper  # importable as in ComfyUI

SEEN = []


class SlotScale(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        extra = [io.Float.Input("factor", default=2.0, min=0.0, max=10.0), io.Boolean.Input("negate", default=False)]
        return io.Schema(node_id="SlotScale", category="surface", is_output_node=True,
                         inputs=[io.Float.Input("base", default=1.0),
                                 io.DynamicSlot.Input(io.Float.Input("scale_by", tooltip="Connect to scale."), extra)],
                         outputs=[io.Float.Output()])

    @classmethod
    def execute(cls, base, scale_by=None):
        SEEN.append(("SlotScale", scale_by))
        if scale_by is None:
            return io.NodeOutput(base)
        value = base * scale_by["scale_by"] * scale_by["factor"]
        return io.NodeOutput(-value if scale_by["negate"] else value)


class WeightSum(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="WeightSum", category="surface", is_output_node=True,
                         inputs=[io.String.Input("file_name", default="w.safetensors")], outputs=[io.Float.Output()])

    @classmethod
    def execute(cls, file_name):
        weights = cls.resources.get(TorchDictFolderFilename("loras", file_name), default=None)
        if weights is None:
            return io.NodeOutput(-1.0)
        again = cls.resources.get(TorchDictFolderFilename("loras", file_name))
        SEEN.append(("same", again is weights))
        return io.NodeOutput(float(sum(t.sum() for t in weights.values())))


class Ext(ComfyExtension):
    async def get_node_list(self):
        return [SlotScale, WeightSum]


async def comfy_entrypoint():
    return Ext()
'''


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = tmp_path_factory.mktemp("v3surface")
    (root / "custom_nodes" / "surface_pack").mkdir(parents=True)
    (root / "custom_nodes" / "surface_pack" / "__init__.py").write_text(SURFACE_PACK)
    (root / "models" / "loras").mkdir(parents=True)
    save_file({"a": torch.ones(2, 3), "b": torch.full((4,), 0.5)}, str(root / "models" / "loras" / "w.safetensors"))
    eng = Engine(base_dir=root / "base", models_dir=root / "models", custom_nodes_dirs=[root / "custom_nodes"])
    yield eng
    eng.close()


def _seen() -> list[Any]:
    module = next(m for name, m in sys.modules.items() if name.startswith("nodeloom_custom_nodes.surface_pack"))
    return module.SEEN  # type: ignore[no-any-return]


def _float(value: float) -> dict[str, Any]:
    return {"class_type": "PrimitiveFloat", "inputs": {"value": value}}


def test_dynamic_slot_object_info(engine: Engine) -> None:
    entry = engine.object_info("SlotScale")["SlotScale"]["input"]
    assert "scale_by" in entry["optional"] and "scale_by" not in entry["required"]
    kind, opts = entry["optional"]["scale_by"]
    assert kind == "COMFY_DYNAMICSLOT_V3" and opts["slotType"] == "FLOAT" and opts["forceInput"] is True
    assert opts["tooltip"] == "Connect to scale."
    assert opts["inputs"]["required"]["factor"] == ["FLOAT", {"default": 2.0, "min": 0.0, "max": 10.0}]


def test_dynamic_slot_adds_its_inputs_once_connected(engine: Engine) -> None:
    prompt = {"1": _float(3.0),
              "2": {"class_type": "SlotScale", "inputs": {"base": 2.0, "scale_by": ["1", 0], "scale_by.factor": 0.5,
                                                         "scale_by.negate": True}}}
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    assert result.value("2") == -3.0
    assert ("SlotScale", {"scale_by": 3.0, "factor": 0.5, "negate": True}) in _seen()
    alone = engine.run({"2": {"class_type": "SlotScale", "inputs": {"base": 2.0}}})
    assert alone.status == "success", alone.errors
    assert alone.value("2") == 2.0 and ("SlotScale", None) in _seen()


def test_dynamic_slot_inputs_are_validated(engine: Engine) -> None:
    prompt = {"1": _float(3.0),
              "2": {"class_type": "SlotScale", "inputs": {"base": 2.0, "scale_by": ["1", 0], "scale_by.factor": 50.0,
                                                         "scale_by.negate": False}}}
    checked = engine.validate(prompt)
    errors = [(e["type"], e["extra_info"].get("input_name")) for e in checked.node_errors["2"]["errors"]]
    assert ("value_bigger_than_max", "scale_by.factor") in errors
    missing = engine.validate({"1": _float(3.0), "2": {"class_type": "SlotScale",
                                                      "inputs": {"base": 2.0, "scale_by": ["1", 0]}}})
    assert any(e["extra_info"].get("input_name") == "scale_by.factor" for e in missing.node_errors["2"]["errors"])


def test_resources_load_a_state_dict_from_a_model_folder(engine: Engine) -> None:
    found = engine.run({"1": {"class_type": "WeightSum", "inputs": {"file_name": "w.safetensors"}}})
    assert found.status == "success", found.errors
    assert found.value("1") == 8.0 and ("same", True) in _seen()
    absent = engine.run({"1": {"class_type": "WeightSum", "inputs": {"file_name": "none.safetensors"}}})
    assert absent.status == "success" and absent.value("1") == -1.0


def _model() -> DiffusionModel:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 4))
    return DiffusionModel(unet=net, family="test", sampling=None, latent_scale=1.0)


def test_torch_compile_wrapper_compiles_the_clone_only() -> None:
    model = _model()
    x = torch.randn(3, 4)
    expected = model.unet(x)
    patched = model.clone()
    set_torch_compile_wrapper(patched, backend="eager")
    assert patched.unet is not model.unet and model.unet.__class__ is torch.nn.Sequential
    assert torch.allclose(patched.unet(x), expected, atol=1e-6)
    assert patched.model_options["torch_compile_kwargs"]["backend"] == "eager"
    again = patched.clone()
    set_torch_compile_wrapper(again, backend="eager", keys=["diffusion_model.2"])  # a submodule, replacing the first
    assert torch.allclose(again.unet(x), expected, atol=1e-6)
    assert isinstance(model.unet[2], torch.nn.Linear)  # the shared module is left as it was
    assert next(again.unet.parameters()) is next(model.unet.parameters())


def test_torch_compile_wrapper_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"not a submodule.*\['0', '1', '2'\]"):
        set_torch_compile_wrapper(_model().clone(), backend="eager", keys=["diffusion_model.double_blocks.0"])
    with pytest.raises(TypeError, match="MODEL"):
        set_torch_compile_wrapper(object(), backend="eager")  # type: ignore[arg-type]
