"""Flux.1 all-in-one checkpoints through CheckpointLoaderSimple on tiny random weights: a file in
ComfyUI's layout (``model.diffusion_model.``, ``text_encoders.clip_l/t5xxl.transformer.``, ``vae.``)
and an fp8 one, the ``flux_schnell`` template's graph through the Engine and a live server, equal to
the same weights through UNETLoader + DualCLIPLoader + VAELoader; files it cannot read are named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from nodeloom.diffusion.families import FAMILIES
from nodeloom.diffusion.flux_checkpoint import is_flux_checkpoint, load_flux_checkpoint
from nodeloom.diffusion.split_models import load_diffusion_model
from nodeloom.models.offload import fp8_bytes
from nodeloom.testing.tiny_families import FLUX_DEV_WORKFLOW, build_tiny_flux, scaled_fp8
from tests.nodes.diffusion.family_helpers import engine_for, official_template, run_ok, run_served

#: the official flux_schnell template's graph (flux_schnell.json), tiny sizes and a fixed seed
SCHNELL_CHECKPOINT_WORKFLOW = {
    "30": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_flux1-schnell.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["30", 1], "text": "a bottle with a rainbow galaxy inside"}},
    "33": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["30", 1], "text": ""}},
    "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "31": {"class_type": "KSampler", "inputs": {"model": ["30", 0], "seed": 5, "steps": 4, "cfg": 1.0,
                                                "sampler_name": "euler", "scheduler": "simple", "positive": ["6", 0],
                                                "negative": ["33", 0], "latent_image": ["27", 0], "denoise": 1.0}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["31", 0], "vae": ["30", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "ComfyUI"}},
}


def _fp8(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """2-D weights stored as plain ``float8_e4m3fn``, as in ``flux1-schnell-fp8.safetensors``."""
    return {k: v.to(torch.float8_e4m3fn) if k.endswith(".weight") and v.ndim == 2 else v for k, v in sd.items()}


def _write_checkpoint(root: Path, parts: dict, name: str, fp8: str = "") -> None:
    """The split files under ``root`` joined into ``checkpoints/<name>`` in ComfyUI's all-in-one layout
    (with the CLIP-L ``logit_scale`` and ``text_projection`` ComfyUI saves beside the text model, which
    Flux leaves unused: its pooled vector is unprojected). ``fp8``: "plain" or "scaled" transformer
    and T5 weights."""
    unet = load_file(str(root / "diffusion_models" / parts["unet"]))
    clip_l = load_file(str(root / "text_encoders" / parts["clip_l_file"]))
    t5 = load_file(str(root / "text_encoders" / parts["t5_file"]))
    vae = load_file(str(root / "vae" / parts["vae_file"]))
    width = clip_l["text_model.final_layer_norm.weight"].shape[0]
    model = {"model.diffusion_model." + k: v for k, v in unet.items()}
    t5 = {"text_encoders.t5xxl.transformer." + k: v for k, v in t5.items()}
    if fp8 == "plain":
        model, t5 = _fp8(model), _fp8(t5)
    elif fp8 == "scaled":
        model, t5 = scaled_fp8(unet), scaled_fp8(load_file(str(root / "text_encoders" / parts["t5_file"])),
                                                 "text_encoders.t5xxl.transformer.")
    everything = {**model,
                  **{"text_encoders.clip_l.transformer." + k: v for k, v in clip_l.items()},
                  "text_encoders.clip_l.transformer.text_projection.weight": torch.randn(width, width),
                  "text_encoders.clip_l.logit_scale": torch.tensor(4.6052),
                  **t5,
                  **{"vae." + k: v for k, v in vae.items()}}
    (root / "checkpoints").mkdir(exist_ok=True)
    save_file(everything, str(root / "checkpoints" / name))


@pytest.fixture(scope="module")
def flux(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Tiny schnell split files plus the all-in-one checkpoints built from them (and fp8 split twins)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    parts = build_tiny_flux(root, guidance=False)
    _write_checkpoint(root, parts, "tiny_flux1-schnell.safetensors")
    _write_checkpoint(root, parts, "tiny_flux1-schnell-fp8.safetensors", fp8="plain")
    _write_checkpoint(root, parts, "tiny_flux1-schnell-fp8-scaled.safetensors", fp8="scaled")
    save_file(scaled_fp8(load_file(str(root / "text_encoders" / parts["t5_file"])), ""),
              str(root / "text_encoders" / "tiny_t5xxl_fp8_scaled.safetensors"))
    save_file(_fp8(load_file(str(root / "diffusion_models" / parts["unet"]))),
              str(root / "diffusion_models" / "tiny_flux_schnell_fp8.safetensors"))
    save_file(_fp8(load_file(str(root / "text_encoders" / parts["t5_file"]))),
              str(root / "text_encoders" / "tiny_t5xxl_fp8.safetensors"))
    return root, parts


def _split(ckpt_workflow: dict, unet: str, t5: str, parts: dict) -> dict:
    """The same graph with the checkpoint's three parts loaded from split files."""
    prompt = copy.deepcopy(ckpt_workflow)
    del prompt["30"]
    prompt["40"] = {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}}
    prompt["41"] = {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": parts["clip_l_file"], "clip_name2": t5,
                                                               "type": "flux"}}
    prompt["42"] = {"class_type": "VAELoader", "inputs": {"vae_name": parts["vae_file"]}}
    prompt["31"]["inputs"]["model"] = ["40", 0]
    prompt["6"]["inputs"]["clip"] = prompt["33"]["inputs"]["clip"] = ["41", 0]
    prompt["8"]["inputs"]["vae"] = ["42", 0]
    return prompt


