"""FluxKVCache on Flux.2 (tiny random Klein): the references modulated at timestep 0, their keys
and values recorded on a run's first call and replayed on the later ones — exact on the call that
recorded them and at the same state, close elsewhere; the KV template's graph through the Engine."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion import reference_kv
from nodeloom.diffusion.families.flux2 import _call_entry, _forward_zero_t, _ids, _tokens
from nodeloom.diffusion.reference_kv import ReferenceKVCache
from nodeloom.errors import ValidationError
from nodeloom.testing.tiny_flux2 import FLUX2_KLEIN_EDIT_WORKFLOW, build_tiny_flux2
from tests.nodes.diffusion.family_helpers import engine_for, run_ok


@pytest.fixture(scope="module")
def flux2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_flux2(root)


def _inputs(module, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c = module.config.in_channels
    x = torch.randn(1, c, 4, 4, generator=g)
    ref = torch.randn(1, c, 3, 2, generator=g)
    ctx = torch.randn(1, 7, module.config.joint_attention_dim, generator=g)
    return x, ref, ctx


def _full(module, x, ref, ctx, sigma: float) -> torch.Tensor:
    """The whole sequence with the reference at timestep 0, no cache."""
    hidden = torch.cat([_tokens(x), _tokens(ref)], dim=1)
    ids = torch.cat([_ids(0, 4, 4, "cpu"), _ids(10, 3, 2, "cpu")])
    txt_ids = torch.cartesian_prod(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]), torch.arange(7))
    with torch.no_grad():
        return _forward_zero_t(module, hidden, ctx, torch.tensor([sigma]), ids, txt_ids, None, 16)[:, :16]


_EXTRAS: dict = {}


def _entry(module, x, ref, ctx, sigma: float, **extra) -> torch.Tensor:
    """One conditioning entry's call; the same extras dict for the same reference, as in a sampling run."""
    entry = _EXTRAS.setdefault((id(ref), tuple(sorted(extra.items()))), {"reference_latents": [ref], **extra})
    with torch.no_grad():
        return _call_entry(module, x, torch.tensor(sigma), ctx, entry)


def test_timestep_zero_modulation_is_the_plain_forward_at_timestep_zero(flux2):
    module = flux2[1]["klein"]
    x, ref, ctx = _inputs(module)
    plain0 = _entry(module, x, ref, ctx, 0.0)
    assert torch.allclose(_entry(module, x, ref, ctx, 0.0, reference_latents_method="index_timestep_zero"), plain0,
                          atol=1e-6)
    plain = _entry(module, x, ref, ctx, 0.7)
    zero_t = _entry(module, x, ref, ctx, 0.7, reference_latents_method="index_timestep_zero")
    assert torch.allclose(zero_t, _full(module, x, ref, ctx, 0.7), atol=1e-6)
    assert (zero_t - plain).abs().max() > 1e-4  # the references' modulation reaches the image tokens
    # without references the method changes nothing
    assert torch.equal(_call_entry(module, x, torch.tensor(0.7), ctx, {"reference_latents_method": "index_timestep_zero"}),
                       _call_entry(module, x, torch.tensor(0.7), ctx, {}))


def test_recorded_keys_replay_exactly_at_the_state_they_came_from(flux2):
    module = flux2[1]["klein"]
    x, ref, ctx = _inputs(module)
    originals = [b.attn.processor for b in (*module.transformer_blocks, *module.single_transformer_blocks)]
    with ReferenceKVCache().installed(module):
        store = reference_kv.active(module)
        first = _entry(module, x, ref, ctx, 0.7)  # records: the whole sequence, references at timestep 0
        assert store.filled == 1 and store.replayed == 0
        (blocks,) = store.entries.values()
        assert len(blocks) == len(module.transformer_blocks) + len(module.single_transformer_blocks)
        assert blocks[("double", 0)][0].shape[1] == 6  # 3×2 reference tokens
        again = _entry(module, x, ref, ctx, 0.7)  # replays: image and text tokens only
        later = _entry(module, x + 0.3 * torch.randn_like(x), ref, ctx, 0.4)
        assert store.replayed == 2
    assert reference_kv.active(module) is None
    assert [b.attn.processor for b in (*module.transformer_blocks, *module.single_transformer_blocks)] == originals
    assert torch.allclose(first, _full(module, x, ref, ctx, 0.7), atol=1e-6)
    assert torch.allclose(again, first, atol=1e-5)  # same state: the replayed keys are the ones it would compute
    exact = _full(module, x + 0.3 * torch.randn_like(x), ref, ctx, 0.4)
    assert later.shape == exact.shape and torch.isfinite(later).all()


