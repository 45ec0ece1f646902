"""Block-by-block offload and fp8 weight storage: same outputs as the plain model, on the CPU.

No GPU here, so the block moves are host → host; the test watches the schedule instead (each
block is moved to the compute device right before its forward and back right after) and checks
that the results equal the plain run bit for bit.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from nodeloom.models import offload  # noqa: E402
from nodeloom.models.manager import ModelManager  # noqa: E402


class _TinyDiT(torch.nn.Module):
    """A diffusion-transformer-shaped module: embed, two lists of blocks, a conv head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Linear(8, 32)
        self.transformer_blocks = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.LayerNorm(32), torch.nn.Linear(32, 32), torch.nn.GELU()) for _ in range(3))
        self.single_blocks = torch.nn.ModuleList(torch.nn.Linear(32, 32) for _ in range(2))
        self.head = torch.nn.Conv1d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in [*self.transformer_blocks, *self.single_blocks]:
            h = h + block(h)
        return self.head(h.transpose(1, 2))


def test_block_offload_keeps_outputs_and_moves_one_block_at_a_time(monkeypatch):
    x = torch.randn(2, 5, 8)
    plain = _TinyDiT()
    want = plain(x)
    model = _TinyDiT()
    moves: list[tuple[int, str]] = []
    real_move = offload.BlockOffload._move

    def spy(self, block, device):
        moves.append((next(i for i, b in enumerate(self.blocks) if b is block), device.type))
        real_move(self, block, device)

    monkeypatch.setattr(offload.BlockOffload, "_move", spy)
    hooks = offload.BlockOffload(model, "cpu", offload_device="cpu")
    assert len(hooks.blocks) == 5
    moves.clear()
    assert torch.equal(model(x), want)
    # onto the compute device just before each block's forward, back right after, in order
    assert moves == [(i, "cpu") for i in range(5) for _ in range(2)]
    hooks.remove()
    moves.clear()
    model(x)
    assert moves == [] and not hasattr(model, "_nodeloom_block_offload")
    with pytest.raises(ValueError, match="no repeated blocks"):
        offload.BlockOffload(torch.nn.Linear(2, 2), "cpu")


@pytest.mark.parametrize("weight_dtype", ["fp8_e4m3fn", "fp8_e5m2"])
def test_fp8_storage_equals_the_rounded_weights_in_float32(weight_dtype):
    x = torch.randn(2, 5, 8)
    fp8 = getattr(torch, offload.FP8_NAMES[weight_dtype])
    rounded = _TinyDiT()
    with torch.no_grad():
        for m in rounded.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d)):
                m.weight.copy_(m.weight.to(fp8).to(torch.float32))
    want = rounded(x)
    model = _TinyDiT()
    before = sum(p.numel() * p.element_size() for p in model.parameters())
    assert offload.store_fp8(model, weight_dtype) == 7  # embed, 3 + 2 block linears, head
    assert model.embed.weight.dtype == fp8 and model.head.weight.dtype == fp8
    assert model.embed.bias.dtype == torch.float32
    after = sum(p.numel() * p.element_size() for p in model.parameters())
    assert after < 0.3 * before
    assert torch.equal(model(x), want)
    with pytest.raises(ValueError, match="weight_dtype"):
        offload.store_fp8(model, "fp4")


def test_the_manager_runs_a_model_block_by_block_when_set_to_and_keeps_fp8(monkeypatch):
    x = torch.randn(2, 5, 8)
    want = _TinyDiT()(x)
    manager = ModelManager(device="cpu", offload="blocks")
    model = manager.prepare(_TinyDiT().to(torch.float64), dtype=torch.float32)
    assert isinstance(model._nodeloom_block_offload, offload.BlockOffload)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert torch.equal(model(x), want)
    assert manager.prepare(model) is model  # prepared once
    # fp8-stored weights stay fp8 through prepare(); the rest takes the compute dtype
    plain = ModelManager(device="cpu", offload="none")
    fp8_model = _TinyDiT()
    offload.store_fp8(fp8_model, "fp8_e4m3fn")
    plain.prepare(fp8_model, dtype=torch.float64)
    assert fp8_model.embed.weight.dtype == torch.float8_e4m3fn and fp8_model.embed.bias.dtype == torch.float64
    assert fp8_model(x.double()).dtype == torch.float64  # weights upcast to the input's dtype
    assert not hasattr(fp8_model, "_nodeloom_block_offload")
    assert ModelManager(device="cpu")._by_blocks(_TinyDiT(), torch.float32) is False  # auto: CPU never offloads
    with pytest.raises(ValueError, match="offload"):
        ModelManager(offload="sometimes")