@pytest.mark.parametrize(("ckpt", "unet", "t5"), [
    ("tiny_flux1-schnell.safetensors", "tiny_flux_schnell.safetensors", "tiny_t5xxl.safetensors"),
    ("tiny_flux1-schnell-fp8.safetensors", "tiny_flux_schnell_fp8.safetensors", "tiny_t5xxl_fp8.safetensors"),
    ("tiny_flux1-schnell-fp8-scaled.safetensors", "tiny_flux_schnell_fp8_scaled.safetensors",
     "tiny_t5xxl_fp8_scaled.safetensors"),
])
def test_template_graph_equals_the_split_loaders(tmp_path, flux, ckpt, unet, t5):
    models, parts = flux
    assert parts["unet"] == "tiny_flux_schnell.safetensors"
    prompt = copy.deepcopy(SCHNELL_CHECKPOINT_WORKFLOW)
    prompt["30"]["inputs"]["ckpt_name"] = ckpt
    with engine_for(tmp_path, models) as engine:
        ours = run_ok(engine, prompt)
        split = run_ok(engine, _split(prompt, unet, t5, parts))
    model = ours.value("30")
    assert model.family == "flux" and model.extra["file"] == ckpt
    latent, reference = ours.value("31")["samples"], split.value("31")["samples"]
    assert latent.shape == (1, 16, 8, 8) and latent.std() > 0.01
    assert (latent - reference).abs().max() <= 1e-5
    image = ours.value("8")
    assert image.shape == (1, 64, 64, 3) and (image - split.value("8")).abs().max() <= 1e-5


@pytest.mark.parametrize(("ckpt", "unet"), [("tiny_flux1-schnell-fp8.safetensors", "tiny_flux_schnell_fp8.safetensors"),
                                            ("tiny_flux1-schnell-fp8-scaled.safetensors",
                                             "tiny_flux_schnell_fp8_scaled.safetensors")])
def test_fp8_checkpoint_keeps_its_transformer_fp8(flux, ckpt, unet):
    models, _ = flux
    path = models / "checkpoints" / ckpt
    assert is_flux_checkpoint(path)
    module, family, clip, vae = load_flux_checkpoint(path, [models / "tokenizers"])
    split, _ = load_diffusion_model(models / "diffusion_models" / unet)
    stored, total = fp8_bytes(module)
    assert family.name == "flux" and 0 < stored < total and (stored, total) == fp8_bytes(split)
    assert not module.config.guidance_embeds and family.sampling(module).shift == 1.0
    assert vae.config.latent_channels == 16