def test_replayed_keys_are_the_first_calls_not_recomputed(flux2):
    """At a later state the replayed call equals the full sequence whose references attend to the
    first call's keys — checked by recording at state A, replaying at B, and comparing with a second
    store that recorded at B (it must differ: the cache holds A's keys)."""
    module = flux2[1]["klein"]
    x, ref, ctx = _inputs(module)
    xb = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    with ReferenceKVCache().installed(module):
        _entry(module, x, ref, ctx, 0.9)
        from_a = _entry(module, xb, ref, ctx, 0.5)
    with ReferenceKVCache().installed(module):
        _entry(module, xb, ref, ctx, 0.5)
        from_b = _entry(module, xb, ref, ctx, 0.5)
    assert torch.allclose(from_b, _full(module, xb, ref, ctx, 0.5), atol=1e-5)
    assert (from_a - from_b).abs().max() > 1e-6
    assert (from_a - from_b).abs().max() < 0.5 * from_b.abs().max()  # an approximation, not another image


def test_entries_keep_their_own_records_and_an_explicit_method_wins(flux2):
    module = flux2[1]["klein"]
    x, ref, ctx = _inputs(module)
    other = torch.randn_like(ref)
    with ReferenceKVCache().installed(module):
        store = reference_kv.active(module)
        _entry(module, x, ref, ctx, 0.7)
        _entry(module, x, other, ctx, 0.7)
        assert store.filled == 2 and len(store.entries) == 2
        plain_index = _entry(module, x, torch.randn_like(ref), ctx, 0.7, reference_latents_method="index")
    assert torch.allclose(plain_index, plain_index)  # ran; the conditioning's own method is used as it is
    with pytest.raises(ValidationError, match="twice"):
        with ReferenceKVCache().installed(module), ReferenceKVCache().installed(module):
            pass
    assert reference_kv.active(module) is None


def _kv_template(steps: int, cfg: float = 1.0, cache: bool = True) -> dict:
    """image_flux2_klein_9b_kv_image_edit's wiring at tiny size: references on both conditionings,
    FluxKVCache between the loader and CFGGuider."""
    prompt = copy.deepcopy(FLUX2_KLEIN_EDIT_WORKFLOW)
    prompt["8"]["inputs"]["steps"] = steps
    prompt["6"]["inputs"]["cfg"] = cfg
    if cache:
        prompt["30"] = {"class_type": "FluxKVCache", "inputs": {"model": ["1", 0]}}
        prompt["6"]["inputs"]["model"] = ["30", 0]
    else:  # the same timestep-0 references, every step computed in full
        for side in ("18", "19"):
            prompt[f"3{side}"] = {"class_type": "FluxKontextMultiReferenceLatentMethod",
                                  "inputs": {"conditioning": [side, 0], "reference_latents_method": "index_timestep_zero"}}
        prompt["6"]["inputs"]["positive"], prompt["6"]["inputs"]["negative"] = ["318", 0], ["319", 0]
    return prompt


@pytest.fixture(scope="module")
def kv_runs(tmp_path_factory, flux2):
    from PIL import Image as PILImage
    from skimage import data

    models, _ = flux2
    base = tmp_path_factory.mktemp("engine")
    (base / "input").mkdir()
    PILImage.fromarray(data.astronaut()).resize((120, 90), PILImage.LANCZOS).save(base / "input" / "flux2_input.png")
    out = {}
    with engine_for(base, models) as engine:
        for name, prompt in {"cached": _kv_template(4), "full": _kv_template(4, cache=False),
                             "one_cached": _kv_template(1, 2.5), "one_full": _kv_template(1, 2.5, cache=False)}.items():
            out[name] = run_ok(engine, prompt)
    return out


def test_kv_template_runs_and_its_first_step_is_exact(kv_runs):
    # one step: only the recording call runs, for both CFG sides — equal to the uncached run
    assert torch.allclose(kv_runs["one_cached"].value("11")["samples"], kv_runs["one_full"].value("11")["samples"],
                          atol=1e-5)
    cached, full = kv_runs["cached"].value("11")["samples"], kv_runs["full"].value("11")["samples"]
    assert cached.shape == full.shape and torch.isfinite(cached).all()
    assert (cached - full).abs().max() > 0  # the later steps replay the first step's keys
    assert (cached - full).abs().mean() < 0.25 * full.abs().mean()
    image = kv_runs["cached"].value("12")
    assert image.shape[-1] == 3 and image.std() > 0.01


def test_kv_cache_refuses_other_families(tmp_path):
    from nodeloom.nodes.diffusion import NODE_CLASS_MAPPINGS as NODES

    class Sd:
        family = "sd15"

    with pytest.raises(ValidationError, match="Flux.2 model.*sd15"):
        NODES["FluxKVCache"]().execute(Sd())
    with pytest.raises(ValidationError, match="Flux.2 transformers"):
        with ReferenceKVCache().installed(torch.nn.Linear(2, 2)):
            pass


def test_declaration(image_engine):
    info = image_engine.object_info()["FluxKVCache"]
    assert info["display_name"] == "Flux KV Cache" and info["category"] == "" and info["experimental"]
    assert info["input_order"]["required"] == ["model"] and info["output"] == ["MODEL"]
