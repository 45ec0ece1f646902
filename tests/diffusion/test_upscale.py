"""Upscale models: spandrel without torchvision, file reading, layouts, tiling, OOM, errors."""

import importlib.util
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from nodeloom.errors import OutOfMemoryError, ValidationError
from nodeloom.diffusion.upscale import estimate_upscale_bytes, load_upscale_model, upscale_image
from nodeloom.diffusion.weights import read_weights
from nodeloom.testing.tiny_upscale import rrdbnet_basicsr, rrdbnet_esrgan, srvgg_compact


def _image(h, w, b=1, seed=0):
    return torch.rand(b, h, w, 3, generator=torch.Generator().manual_seed(seed))


def _save(path, sd):
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)
    return path


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed here")
def test_spandrel_imports_without_torchvision_and_leaves_no_stand_in():
    code = textwrap.dedent("""
        import importlib.util, sys
        from nodeloom.diffusion.spandrel_import import import_spandrel
        s = import_spandrel()
        ids = {a.architecture.id for a in s.MAIN_REGISTRY.architectures()}
        assert {"ESRGAN", "Compact", "SwinIR", "HAT", "RestoreFormer", "LaMa"} <= ids, ids
        assert "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None
        print("ok", len(ids))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_the_stand_in_normalize_is_torchvisions_formula():
    from nodeloom.diffusion.spandrel_import import _normalize

    x = torch.rand(2, 3, 4, 4)
    out = _normalize(x, [0.5, 0.4, 0.3], [0.2, 0.25, 0.5])
    want = (x - torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1)) / torch.tensor([0.2, 0.25, 0.5]).view(3, 1, 1)
    torch.testing.assert_close(out, want)


@pytest.mark.parametrize("name,sd,scale,arch", [
    ("RealESRGAN_x4plus.pth", rrdbnet_basicsr(4), 4, "ESRGAN"),
    ("RealESRGAN_x2plus.safetensors", rrdbnet_basicsr(2), 2, "ESRGAN"),
    ("1x_denoise.pth", rrdbnet_basicsr(1), 1, "ESRGAN"),
    ("4x_old_esrgan.pth", rrdbnet_esrgan(rrdbnet_basicsr(4)), 4, "ESRGAN"),
    ("realesr-general-x4v3.pth", srvgg_compact(4), 4, "RealESRGAN Compact"),
    ("2x_compact.safetensors", srvgg_compact(2), 2, "RealESRGAN Compact"),
])
def test_each_layout_loads_and_scales_by_its_factor(tmp_path, name, sd, scale, arch):
    model = load_upscale_model(_save(tmp_path / name, sd))
    assert model.architecture.name == arch and model.scale == scale
    out = upscale_image(model, _image(20, 24), "cpu", lambda *_: None)
    assert out.shape == (1, 20 * scale, 24 * scale, 3)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0 and float(out.std()) > 0


def test_old_and_new_esrgan_layouts_of_the_same_weights_agree(tmp_path):
    new = rrdbnet_basicsr(4, seed=3)
    a = load_upscale_model(_save(tmp_path / "new.safetensors", new))
    b = load_upscale_model(_save(tmp_path / "old.pth", rrdbnet_esrgan(new)))
    img = _image(16, 16)
    torch.testing.assert_close(upscale_image(a, img, "cpu", lambda *_: None), upscale_image(b, img, "cpu", lambda *_: None))


def test_basicsr_files_wrapped_in_params_ema_load(tmp_path):
    model = load_upscale_model(_save(tmp_path / "net_g.pth", {"params_ema": rrdbnet_basicsr(4)}))
    assert model.scale == 4


def test_tiled_result_equals_untiled_within_tolerance(tmp_path):
    model = load_upscale_model(_save(tmp_path / "x4.pth", rrdbnet_basicsr(4, seed=5)))
    img = _image(72, 80, b=2, seed=2)
    whole = upscale_image(model, img, "cpu", lambda *_: None)
    ticks = []
    tiled = upscale_image(model, img, "cpu", lambda done, total: ticks.append((done, total)), tile=32, overlap=8)
    # RRDBNet sees ~40 px around a pixel, so tile borders differ slightly; the ramp blend keeps it small
    assert float((tiled - whole).abs().max()) < 2e-3
    assert ticks[-1] == (2 * 3 * 3, 18) and ticks[0] == (0, 18)


class _OomAbove:
    """Wraps a model; raises torch.OutOfMemoryError for tiles larger than ``limit`` pixels."""

    def __init__(self, model, limit):
        self.inner, self.limit, self.sizes = model, limit, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, x):
        self.sizes.append(max(x.shape[2:]))
        if max(x.shape[2:]) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.inner(x)


def test_the_tile_is_halved_on_out_of_memory(tmp_path):
    model = _OomAbove(load_upscale_model(_save(tmp_path / "c.pth", srvgg_compact(2))), limit=200)
    out = upscale_image(model, _image(300, 290), "cpu", lambda *_: None)
    assert out.shape == (1, 600, 580, 3)
    assert model.sizes[0] == 300 and 256 in model.sizes and max(model.sizes[-4:]) <= 128


def test_out_of_memory_below_the_smallest_tile_is_reported(tmp_path):
    model = _OomAbove(load_upscale_model(_save(tmp_path / "c.pth", srvgg_compact(2))), limit=50)
    with pytest.raises(OutOfMemoryError, match="128px tiles"):
        upscale_image(model, _image(300, 290), "cpu", lambda *_: None)


def test_memory_estimate_counts_weights_work_and_image(tmp_path):
    model = load_upscale_model(_save(tmp_path / "x4.pth", rrdbnet_basicsr(4)))
    img = _image(64, 64)
    weights = sum(t.numel() * 4 for t in model.model.state_dict().values())
    assert estimate_upscale_bytes(model, img) == int(weights + 512 * 512 * 3 * 4 * 4 * 384 + img.numel() * 4)


def test_a_file_that_is_not_an_upscale_model_is_named_with_a_hint(tmp_path):
    path = _save(tmp_path / "sd15.safetensors", {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4)})
    with pytest.raises(ValidationError) as info:
        load_upscale_model(path)
    assert "`sd15.safetensors` is not an upscale model" in str(info.value)
    assert "CheckpointLoaderSimple" in str(info.value)


def test_pickles_holding_code_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"weights": rrdbnet_basicsr(4), "opt": ValueError("x")}, path)
    with pytest.raises(ValidationError, match="`evil.pth` could not be read as plain weights"):
        read_weights(path)


def test_a_truncated_file_is_named(tmp_path):
    path = _save(tmp_path / "cut.safetensors", rrdbnet_basicsr(4))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValidationError, match="`cut.safetensors` is not a readable .safetensors file"):
        read_weights(path)


def test_an_image_with_too_few_channels_is_refused(tmp_path):
    model = load_upscale_model(_save(tmp_path / "c.pth", srvgg_compact(2)))
    with pytest.raises(ValidationError, match="at least 3 channels"):
        upscale_image(model, torch.rand(1, 8, 8, 1), "cpu", lambda *_: None)


def test_a_greyscale_model_gets_luma_and_gives_an_rgb_image(tmp_path):
    model = load_upscale_model(_save(tmp_path / "1ch.pth", srvgg_compact(2, channels=1)))
    assert model.input_channels == 1 and model.output_channels == 1
    img = _image(12, 10)
    out = upscale_image(model, img, "cpu", lambda *_: None)
    assert out.shape == (1, 24, 20, 3) and torch.equal(out[..., 0], out[..., 2])
    luma = (img * torch.tensor([0.299, 0.587, 0.114])).sum(-1, keepdim=True)
    torch.testing.assert_close(out[..., :1], model(luma.movedim(-1, 1)).movedim(1, -1))


@pytest.mark.parametrize("absent", ["spandrel", "einops"])
def test_a_missing_spandrel_names_the_install_steps(monkeypatch, absent):
    from nodeloom.diffusion import spandrel_import
    from nodeloom.errors import MissingDependencyError

    monkeypatch.delitem(sys.modules, "spandrel", raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(spandrel_import.importlib.util, "find_spec", lambda name, *a: None if name == absent else real(name, *a))
    with pytest.raises(MissingDependencyError, match=f"`{absent}` is not installed.*--no-deps spandrel"):
        spandrel_import.import_spandrel()