def test_dev_checkpoint_with_flux_guidance_equals_the_split_loaders(tmp_path):
    """flux1-dev-fp8 as the USO template loads it: guidance embedding, Flux's shifted schedule."""
    models = tmp_path / "models"
    parts = build_tiny_flux(models)
    _write_checkpoint(models, parts, "tiny_flux1-dev-fp8.safetensors", fp8="plain")
    save_file(_fp8(load_file(str(models / "diffusion_models" / parts["unet"]))),
              str(models / "diffusion_models" / "tiny_flux_dev_fp8.safetensors"))
    save_file(_fp8(load_file(str(models / "text_encoders" / parts["t5_file"]))),
              str(models / "text_encoders" / "tiny_t5xxl_fp8.safetensors"))
    split = copy.deepcopy(FLUX_DEV_WORKFLOW)
    split["1"]["inputs"]["unet_name"] = "tiny_flux_dev_fp8.safetensors"
    split["2"]["inputs"]["clip_name2"] = "tiny_t5xxl_fp8.safetensors"
    ours = copy.deepcopy(FLUX_DEV_WORKFLOW)
    for node in ("1", "2", "3"):
        del ours[node]
    ours["0"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_flux1-dev-fp8.safetensors"}}
    ours["4"]["inputs"]["model"] = ["0", 0]
    ours["5"]["inputs"]["clip"] = ["0", 1]
    ours["10"]["inputs"]["vae"] = ["0", 2]
    with engine_for(tmp_path / "base", models) as engine:
        got, want = run_ok(engine, ours), run_ok(engine, split)
    assert got.value("0").sampling.shift == pytest.approx(1.15)
    assert (got.value("9")["samples"] - want.value("9")["samples"]).abs().max() <= 1e-5
    assert (got.value("10") - want.value("10")).abs().max() <= 1e-5


def test_official_template_file_converts_and_runs_on_the_fp8_checkpoint(tmp_path, flux):
    """The official UI-format ``flux_schnell.json`` itself (its notes, ids and widget values), its file
    name mapped to the tiny fp8 checkpoint, 64² and 2 steps: converted by the engine, run, and equal
    to the same graph on the split loaders."""
    import json

    from nodeloom.workflows.files import load_prompt

    models, parts = flux
    workflow = official_template("flux_schnell")
    for node in workflow["nodes"]:
        values = node.get("widgets_values")
        if node["type"] == "CheckpointLoaderSimple":
            assert values == ["flux1-schnell-fp8.safetensors"]
            values[0] = "tiny_flux1-schnell-fp8.safetensors"
        elif node["type"] == "EmptySD3LatentImage":
            values[:2] = [64, 64]
        elif node["type"] == "KSampler":
            values[2] = 2
    (tmp_path / "wf.json").write_text(json.dumps(workflow), encoding="utf-8")
    with engine_for(tmp_path / "base", models) as engine:
        prompt = load_prompt(engine, str(tmp_path / "wf.json"))
        assert {k: v["class_type"] for k, v in prompt.items()} == {
            k: v["class_type"] for k, v in SCHNELL_CHECKPOINT_WORKFLOW.items()}
        ours = run_ok(engine, prompt)
        split = run_ok(engine, _split(prompt, "tiny_flux_schnell_fp8.safetensors", "tiny_t5xxl_fp8.safetensors", parts))
    assert ours.outputs["9"]["images"][0]["filename"].startswith("ComfyUI")
    assert (ours.value("31")["samples"] - split.value("31")["samples"]).abs().max() <= 1e-5
    assert ours.value("8").shape == (1, 64, 64, 3)


def test_template_graph_through_a_live_server(tmp_path, flux):
    entry = run_served(tmp_path, flux[0], copy.deepcopy(SCHNELL_CHECKPOINT_WORKFLOW))
    assert entry["outputs"]["9"]["images"][0]["filename"].startswith("ComfyUI")


def test_files_it_cannot_read_are_named_with_the_loaders_to_use(tmp_path, flux):
    models, parts = flux
    unet = load_file(str(models / "diffusion_models" / parts["unet"]))
    odd = models / "checkpoints" / "mystery_model.safetensors"
    save_file({"model.diffusion_model.blocks.0.proj.weight": torch.zeros(4, 4)}, str(odd))
    wan = models / "checkpoints" / "wan_in_checkpoints.safetensors"  # a model UNETLoader reads, wrapped
    save_file({f"model.diffusion_model.{k}": torch.zeros(2, 2) for k in FAMILIES["wan"].signature}, str(wan))
    no_te = models / "checkpoints" / "tiny_flux_no_te.safetensors"
    save_file({"model.diffusion_model." + k: v for k, v in unet.items()}, str(no_te))
    prompt = copy.deepcopy(SCHNELL_CHECKPOINT_WORKFLOW)
    with engine_for(tmp_path, models) as engine:
        prompt["30"]["inputs"]["ckpt_name"] = odd.name
        unknown = str(engine.run(prompt).errors)
        prompt["30"]["inputs"]["ckpt_name"] = wan.name
        split_model = str(engine.run(prompt).errors)
        prompt["30"]["inputs"]["ckpt_name"] = no_te.name
        missing = str(engine.run(prompt).errors)
    assert "mystery_model.safetensors" in unknown and "model.diffusion_model.double_blocks" in unknown
    assert "model.diffusion_model.input_blocks" in unknown and "UNETLoader" in unknown and "VAELoader" in unknown
    assert "wan_in_checkpoints.safetensors" in split_model and FAMILIES["wan"].title in split_model
    assert "UNETLoader from models/diffusion_models" in split_model
    assert "tiny_flux_no_te.safetensors" in missing and "VAELoader" in missing and "`vae.*`" in missing
