"""Lotus-D depth on tiny random weights saved as users have them: the UNet file (ComfyUI's LDM
layout, with or without ``model.diffusion_model.``) recognised by UNETLoader and its one IMG_TO_IMG
step equal to a direct diffusers call with Lotus's task embedding; LotusConditioning equal to
``CLIPTextModel`` on the empty prompt (SD 2.x checkpoint, transformers and OpenCLIP layouts, the
24-layer tower read at its penultimate layer), cached per file, and its error when no encoder is
found; the official template's graph converted and run end to end, writing the image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion import lotus_prompt
from nodeloom.diffusion.families.lotus import task_embedding
from nodeloom.testing.tiny_lotus import LOTUS_DEPTH_WORKFLOW, LOTUS_FILES, build_tiny_lotus, tiny_sd2_text_encoder
from tests.nodes.diffusion.family_helpers import engine_for, input_photo, official_template, run_ok, run_served

_EMPTY = [[49406, 49407]]  # CLIP's <start>, <end>: "" without padding, as Lotus tokenises it
_PROMPT = {"1": {"class_type": "LotusConditioning", "inputs": {}},
           "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}


@pytest.fixture(scope="module")
def lotus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_lotus(root)


def _reference_step(unet, raw: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """Lotus-D's one step as the release runs it, in the UNet's latent space: the scaled latent in,
    timestep 999, the dense-prediction task embedding as class labels; the output is the estimate."""
    with torch.no_grad():
        return unet(raw * 0.18215, 999, encoder_hidden_states=cond, class_labels=task_embedding()).sample


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_unet_file_is_detected_and_one_img_to_img_step_equals_diffusers(tmp_path, lotus, prefix):
    from nodeloom.diffusion.sampling import sample_sigmas
    from nodeloom.diffusion.split_models import load_diffusion_model, model_value

    root, parts = lotus
    if prefix:
        root = tmp_path
        parts = build_tiny_lotus(tmp_path, unet_prefix=prefix)
    module, family = load_diffusion_model(root / "diffusion_models" / parts["unet_name"])
    assert family.name == "lotus_d" and module.config.class_embed_type == "projection"
    assert module.config.projection_class_embeddings_input_dim == 4 and module.config.cross_attention_dim == 64
    ours = module.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in parts["unet"].state_dict().items())
    model = model_value(module, family, parts["unet_name"])
    assert model.sampling.prediction_type == "img_to_img" and model.adapter is None and model.latent_scale == 0.18215

    gen = torch.Generator().manual_seed(3)
    raw, cond = torch.randn(2, 4, 8, 8, generator=gen), torch.randn(1, 2, 64, generator=gen)
    out, _ = sample_sigmas(model, {"samples": raw}, torch.tensor([999.0, 0.0]), seed=0, cfg=1.0, sampler_name="euler",
                           positive=[[cond, {}]], negative=None, add_noise=False)
    want = _reference_step(parts["unet"], raw, cond.expand(2, -1, -1))
    assert (out["samples"] * 0.18215 - want).abs().max() <= 1e-5
    assert (out["samples"] - want / 0.18215).abs().max() <= 1e-5
    assert not torch.allclose(out["samples"], raw, atol=1e-2)  # the UNet's estimate, not the input passed through
    higher, _ = sample_sigmas(model, {"samples": raw}, torch.tensor([10000.0, 0.0]), seed=0, cfg=1.0,
                              sampler_name="euler", positive=[[cond, {}]], negative=None, add_noise=False)
    assert (higher["samples"] - out["samples"]).abs().max() <= 1e-5  # two templates set 10000: timestep 999 too


def test_task_embedding_is_sin_and_cos_of_the_prediction_switch():
    want = torch.tensor([[torch.sin(torch.tensor(1.0)), 0.0, torch.cos(torch.tensor(1.0)), 1.0]])
    assert torch.allclose(task_embedding(), want)


def _conditioning(base: Path, models: Path) -> torch.Tensor:
    with engine_for(base, models) as engine:
        result = run_ok(engine, _PROMPT)
        cond = result.value("1")
        keys = [m.key for m in engine.services.models.loaded()]
    assert len(cond) == 1 and cond[0][1] == {}
    assert any("lotus-null-conditioning" in k for k in keys)  # cached per file by the model manager
    return cond[0][0]


def test_lotus_conditioning_from_an_sd2_checkpoint_equals_clip_text_model(tmp_path, lotus):
    """Equal to ``CLIPTextModel`` on ``<start>, <end>``, and (CLIP's attention being causal) to the
    first two states of nodeloom's own SD 2 encoding of ``""`` (CLIPTextEncode, padded to 77)."""
    root, parts = lotus
    with torch.no_grad():
        want = parts["text_encoder"](torch.tensor(_EMPTY)).last_hidden_state
    got = _conditioning(tmp_path, root)
    assert got.shape == (1, 2, 64) and (got - want).abs().max() <= 1e-6
    with engine_for(tmp_path, root) as engine:
        result = run_ok(engine, {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": parts["ckpt_name"]}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}})
    padded = result.value("2")[0][0]
    assert padded.shape == (1, 77, 64) and (padded[:, :2] - got).abs().max() <= 1e-5


@pytest.mark.parametrize("layout", ["transformers", "open_clip"])
def test_a_24_layer_text_encoder_is_read_at_its_penultimate_layer(tmp_path, monkeypatch, layout):
    """A full 24-layer tower in models/text_encoders (here 32 wide, declared SD 2's width) gives the
    states of diffusers' 23-layer SD 2 ``CLIPTextModel``, the same whichever key layout the file uses."""
    from safetensors.torch import save_file

    from nodeloom.diffusion.ldm_export import open_clip_to_ldm

    full = tiny_sd2_text_encoder(seed=7, width=32, layers=24)
    cut = tiny_sd2_text_encoder(seed=7, width=32, layers=23)
    cut.load_state_dict(full.state_dict(), strict=False)
    sd = full.state_dict()
    if layout == "open_clip":
        sd = open_clip_to_ldm({**sd, "text_projection.weight": torch.eye(32)}, "")
    folder = tmp_path / "models" / "text_encoders"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in sd.items() if not k.endswith("position_ids")},
              str(folder / "sd2_text_encoder.safetensors"))
    monkeypatch.setattr(lotus_prompt, "SD2_TEXT_WIDTH", 32)
    with torch.no_grad():
        want = cut(torch.tensor(_EMPTY)).last_hidden_state
        last = full(torch.tensor(_EMPTY)).last_hidden_state
    got = _conditioning(tmp_path / "base", tmp_path / "models")
    assert (got - want).abs().max() <= 1e-6 and (got - last).abs().max() > 1e-3


def test_text_encoders_of_other_widths_are_passed_over(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "text_encoders"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in tiny_sd2_text_encoder(width=32).state_dict().items()},
              str(folder / "clip_l.safetensors"))
    with pytest.raises(lotus_prompt.ModelNotFoundError):
        lotus_prompt.find_sd2_text_encoder([folder], [])
    assert lotus_prompt.find_sd2_text_encoder([folder], [], width=32).path.name == "clip_l.safetensors"


