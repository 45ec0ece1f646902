"""Video-latent nodes: frames replaced at the right indices, start frames normalised to the
reference statistics, SeedVR2 chunk → merge round trips with Hann cross-fades, and the Kandinsky 5
and SeedVR2 templates' wiring through the engine."""

from __future__ import annotations

import pytest
import torch

from nodeloom.core.registry import PackInfo
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.video_latent_nodes import (
    NormalizeVideoLatentStart,
    ReplaceVideoLatentFrames,
    SeedVR2TemporalChunk,
    SeedVR2TemporalMerge,
    auto_frames_per_chunk,
)
from nodeloom.ops.video_latent import chunk_bounds, hann_ramp, merge_temporal_chunks
from tests.nodes.conftest import run_prompt


def _latent(frames, channels=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"samples": torch.randn(1, channels, frames, 4, 6, generator=g)}


def _frames_marked(frames, offset=0.0):
    """A latent whose frame t holds the value t + offset everywhere."""
    values = torch.arange(frames, dtype=torch.float32) + offset
    return {"samples": values.view(1, 1, frames, 1, 1).expand(2, 3, frames, 2, 2).clone()}


# ------------------------------------------------------------------ ReplaceVideoLatentFrames

def test_replace_puts_source_frames_at_index():
    dest, src = _frames_marked(8), _frames_marked(3, offset=100.0)
    (out,) = ReplaceVideoLatentFrames.execute(dest, 2, source=src)
    assert out["samples"][0, 0, :, 0, 0].tolist() == [0, 1, 100, 101, 102, 5, 6, 7]
    assert dest["samples"][0, 0, 2, 0, 0] == 2  # the input is not touched


def test_replace_negative_index_counts_from_the_end():
    dest, src = _frames_marked(8), _frames_marked(2, offset=50.0)
    (out,) = ReplaceVideoLatentFrames.execute(dest, -2, source=src)
    assert out["samples"][0, 0, :, 0, 0].tolist() == [0, 1, 2, 3, 4, 5, 50, 51]


def test_replace_result_carries_the_source_entries_and_passes_through_without_source():
    dest = {**_frames_marked(4), "batch_index": [0, 1]}
    source = {**_frames_marked(1, 9.0), "batch_index": [5, 6]}
    (out,) = ReplaceVideoLatentFrames.execute(dest, 0, source=source)
    assert out["batch_index"] == [5, 6] and out["samples"][0, 0, :, 0, 0].tolist() == [9, 1, 2, 3]
    assert ReplaceVideoLatentFrames.execute(dest, 0)[0] is dest


@pytest.mark.parametrize("index", [3, 8, -1, -9])
def test_replace_that_does_not_fit_returns_destination_unchanged(index, caplog):
    dest = _frames_marked(8)
    (out,) = ReplaceVideoLatentFrames.execute(dest, index, source=_frames_marked(6, 10.0))
    assert out is dest
    assert "do not fit" in caplog.text


def test_replace_refuses_mismatched_latents():
    with pytest.raises(ValidationError, match="must match `destination`"):
        ReplaceVideoLatentFrames.execute(_latent(8), 0, source=_latent(2, channels=4))
    with pytest.raises(ValidationError, match="`destination` must be a video LATENT"):
        ReplaceVideoLatentFrames.execute({"samples": torch.zeros(1, 4, 8, 8)}, 0, source=_latent(2))


# ------------------------------------------------------------------ NormalizeVideoLatentStart

def test_normalize_gives_each_start_frame_the_reference_statistics():
    g = torch.Generator().manual_seed(1)
    samples = torch.randn(2, 3, 12, 8, 8, generator=g) * 0.8 + 0.1
    samples[:, :, :4] = samples[:, :, :4] * 1.3 - 0.1  # a start a little off, within the pull limits
    (out,) = NormalizeVideoLatentStart.execute({"samples": samples}, 4, 5)
    start, ref = out["samples"][:, :, :4], samples[:, :, 4:9]
    frame_dims = (1, 3, 4)  # each frame's statistics over channels and pixels
    assert torch.allclose(start.mean(dim=frame_dims), torch.full((2, 4), float(ref.mean())), atol=1e-5)
    assert torch.allclose(start.std(dim=frame_dims), torch.full((2, 4), float(ref.std())), atol=1e-4)
    assert torch.equal(out["samples"][:, :, 4:], samples[:, :, 4:])  # the rest is untouched
    # each frame keeps its pattern: an affine map of the original
    flat_in, flat_out = samples[0, :, 0].flatten(), start[0, :, 0].flatten()
    assert torch.corrcoef(torch.stack([flat_in, flat_out]))[0, 1] > 0.9999


