"""Clear errors: missing files and configs, unsafe pickles, non-SD files, unsupported names."""

import copy
import json

import pytest
import torch
from safetensors.torch import save_file

from nodeloom.errors import ModelNotFoundError, PolicyDeniedError, ValidationError
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple, VAELoader
from nodeloom.nodes.diffusion.sampling import KSampler

from .test_workflow import DEFAULT_WORKFLOW, make_engine


def test_missing_checkpoint_names_the_file_and_the_folders_searched(diffusion_services):
    with pytest.raises(ModelNotFoundError) as info:
        CheckpointLoaderSimple.execute("nope.safetensors")
    message = str(info.value)
    assert "nope.safetensors" in message
    assert str(diffusion_services.paths.models_dir / "checkpoints") in message


def test_diffusers_folder_without_a_part_config_names_it(diffusion_services):
    folder = diffusion_services.paths.models_dir / "checkpoints" / "broken_folder"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ModelNotFoundError) as info:
        CheckpointLoaderSimple.execute("broken_folder")
    assert "unet/config.json" in str(info.value) and "broken_folder" in str(info.value)


def test_pickle_checkpoints_are_refused_unless_allowed(diffusion_services):
    path = diffusion_services.paths.models_dir / "checkpoints" / "old.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(PolicyDeniedError) as info:
        CheckpointLoaderSimple.execute("old.ckpt")
    assert "old.ckpt" in str(info.value) and "safetensors" in str(info.value)


def test_a_file_that_is_not_stable_diffusion_is_named(diffusion_services):
    path = diffusion_services.paths.models_dir / "checkpoints" / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ValidationError) as info:
        CheckpointLoaderSimple.execute("other.safetensors")
    assert "other.safetensors" in str(info.value) and "Stable Diffusion" in str(info.value)


def test_missing_vae_names_the_vae_folder(diffusion_services):
    with pytest.raises(ModelNotFoundError) as info:
        VAELoader.execute("absent.safetensors")
    assert "absent.safetensors" in str(info.value) and "vae" in str(info.value)


def test_unsupported_sampler_is_a_validation_error_listing_the_supported_ones(tmp_path, tiny_models_dir):
    assert "euler_ancestral" in KSampler.validate_inputs(sampler_name="res_2s")
    prompt = copy.deepcopy(DEFAULT_WORKFLOW)
    prompt["4"]["inputs"]["ckpt_name"] = "tiny_sd1.safetensors"
    prompt["3"]["inputs"]["sampler_name"] = "res_2s"
    with make_engine(tmp_path, tiny_models_dir) as engine:
        with pytest.raises(ValidationError) as info:
            engine.run(prompt)
    errors = json.dumps(info.value.node_errors)
    assert "res_2s" in errors and "dpmpp_2m" in errors
