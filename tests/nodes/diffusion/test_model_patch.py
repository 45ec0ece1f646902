"""ModelPatchLoader and QwenImageDiffsynthControlnet on tiny random weights: the DiffSynth
block-wise ControlNet adds its per-block output to Qwen-Image's image tokens (checked against
diffusers' own ``controlnet_block_samples`` residuals where the output does not depend on the
image tokens), strength 0 changes nothing, the control image is rescaled to the latent, the
inpainting patch reads its mask, the template-shaped graph runs served, and bad patches are
named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.families.qwen import FAMILY as QWEN
from nodeloom.diffusion.model_patch import BlockWiseControlNet
from nodeloom.diffusion.sampling import CondEntry, ModelCall
from nodeloom.diffusion.split_models import load_diffusion_model, model_value
from nodeloom.testing.tiny_qwen import QWEN_IMAGE_WORKFLOW, build_tiny_qwen_image
from tests.nodes.diffusion.family_helpers import engine_for, run_ok, run_served

CANNY = "tiny_qwen_image_canny_diffsynth_controlnet.safetensors"
INPAINT = "tiny_qwen_image_inpaint_diffsynth_controlnet.safetensors"


def _patch(in_dim: int, seed: int, flat_x: bool = False) -> dict:
    torch.manual_seed(seed)
    net = BlockWiseControlNet(2, in_dim, 64)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
        if flat_x:  # the control output no longer depends on the image tokens
            for block in net.controlnet_blocks:
                block.x_rms.weight.zero_()
    return {k: v.contiguous() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    parts = build_tiny_qwen_image(root)
    (root / "model_patches").mkdir()
    save_file(_patch(64, 1), str(root / "model_patches" / CANNY))
    save_file(_patch(68, 2), str(root / "model_patches" / INPAINT))
    save_file(_patch(64, 3, flat_x=True), str(root / "model_patches" / "flat.safetensors"))
    save_file({"feature_embedder.mid_layer_norm.bias": torch.zeros(4)}, str(root / "model_patches" / "uso.safetensors"))
    save_file({"something.weight": torch.zeros(4)}, str(root / "model_patches" / "other.safetensors"))
    return root, parts


def _controlled(models: Path, base: Path, patch: str, strength: float, image: torch.Tensor, mask=None) -> tuple:
    """The plain MODEL and the MODEL QwenImageDiffsynthControlnet makes of it, inside an engine."""
    from nodeloom.nodes.diffusion.model_patch_nodes import ModelPatchLoader, QwenImageDiffsynthControlnet
    from nodeloom.nodes.diffusion.loaders import VAELoader

    from nodeloom.core.context import activate_services

    with engine_for(base, models) as engine:
        with activate_services(engine.services):
            module, family = load_diffusion_model(models / "diffusion_models" / "tiny_qwen_image.safetensors")
            model = model_value(module, family, "tiny_qwen_image.safetensors")
            (loaded,) = ModelPatchLoader.execute(patch)
            (vae,) = VAELoader.execute("tiny_qwen_image_vae.safetensors")
            (patched,) = QwenImageDiffsynthControlnet.execute(model, loaded, vae, image, strength, mask)
    return module, model, patched


def _call(models: Path) -> tuple:
    gen = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(1, 16, 8, 8, generator=gen), torch.randn(1, 12, 256, generator=gen)
    return x, torch.tensor(0.7), ModelCall([CondEntry(ctx, {}, (64, 64), 1.0)], ctx, None)


class _WithResiduals:
    """The transformer called with diffusers' ``controlnet_block_samples`` (a residual per block)."""

    def __init__(self, module: torch.nn.Module, samples: list) -> None:
        self.module, self.samples = module, samples

    def __getattr__(self, name: str):
        return getattr(self.module, name)

    def __call__(self, **kwargs):
        return self.module(**kwargs, controlnet_block_samples=self.samples)


def test_control_equals_diffusers_block_residuals(tmp_path, qwen):
    """With the image-token norm zeroed the patch's block outputs are constants: adding them must
    equal diffusers' ControlNet residual path (``controlnet_block_samples``) exactly."""
    models, _ = qwen
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(4))
    module, model, patched = _controlled(models, tmp_path, "flat.safetensors", 0.8, image)
    x, sigma, call = _call(models)
    with torch.no_grad():
        ours = patched.adapter(module, x, sigma, call)
        control = patched.adapter.control
        y = control.tokens(8, 8, x)
        samples = [0.8 * b(torch.zeros(1, y.shape[1], 64), y) for b in control.patch.controlnet_blocks]
        theirs = QWEN.adapter(_WithResiduals(module, samples), x, sigma, call)
        plain = model.adapter(module, x, sigma, call)
    assert (ours - theirs).abs().max() < 1e-5
    assert (ours - plain).abs().max() > 1e-3