def test_missing_text_encoder_names_the_folders_and_the_files_to_add(tmp_path):
    (tmp_path / "models" / "text_encoders").mkdir(parents=True)
    with engine_for(tmp_path / "base", tmp_path / "models") as engine:
        result = engine.run(_PROMPT)
    assert result.status != "success"
    message = " ".join(str(e.get("exception_message", e)) for e in result.errors)
    assert "SD 2's text encoder" in message and "v2-1_768-ema-pruned.safetensors" in message
    assert str(tmp_path / "models" / "text_encoders") in message and str(tmp_path / "models" / "checkpoints") in message


def test_official_template_converts_and_runs_writing_the_depth_image(tmp_path, lotus):
    """``image_lotus_depth_v1_1.json`` itself (its subgraph, notes and widget values), the file names
    mapped to the tiny files and a 64² input: converted, run, and the saved image equal to the
    release's steps by hand — VAE posterior mean, one UNet call at t 999 with the null prompt and the
    task embedding, VAE decode, inverted."""
    import numpy as np
    from PIL import Image

    from nodeloom.workflows.files import load_prompt

    root, parts = lotus
    workflow = official_template("image_lotus_depth_v1_1")
    image_name = None
    subgraphs = workflow.get("definitions", {}).get("subgraphs", [])
    nodes = list(workflow["nodes"]) + [n for g in subgraphs for n in g["nodes"]]
    for node in nodes:
        values = node.get("widgets_values")
        if isinstance(values, list):
            values[:] = [LOTUS_FILES.get(v, v) if isinstance(v, str) else v for v in values]
        if node["type"] == "LoadImage":
            image_name = values[0]
    assert image_name is not None
    (tmp_path / "base" / "input").mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    pixels = (torch.rand(64, 64, 3, generator=gen) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(tmp_path / "base" / "input" / image_name)
    (tmp_path / "wf.json").write_text(json.dumps(workflow), encoding="utf-8")
    with engine_for(tmp_path / "base", root) as engine:
        prompt = load_prompt(engine, str(tmp_path / "wf.json"))
        assert sorted(v["class_type"] for v in prompt.values()) == sorted(
            v["class_type"] for v in LOTUS_DEPTH_WORKFLOW.values())
        result = run_ok(engine, prompt)
    save = next(k for k, v in prompt.items() if v["class_type"] == "SaveImage")
    written = result.outputs[save]["images"][0]
    assert written["filename"].startswith("Lotus_depth")
    saved = np.asarray(Image.open(tmp_path / "base" / "output" / written.get("subfolder", "") / written["filename"]))
    assert saved.shape == (64, 64, 3)

    with torch.no_grad():
        x = torch.from_numpy(pixels).float().div(255).permute(2, 0, 1)[None] * 2 - 1
        latent = parts["vae"].encode(x).latent_dist.mode()
        null = parts["text_encoder"](torch.tensor(_EMPTY)).last_hidden_state
        depth = _reference_step(parts["unet"], latent, null) / 0.18215
        image = (parts["vae"].decode(depth).sample / 2 + 0.5).clamp(0, 1)
    want = 1.0 - image[0].permute(1, 2, 0)
    inverted = next(k for k, v in prompt.items() if v["class_type"] == "ImageInvert")
    assert (result.value(inverted)[0] - want).abs().max() <= 1e-4
    assert np.abs(saved.astype(np.float32) / 255 - want.numpy()).max() <= 1 / 255 + 1e-4  # SaveImage truncates


def test_a_full_size_lotus_header_gives_sd2s_unet_config():
    """Shapes only (a meta-device UNet shaped like Lotus-D v1.1, renamed to ComfyUI's layout): the
    family is told and the config read back is SD 2's with the projection class embedding."""
    from diffusers import UNet2DConditionModel

    from nodeloom.diffusion.detect import family_defaults
    from nodeloom.diffusion.families import FAMILIES
    from nodeloom.diffusion.families.lotus import lotus_unet_config
    from nodeloom.diffusion.ldm_export import unet_to_ldm

    base = {k: v for k, v in family_defaults("sd2")["unet"].items() if not k.startswith("_")}
    with torch.device("meta"):
        unet = UNet2DConditionModel(**base, class_embed_type="projection", projection_class_embeddings_input_dim=4)
    sd = unet_to_ldm(unet.state_dict(), unet.config, "")
    assert FAMILIES["lotus_d"].matches({k: tuple(v.shape) for k, v in sd.items()})
    cfg = lotus_unet_config(sd)
    for key in ("block_out_channels", "layers_per_block", "cross_attention_dim", "down_block_types", "up_block_types",
                "use_linear_projection", "class_embed_type", "projection_class_embeddings_input_dim"):
        assert list(cfg[key]) == list(unet.config[key]) if isinstance(cfg[key], (list, tuple)) else \
            cfg[key] == unet.config[key], key
    assert list(cfg["attention_head_dim"]) == [5, 10, 20, 20]


def test_a_plain_sd_unet_file_is_refused_naming_the_checkpoint_loader(tmp_path):
    from safetensors.torch import save_file

    from nodeloom.diffusion.ldm_export import unet_to_ldm
    from nodeloom.diffusion.split_models import load_diffusion_model
    from nodeloom.errors import ValidationError
    from nodeloom.testing.tiny_sd import tiny_components

    unet = tiny_components("sd2")["unet"]
    path = tmp_path / "sd2_unet.safetensors"
    save_file({k: v.contiguous() for k, v in unet_to_ldm(unet.state_dict(), unet.config, "").items()}, str(path))
    with pytest.raises(ValidationError, match="CheckpointLoaderSimple") as err:
        load_diffusion_model(path)
    assert "Lotus-D" in str(err.value) and "label_emb" in str(err.value)


def test_template_graph_through_a_live_server(tmp_path, lotus):
    """The template's graph in API format, submitted to a real server on loopback: the depth image is
    written, and it follows the photo (not a constant)."""
    import numpy as np
    from PIL import Image

    input_photo(tmp_path, "lotus_input.png", 64)
    entry = run_served(tmp_path, lotus[0], json.loads(json.dumps(LOTUS_DEPTH_WORKFLOW)))
    image = entry["outputs"]["9"]["images"][0]
    assert image["filename"].startswith("Lotus_depth")
    saved = np.asarray(Image.open(tmp_path / "output" / image.get("subfolder", "") / image["filename"]))
    assert saved.shape == (64, 64, 3) and saved.std() > 1