def test_a_template_run_block_by_block_equals_the_plain_run(tmp_path):
    """Z-Image Turbo's template through an engine set to ``offload="blocks"``: the same image."""
    import copy

    import numpy as np
    from PIL import Image

    from nodeloom import Engine
    from nodeloom.testing.tiny_families import ZIMAGE_TURBO_WORKFLOW, build_tiny_zimage

    build_tiny_zimage(tmp_path / "models")
    prompt = copy.deepcopy(ZIMAGE_TURBO_WORKFLOW)
    prompt["7"]["inputs"].update(width=32, height=32)
    prompt["8"]["inputs"]["steps"] = 2
    images = {}
    for mode in ("none", "blocks"):
        with Engine(base_dir=tmp_path / mode, models_dir=tmp_path / "models", load_custom_nodes=False,
                    offload=mode) as engine:
            result = engine.run(prompt)
            assert result.ok, result.errors
            hooked = [m for e in engine.services.models.loaded() for m in _modules(e.model)
                      if getattr(m, "_nodeloom_block_offload", None) is not None]
            assert bool(hooked) == (mode == "blocks")
            (saved,) = [i for out in result.outputs.values() for i in out.get("images", [])]
            images[mode] = np.asarray(Image.open(tmp_path / mode / "output" / saved["subfolder"] / saved["filename"]))
    assert np.array_equal(images["none"], images["blocks"])


def _modules(value):
    if isinstance(value, torch.nn.Module):
        return [value]
    if isinstance(value, (tuple, list)):
        return [m for v in value for m in _modules(v)]
    return [m for v in vars(value).values() for m in _modules(v)] if hasattr(value, "__dict__") else []


def test_quantised_weights_are_kept_with_their_scale_and_compute_the_dequantised_numbers():
    """Layers rebuilt from a scaled fp8 file get their fp8 values and per-tensor scale back, matched
    on values (a fused projection split in two rows still matches); per-row scales are left alone."""
    x = torch.randn(2, 5, 8)
    model = _TinyDiT()
    quantised = {}
    with torch.no_grad():
        for i, block in enumerate(model.single_blocks):  # as dequantising a scaled fp8 file leaves them
            s = torch.tensor(0.01 * (i + 1))
            q = (block.weight / s).to(torch.float8_e4m3fn)
            block.weight.copy_(q.float() * s)
            quantised[f"file.block{i}"] = (q, s)
        fused = torch.cat([model.transformer_blocks[0][1].weight, model.transformer_blocks[1][1].weight])
        s = fused.abs().max() / 448
        q = (fused / s).to(torch.float8_e4m3fn)  # one file tensor, two layers of the module
        model.transformer_blocks[0][1].weight.copy_(q[:32].float() * s)
        model.transformer_blocks[1][1].weight.copy_(q[32:].float() * s)
        quantised["file.fused_qk"] = (q, s)
        row = torch.rand(32, 1) / 100
        quantised["file.rows"] = ((model.transformer_blocks[2][1].weight / row).to(torch.float8_e4m3fn), row)
    want = model(x)
    assert offload.keep_quantised(model, quantised) == 4
    kept = [model.single_blocks[0], model.single_blocks[1], model.transformer_blocks[0][1], model.transformer_blocks[1][1]]
    assert all(m.weight.dtype == torch.float8_e4m3fn and m.weight_scale.dtype == torch.float32 for m in kept)
    assert model.transformer_blocks[2][1].weight.dtype == torch.float32 and model.embed.weight.dtype == torch.float32
    assert torch.equal(model(x), want)
    assert set(offload.dequantised_state_dict(model)) == set(_TinyDiT().state_dict())
    assert offload.fp8_bytes(model)[0] == 4 * 32 * 32


def test_fp8_layers_skip_precision_sensitive_ones_and_never_compute_in_fp8():
    model = _TinyDiT()
    model._skip_layerwise_casting_patterns = ["embed"]  # as diffusers models declare them
    assert offload.store_fp8(model, "fp8_e4m3fn_fast") == 6
    assert model.embed.weight.dtype == torch.float32 and model.head.weight.dtype == torch.float8_e4m3fn
    assert offload.compute_param(model) is model.embed.weight
    h = torch.randn(2, 5, 32)
    layer = model.single_blocks[0]
    want = layer(h)
    # a model that casts its input to a layer's weight dtype (Z-Image's timestep embedder does) still
    # computes in the layer's compute dtype
    assert layer(h.to(torch.float8_e4m3fn)).dtype == torch.float32
    fp8_only = torch.nn.Linear(4, 4)
    offload.store_fp8(fp8_only, "fp8_e5m2")
    assert offload.compute_param(fp8_only).dtype == torch.float32  # the bias
    assert torch.equal(layer(h), want)
