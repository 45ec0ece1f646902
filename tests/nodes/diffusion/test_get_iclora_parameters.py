"""GetICLoRAParameters: the reference downscale factor read from the last LoRA's safetensors metadata
(rounded, at least 1, 1 when absent), the metadata kept by the LoRA reader, and the declaration."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nodeloom.diffusion.lora import LoraFile, LoraPatch, file_metadata
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion import NODE_CLASS_MAPPINGS as NODES


def _model(*metadatas: dict) -> SimpleNamespace:
    return SimpleNamespace(loras=tuple(LoraPatch(LoraFile(f"l{i}", {}, metadata=m), 1.0)
                                       for i, m in enumerate(metadatas)))


@pytest.mark.parametrize(("metadata", "factor"), [
    ({"reference_downscale_factor": "2"}, 2),
    ({"ss_network_dim": "32", "iclora.reference_downscale_factor": "2.6"}, 3),
    ({"reference_downscale_factor": "0.2"}, 1),
    ({"reference_downscale_factor": "two"}, 1),
    ({"ss_network_dim": "32"}, 1),
    ({}, 1),
])
def test_factor_comes_from_the_metadata_rounded_and_at_least_one(metadata, factor):
    (params,) = NODES["GetICLoRAParameters"]().execute(_model(metadata))
    assert params == {"reference_downscale_factor": factor}


def test_the_last_lora_on_the_model_is_read_and_a_bare_model_gives_one():
    node = NODES["GetICLoRAParameters"]()
    assert node.execute(_model({"reference_downscale_factor": "4"}, {}))[0]["reference_downscale_factor"] == 1
    assert node.execute(_model({}, {"reference_downscale_factor": "4"}))[0]["reference_downscale_factor"] == 4
    assert node.execute(_model())[0]["reference_downscale_factor"] == 1
    with pytest.raises(ValidationError, match="`iclora_model` must be a MODEL"):
        node.execute("not a model")


def test_safetensors_metadata_is_read_from_the_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "ic.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"reference_downscale_factor": "2"})
    assert file_metadata(path) == {"reference_downscale_factor": "2"}
    save_file({"w": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    assert file_metadata(tmp_path / "plain.safetensors") == {}
    assert file_metadata(tmp_path / "old.ckpt") == {}


def test_declaration_is_comfyuis(image_engine):
    info = image_engine.object_info()["GetICLoRAParameters"]
    assert info["display_name"] == "Get IC-LoRA Parameters" and info["category"] == "model/conditioning/ltxv"
    assert info["input"]["required"]["iclora_model"][0] == "MODEL"
    assert info["output"] == ["IC_LORA_PARAMETERS"] and info["output_name"] == ["iclora_parameters"]
    guide = image_engine.object_info()["LTXVAddGuide"]
    assert guide["input"]["optional"]["iclora_parameters"][0] == "IC_LORA_PARAMETERS"


def test_a_lora_loaders_model_carries_the_files_metadata_through_a_graph(tmp_path):
    """UNETLoader → LoraLoaderModelOnly (a file with metadata) → GetICLoRAParameters on a tiny Flux."""
    import copy

    from safetensors.torch import save_file

    from nodeloom.testing.tiny_families import FLUX_DEV_WORKFLOW, build_tiny_flux
    from tests.nodes.diffusion.family_helpers import engine_for, lora_pair, run_ok

    torch.set_num_threads(1)
    models = tmp_path / "models"
    parts = build_tiny_flux(models)
    down, up = lora_pair(parts["transformer"].state_dict(), "transformer_blocks.0.attn.to_out.0.weight", seed=5)
    (models / "loras").mkdir()
    save_file({"lora_unet_double_blocks_0_img_attn_proj.lora_down.weight": down,
               "lora_unet_double_blocks_0_img_attn_proj.lora_up.weight": up},
              str(models / "loras" / "ic.safetensors"), metadata={"reference_downscale_factor": "2"})
    prompt = {"1": copy.deepcopy(FLUX_DEV_WORKFLOW["1"]),
              "2": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name": "ic.safetensors",
                                                                     "strength_model": 1.0}},
              "3": {"class_type": "GetICLoRAParameters", "inputs": {"iclora_model": ["2", 0]}},
              "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}}
    with engine_for(tmp_path / "engine", models) as engine:
        result = run_ok(engine, prompt)
    assert result.value("3") == {"reference_downscale_factor": 2}
