"""The small ``comfy.*`` helpers packs import: node_helpers, latent_formats, latent_preview (with a
pack wrapping ``get_previewer`` as VideoHelperSuite does), comfy.utils, model_management,
comfy.k_diffusion.utils and comfy_extras names."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from nodeloom.compat import hook


@pytest.fixture
def comfy() -> Iterator[dict[str, ModuleType]]:
    hook.install()
    names = ["node_helpers", "latent_preview", "comfy.latent_formats", "comfy.utils", "comfy.model_management",
             "comfy.k_diffusion.utils", "comfy_extras.nodes_latent", "comfy_extras.nodes_custom_sampler",
             "comfy_extras.nodes_mask"]
    yield {name: importlib.import_module(name) for name in names}


def test_node_helpers_and_latent_formats(comfy: dict[str, ModuleType]) -> None:
    helpers, formats = comfy["node_helpers"], comfy["comfy.latent_formats"]
    cond = [[torch.zeros(1, 2, 3), {"pooled_output": None, "areas": [1]}]]
    out = helpers.conditioning_set_values(cond, {"strength": 0.5, "areas": [2]}, append=True)
    assert out[0][1] == {"pooled_output": None, "areas": [1, 2], "strength": 0.5}
    assert cond[0][1] == {"pooled_output": None, "areas": [1]}  # the input is untouched
    with pytest.raises(TypeError, match="`conditioning` must be a list"):
        helpers.conditioning_set_values([torch.zeros(1)], {})
    assert helpers.string_to_torch_dtype("fp16") is torch.float16
    dst, src = helpers.image_alpha_fix(torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4, 3))
    assert src.shape[-1] == 4 and bool((src[..., 3] == 1).all())
    latent = torch.randn(1, 4, 2, 2)
    assert torch.allclose(formats.SD15().process_out(formats.SD15().process_in(latent)), latent)
    assert formats.SDXL.scale_factor == 0.13025 and formats.SD15.latent_channels == 4


def test_latent_preview_callback_uses_a_wrapped_get_previewer(comfy: dict[str, ModuleType]) -> None:
    preview = comfy["latent_preview"]

    class Model:
        latent_scale = 0.5
        extra = {"latent_rgb": (torch.eye(4)[:, :3], torch.zeros(3))}

    seen: list[object] = []
    original = preview.get_previewer

    def wrapped(device, latent_format, *args, **kwargs):  # what VideoHelperSuite's hook looks like
        seen.append(type(latent_format).__name__)
        return original(device, latent_format, *args, **kwargs)

    preview.get_previewer = wrapped
    try:
        store: dict[str, torch.Tensor] = {}
        callback = preview.prepare_callback(Model(), 2, store)
        x0 = torch.full((1, 4, 8, 8), 0.25)
        callback(0, x0, x0, 2)
    finally:
        preview.get_previewer = original
    assert seen == ["SD15"] and store["x0"] is x0
    image = original(None, None, model=Model()).decode_latent_to_preview(x0)
    assert np.asarray(image)[0, 0].tolist() == [128, 128, 128]  # 0.25 / 0.5 = 0.5 on each channel


def test_utils_model_management_and_k_diffusion(comfy: dict[str, ModuleType], tmp_path: Path) -> None:
    utils, mm, kd = comfy["comfy.utils"], comfy["comfy.model_management"], comfy["comfy.k_diffusion.utils"]
    x = torch.rand(1, 3, 24, 40)
    double = lambda t: torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    assert torch.allclose(utils.tiled_scale(x, double, tile_x=16, tile_y=16, overlap=4, upscale_amount=2), double(x),
                          atol=1e-6)
    assert utils.get_tiled_scale_steps(40, 24, 16, 16, 4) == 3 * 2
    assert utils.repeat_to_batch_size(torch.arange(2), 5).tolist() == [0, 1, 0, 1, 0]
    utils.save_torch_file({"w": torch.ones(2)}, tmp_path / "w.safetensors", metadata={"k": "v"})
    state, meta = utils.load_torch_file(tmp_path / "w.safetensors", return_metadata=True)
    assert state["w"].tolist() == [1.0, 1.0] and meta == {"k": "v"}
    assert mm.intermediate_dtype() is torch.float32 and mm.vae_dtype() is torch.float32
    assert mm.module_size(torch.nn.Linear(2, 2)) == 6 * 4
    with pytest.raises(TypeError, match="holds no torch module"):
        mm.load_models_gpu([object()])
    with pytest.raises(ValueError):
        mm.raise_non_oom(ValueError("boom"))
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("x")
    folder = kd.FolderOfImages(tmp_path)
    assert len(folder) == 1 and folder[0][0].size == (4, 4) and ".png" in kd.FolderOfImages.IMG_EXTENSIONS


def test_comfy_extras_names_resolve_to_builtin_nodes(comfy: dict[str, ModuleType]) -> None:
    latent_mod, sampler_mod, mask_mod = (comfy["comfy_extras.nodes_latent"], comfy["comfy_extras.nodes_custom_sampler"],
                                         comfy["comfy_extras.nodes_mask"])
    a, b = {"samples": torch.zeros(1, 4, 4, 4)}, {"samples": torch.ones(2, 4, 2, 2)}
    (joined,) = latent_mod.LatentBatch.execute(a, b)
    assert joined["samples"].shape == (3, 4, 4, 4) and joined["batch_index"] == [0, 0, 1]
    noise = sampler_mod.Noise_RandomNoise(7).generate_noise(a)
    assert noise.shape == (1, 4, 4, 4) and torch.equal(noise, sampler_mod.Noise_RandomNoise(7).generate_noise(a))
    assert sampler_mod.SamplerCustomAdvanced.__name__ == "SamplerCustomAdvanced"
    pasted = mask_mod.composite(torch.zeros(1, 4, 8, 8), torch.ones(1, 4, 2, 2), 16, 8, None, 8)
    assert pasted[0, 0, 1, 2] == 1 and pasted.sum() == 4 * 4
    with pytest.raises(ValueError, match="must be >= 0"):
        mask_mod.composite(torch.zeros(1, 4, 8, 8), torch.ones(1, 4, 2, 2), -8, 0)
    with pytest.raises(AttributeError, match="no built-in node or helper"):
        _ = latent_mod.NoSuchNode
    image_scale = importlib.import_module("nodes").ImageScale  # rgthree's Image Resize reads its choices
    assert "bilinear" in image_scale.upscale_methods and image_scale.crop_methods == ["disabled", "center"]