def test_normalize_moves_statistics_only_so_far():
    samples = torch.randn(1, 2, 8, 4, 4, generator=torch.Generator().manual_seed(4))
    samples[:, :, 2:] += 5.0  # the reference sits far above the start
    (out,) = NormalizeVideoLatentStart.execute({"samples": samples}, 2, 5)
    before = samples[:, :, :2].mean(dim=(1, 3, 4))
    after = out["samples"][:, :, :2].mean(dim=(1, 3, 4))
    assert torch.allclose(after - before, torch.full_like(before, 0.35), atol=1e-5)  # capped at +0.35


def test_normalize_reference_is_capped_and_one_frame_passes():
    samples = torch.randn(1, 2, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    (out,) = NormalizeVideoLatentStart.execute({"samples": samples}, 1, 50)  # uses frames 1..2
    ref = samples[:, :, 1:3]
    assert float(out["samples"][:, :, :1].mean()) == pytest.approx(float(ref.mean()), abs=1e-5)
    single = {"samples": torch.randn(1, 2, 1, 4, 4)}
    assert NormalizeVideoLatentStart.execute(single, 4, 5)[0] is single
    with pytest.raises(ValidationError, match="`start_frame_count` \\(3\\) leaves no reference frame"):
        NormalizeVideoLatentStart.execute({"samples": samples}, 3, 5)


def test_kandinsky_template_tail_runs(image_engine):
    """video_kandinsky5_i2v: the sampled latent gets the conditioning latent's first frame back
    (ReplaceVideoLatentFrames, index 0), then NormalizeVideoLatentStart (4, 5)."""
    sampled = torch.randn(1, 16, 10, 4, 4, generator=torch.Generator().manual_seed(3))
    cond = torch.full((1, 16, 1, 4, 4), 7.0)
    prompt = {
        "s": {"class_type": "TestTensor", "inputs": {"key": "sampled"}},
        "c": {"class_type": "TestTensor", "inputs": {"key": "cond"}},
        "64": {"class_type": "ReplaceVideoLatentFrames",
               "inputs": {"destination": ["s", 0], "source": ["c", 0], "index": 0}},
        "69": {"class_type": "NormalizeVideoLatentStart",
               "inputs": {"latent": ["64", 0], "start_frame_count": 4, "reference_frame_count": 5}},
    }
    result = run_prompt(image_engine, prompt, {"sampled": {"samples": sampled}, "cond": {"samples": cond}},
                        sinks=[["64", 0], ["69", 0]])
    assert result.ok, result.errors
    assert torch.all(result.value("64", 0)["samples"][:, :, 0] == 7.0)
    normalized = result.value("69", 0)["samples"]
    assert torch.allclose(normalized[:, :, 1:4].mean(dim=(1, 3, 4)), sampled[:, :, 4:9].mean().expand(1, 3), atol=1e-4)


# ------------------------------------------------------------------ SeedVR2 chunk / merge

def _chunk(latent, temporal_overlap, chunking_mode, frames_per_chunk):
    """A manual split with the dynamic combo's option as the engine passes it."""
    return SeedVR2TemporalChunk.execute(latent, temporal_overlap=temporal_overlap, chunking_mode=chunking_mode,
                                        **{"chunking_mode.frames_per_chunk": frames_per_chunk})


def test_chunk_bounds_and_hann_ramp():
    assert chunk_bounds(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    assert chunk_bounds(11, 4, 1) == [(0, 4), (3, 7), (6, 10), (9, 11)]
    assert chunk_bounds(3, 4, 2) == [(0, 3)]
    # the earlier chunk's weight: flat 1, a Hann fade over the middle third, flat 0
    assert hann_ramp(7).tolist() == pytest.approx([1, 1, 1, 0.5, 0, 0, 0], abs=1e-6)
    assert hann_ramp(10).tolist()[:3] == pytest.approx([1, 1, 1]) and hann_ramp(10).tolist()[-3:] == pytest.approx([0, 0, 0])
    ramp = hann_ramp(10)
    assert torch.all(ramp[1:] <= ramp[:-1])


def test_manual_chunks_overlap_and_merge_back_exactly():
    latent = _latent(11)  # 41 pixel frames
    chunks, overlap = _chunk(latent, 2, "manual", 17)
    assert overlap == 2 and [c["samples"].shape[2] for c in chunks] == [5, 5, 5]
    assert torch.equal(chunks[1]["samples"], latent["samples"][:, :, 3:8])
    (merged,) = SeedVR2TemporalMerge.execute(chunks, [overlap])
    assert torch.allclose(merged["samples"], latent["samples"], atol=1e-6)


def test_merge_cross_fades_each_overlap():
    a = torch.zeros(1, 16, 6, 2, 2)
    b = torch.ones(1, 16, 6, 2, 2)
    merged = merge_temporal_chunks([a, b], 3)
    assert merged.shape[2] == 9
    assert merged[0, 0, :, 0, 0].tolist() == pytest.approx([0, 0, 0, 0, 0.5, 1, 1, 1, 1])
    plain = merge_temporal_chunks([a[:, :, :4], b[:, :, :4]], 0)
    assert plain.shape[2] == 8 and plain[0, 0, :, 0, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    # a last chunk as long as the overlap is all cross-fade; a shorter one is refused
    short = merge_temporal_chunks([a, b[:, :, :3]], 3)
    assert short[0, 0, :, 0, 0].tolist() == pytest.approx([0, 0, 0, 0, 0.5, 1])
    with pytest.raises(ValidationError, match="the last chunk has 2 frames, fewer than the 3"):
        merge_temporal_chunks([a, b[:, :, :2]], 3)


def test_overlap_is_capped_below_the_chunk_and_short_latents_stay_whole():
    latent = _latent(9)
    chunks, overlap = _chunk(latent, 10, "manual", 9)
    assert overlap == 2 and all(c["samples"].shape[2] <= 3 for c in chunks)
    assert torch.allclose(SeedVR2TemporalMerge.execute(chunks, [overlap])[0]["samples"], latent["samples"], atol=1e-6)
    whole, zero = _chunk(latent, 3, "manual", 33)
    assert whole == [latent] and zero == 0


def test_auto_chunking_follows_free_memory(monkeypatch):
    import nodeloom.nodes.diffusion.video_latent_nodes as mod

    gib = 1024**3
    # a 1920x1080 frame is 135x240 latent pixels, 2.07 Mpx: 0.55 GiB/Mpx -> 1.14 GiB per latent frame
    assert auto_frames_per_chunk(1, 135, 240, 100, int((8.5 + 2.2 + 1.14 * 6 + 0.1) * gib)) == 21
    assert auto_frames_per_chunk(1, 135, 240, 100, 4 * gib) == 1  # below the reserve: one latent frame
    assert auto_frames_per_chunk(1, 135, 240, 3, 80 * gib) == 9   # never more than the clip
    monkeypatch.setattr(mod, "_free_bytes", lambda: int((8.5 + 2.2 + 0.55 * 4 * 6 * 64 / 1e6 * 3) * gib) + 1000)
    chunks, overlap = SeedVR2TemporalChunk.execute(_latent(8), temporal_overlap=1, chunking_mode="auto")
    assert overlap == 1 and [c["samples"].shape[2] for c in chunks] == [3, 3, 3, 2]


def test_chunk_and_merge_refuse_bad_input():
    with pytest.raises(ValidationError, match="SeedVR2 latent with 16 channels"):
        SeedVR2TemporalChunk.execute(_latent(8, channels=4), temporal_overlap=0, chunking_mode="auto")
    with pytest.raises(ValidationError, match="4n\\+1"):
        _chunk(_latent(8), 0, "manual", 8)
    chunks, overlap = _chunk(_latent(11), 1, "manual", 13)
    with pytest.raises(ValidationError, match="only the last chunk may differ"):
        SeedVR2TemporalMerge.execute([chunks[0], chunks[-1], chunks[0]], [overlap])
    with pytest.raises(ValidationError, match="differs from `latents\\[0\\]`"):
        SeedVR2TemporalMerge.execute([chunks[0], _latent(4, channels=8)], [overlap])
    with pytest.raises(ValidationError, match="`temporal_overlap` must be ≥ 0"):
        SeedVR2TemporalMerge.execute(chunks, [-1])
    with pytest.raises(ValidationError, match="`temporal_overlap` must be ≥ 0"):
        SeedVR2TemporalChunk.execute(_latent(8), temporal_overlap=-1, chunking_mode="auto")


class DoubleLatent:
    """Test stand-in for the sampler: doubles a latent and counts its calls."""

    calls = 0

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "run"

    def run(self, samples):
        DoubleLatent.calls += 1
        return ({**samples, "samples": samples["samples"] * 2.0},)


def test_seedvr2_template_chunks_sample_one_by_one_and_merge(image_engine):
    """utility_seedvr2: Split SeedVR2 Latent → a per-chunk node (a stand-in for the sampler, called
    once per chunk) → Merge SeedVR2 Latents."""
    if image_engine.registry.get("TestDoubleLatent") is None:
        image_engine.registry.register_pack(PackInfo("testing-latent", __name__), {"TestDoubleLatent": DoubleLatent})
    DoubleLatent.calls = 0
    latent = _latent(11)
    prompt = {
        "enc": {"class_type": "TestTensor", "inputs": {"key": "latent"}},
        "99": {"class_type": "SeedVR2TemporalChunk",
               "inputs": {"latent": ["enc", 0], "temporal_overlap": 1, "chunking_mode": "manual",
                          "chunking_mode.frames_per_chunk": 13}},
        "54": {"class_type": "TestDoubleLatent", "inputs": {"samples": ["99", 0]}},
        "100": {"class_type": "SeedVR2TemporalMerge", "inputs": {"latents": ["54", 0], "temporal_overlap": ["99", 1]}},
    }
    result = run_prompt(image_engine, prompt, {"latent": latent}, sinks=[["100", 0]])
    assert result.ok, result.errors
    assert DoubleLatent.calls == 4  # 11 latent frames in chunks of 4 overlapping by 1
    merged = result.value("100", 0)["samples"]
    assert merged.shape == latent["samples"].shape
    assert torch.allclose(merged, latent["samples"] * 2.0, atol=1e-5)


def test_declarations(image_engine):
    info = image_engine.object_info()
    chunk = info["SeedVR2TemporalChunk"]
    assert chunk["display_name"] == "Split SeedVR2 Latent" and chunk["category"] == "model/latent/batch"
    assert chunk["input_order"]["required"] == ["latent", "temporal_overlap", "chunking_mode"]
    assert chunk["output"] == ["LATENT", "INT"] and chunk["output_is_list"] == [True, False]
    mode = chunk["input"]["required"]["chunking_mode"]
    assert mode[0] == "COMFY_DYNAMICCOMBO_V3" and [o["key"] for o in mode[1]["options"]] == ["auto", "manual"]
    assert mode[1]["options"][1]["inputs"]["required"]["frames_per_chunk"][1]["default"] == 21
    merge = info["SeedVR2TemporalMerge"]
    assert merge["display_name"] == "Merge SeedVR2 Latents" and SeedVR2TemporalMerge.INPUT_IS_LIST is True
    assert merge["input"]["required"]["temporal_overlap"][1]["forceInput"] is True
    replace = info["ReplaceVideoLatentFrames"]
    assert replace["input_order"] == {"required": ["destination", "index"], "optional": ["source"]}
    assert replace["category"] == "latent/batch" and replace["output_name"] == ["LATENT"]
    assert info["NormalizeVideoLatentStart"]["output_name"] == ["latent"]