def test_strength_zero_changes_nothing_and_the_image_is_rescaled(tmp_path, qwen):
    models, _ = qwen
    gen = torch.Generator().manual_seed(5)
    image = torch.rand(1, 32, 32, 3, generator=gen)
    x, sigma, call = _call(models)
    module, model, off = _controlled(models, tmp_path / "a", CANNY, 0.0, image)
    _, _, on = _controlled(models, tmp_path / "b", CANNY, 1.0, image)
    from nodeloom.ops.resample import upscale_image

    _, _, big = _controlled(models, tmp_path / "c", CANNY, 1.0, upscale_image(image, 64, 64, "area", "center"))
    with torch.no_grad():
        plain = model.adapter(module, x, sigma, call)
        assert (off.adapter(module, x, sigma, call) - plain).abs().max() == 0
        steered = on.adapter(module, x, sigma, call)  # a 32² image for a 64² latent: scaled first
        assert (steered - plain).abs().max() > 1e-3
        assert (steered - big.adapter(module, x, sigma, call)).abs().max() < 1e-5


def test_inpainting_patch_reads_its_mask(tmp_path, qwen):
    models, _ = qwen
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(6))
    mask = torch.zeros(1, 64, 64)
    mask[:, :32] = 1.0
    x, sigma, call = _call(models)
    module, _, whole = _controlled(models, tmp_path / "a", INPAINT, 1.0, image)
    _, _, masked = _controlled(models, tmp_path / "b", INPAINT, 1.0, image, mask)
    _, _, nothing = _controlled(models, tmp_path / "c", INPAINT, 1.0, image, torch.zeros(1, 64, 64))
    with torch.no_grad():
        a, b = whole.adapter(module, x, sigma, call), masked.adapter(module, x, sigma, call)
        assert (a - b).abs().max() > 1e-4
        assert (a - nothing.adapter(module, x, sigma, call)).abs().max() < 1e-6  # no mask = keep everything


def test_template_shaped_graph_runs_served(tmp_path, qwen):
    """image_qwen_image_controlnet_patch.json's graph: the image through Canny into the patch, its
    VAE encoding as the latent; and the patch's effect on the sampled result."""
    models, _ = qwen
    prompt = copy.deepcopy(QWEN_IMAGE_WORKFLOW)
    prompt.update({
        "71": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0x88AA44}},
        "72": {"class_type": "Canny", "inputs": {"image": ["71", 0], "low_threshold": 0.1, "high_threshold": 0.2}},
        "70": {"class_type": "ModelPatchLoader", "inputs": {"name": CANNY}},
        "69": {"class_type": "QwenImageDiffsynthControlnet", "inputs": {"model": ["1", 0], "model_patch": ["70", 0],
                                                                        "vae": ["3", 0], "image": ["72", 0],
                                                                        "strength": 1.0}},
        "76": {"class_type": "VAEEncode", "inputs": {"pixels": ["71", 0], "vae": ["3", 0]}},
    })
    prompt["4"]["inputs"]["model"] = ["69", 0]
    prompt["8"]["inputs"]["latent_image"] = ["76", 0]
    entry = run_served(tmp_path / "served", models, prompt)
    assert entry["outputs"]["10"]["images"][0]["filename"].startswith("qwen-image")
    plain = copy.deepcopy(prompt)
    plain["4"]["inputs"]["model"] = ["1", 0]
    with engine_for(tmp_path / "engine", models) as engine:
        a, b = run_ok(engine, prompt).value("8")["samples"], run_ok(engine, plain).value("8")["samples"]
    assert (a - b).abs().max() > 1e-4


def test_bad_patches_and_models_are_named(tmp_path, qwen):
    models, parts = qwen
    with engine_for(tmp_path, models) as engine:
        for name, expected in (("uso.safetensors", "USO style projector"), ("other.safetensors", "not a model patch")):
            result = engine.run({"1": {"class_type": "ModelPatchLoader", "inputs": {"name": name}},
                                 "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}})
            message = " ".join(str(e.get("exception_message", e)) for e in result.errors)
            assert result.status != "success" and name in message and expected in message, message
    from nodeloom.errors import ValidationError
    from nodeloom.nodes.diffusion.model_patch_nodes import QwenImageDiffsynthControlnet

    with pytest.raises(ValidationError, match="steers Qwen-Image models"):
        QwenImageDiffsynthControlnet.execute(object(), object(), object(), torch.zeros(1, 8, 8, 3), 1.0)
