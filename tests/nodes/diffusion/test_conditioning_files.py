"""SaveConditioning → file → ConditioningLoader: the safetensors layout (tensors, numbered lists,
JSON options), the round trip through the engine, and the files and values refused."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nodeloom.core.context import activate_services
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion import NODE_CLASS_MAPPINGS as NODES
from nodeloom.nodes.diffusion.conditioning_files import read_conditioning, write_conditioning
from tests.nodes.conftest import run_prompt


def _cond():
    torch.manual_seed(0)
    return [[torch.randn(1, 7, 16), {"pooled_output": torch.randn(1, 8), "guidance": 3.5, "use_thing": True,
                                     "name": "x", "reference_latents": [torch.randn(1, 4, 2, 2), torch.randn(1, 4, 3, 3)],
                                     "skipped": None}]]


def test_file_layout_and_round_trip(tmp_path):
    cond = _cond()
    path = tmp_path / "c.safetensors"
    write_conditioning(cond, path)
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == {"conditioning", "pooled_output", "reference_latents.0", "reference_latents.1"}
        assert json.loads(f.metadata()["conditioning_options"]) == {"guidance": 3.5, "use_thing": True, "name": "x"}
    ((tensor, options),) = read_conditioning(path)
    assert torch.equal(tensor, cond[0][0]) and torch.equal(options["pooled_output"], cond[0][1]["pooled_output"])
    assert [t.shape for t in options["reference_latents"]] == [(1, 4, 2, 2), (1, 4, 3, 3)]
    assert options["guidance"] == 3.5 and options["use_thing"] is True and "skipped" not in options


def test_numbered_lists_keep_their_order_past_nine(tmp_path):
    tensors = {"conditioning": torch.zeros(1, 2, 4), **{f"refs.{i}": torch.full((1,), float(i)) for i in range(12)}}
    save_file(tensors, str(tmp_path / "plain.safetensors"))  # no metadata at all
    ((_, options),) = read_conditioning(tmp_path / "plain.safetensors")
    assert [float(t) for t in options["refs"]] == [float(i) for i in range(12)]


def test_bad_conditioning_and_files_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="single conditioning entry"):
        write_conditioning(_cond() + _cond(), tmp_path / "two.safetensors")
    with pytest.raises(ValidationError, match="can't be saved"):
        write_conditioning([[torch.zeros(1, 2, 3), {"hook": object()}]], tmp_path / "obj.safetensors")
    save_file({"other": torch.zeros(2)}, str(tmp_path / "nocond.safetensors"))
    with pytest.raises(ValidationError, match="no `conditioning` tensor"):
        read_conditioning(tmp_path / "nocond.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValidationError, match="cannot read"):
        read_conditioning(tmp_path / "junk.safetensors")
    torch.save({"conditioning": torch.zeros(1)}, tmp_path / "pickle.pt")
    with pytest.raises(ValidationError, match=".safetensors"):
        read_conditioning(tmp_path / "pickle.pt")


def test_save_then_load_through_the_engine(image_engine):
    cond = _cond()
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "cond"}},
              "2": {"class_type": "SaveConditioning", "inputs": {"conditioning": ["1", 0], "filename_prefix": "conditioning/test"}}}
    result = run_prompt(image_engine, prompt, {"cond": cond})
    assert result.status == "success", result.errors
    assert result.value("2") is cond  # passed through unchanged
    paths = image_engine.services.paths
    saved = sorted((paths.directory("output") / "conditioning").glob("test_*_.safetensors"))
    assert saved and saved[-1].name.startswith("test_0000")
    folder = paths.model_folders("embeddings")[0]
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(saved[-1], folder / "cached_prompt.safetensors")
    with activate_services(image_engine.services):
        choices = NODES["ConditioningLoader"].INPUT_TYPES()["required"]["conditioning_name"][0]
    assert "cached_prompt.safetensors" in choices
    loaded = run_prompt(image_engine, {"3": {"class_type": "ConditioningLoader",
                                             "inputs": {"conditioning_name": "cached_prompt.safetensors"}}},
                        sinks=[["3", 0]])
    assert loaded.status == "success", loaded.errors
    ((tensor, options),) = loaded.value("3")
    assert torch.equal(tensor, cond[0][0]) and options["guidance"] == 3.5
    # names outside the folder never resolve
    with activate_services(image_engine.services), pytest.raises(ValidationError, match="inside"):
        NODES["ConditioningLoader"].execute("../output/conditioning/" + saved[-1].name)
