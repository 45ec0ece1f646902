"""LTXVDualCFGGuider on tiny LTX-2 weights: each stream of the joint latent guided at its own scale
(the video as CFGGuider at ``video_cfg``, the audio as CFGGuider at ``audio_cfg``), equal scales
exactly CFGGuider, a latent that is not a joint one guided at ``video_cfg``; the declaration as the
official LTX-2.5 templates use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.stream_cfg import StreamCfg, stream_cfg_for
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.custom_sampling import CFGGuider, NoiseSource, SamplerChoice, SamplerCustomAdvanced
from nodeloom.nodes.diffusion.ltx2_nodes import LTXVConcatAVLatent, LTXVDualCFGGuider
from nodeloom.testing.tiny_ltx2 import build_tiny_ltx2_av

SIGMAS = torch.tensor([1.0, 0.6, 0.0])


@pytest.fixture(scope="module")
def av(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, list, list]:
    from nodeloom.diffusion.split_models import load_diffusion_model, model_value

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    parts = build_tiny_ltx2_av(root)
    module, family = load_diffusion_model(root / "diffusion_models" / parts["unet"])
    gen = torch.Generator().manual_seed(1)
    pos = [[torch.randn(1, 5, 60, generator=gen), {"frame_rate": 25.0}]]
    neg = [[torch.randn(1, 3, 60, generator=gen), {"frame_rate": 25.0}]]
    return model_value(module, family, parts["unet"]), pos, neg


def _joint() -> dict:
    video = {"samples": torch.zeros(1, 128, 2, 2, 2)}
    audio = {"samples": torch.zeros(1, 8, 9, 16), "type": "audio"}
    return LTXVConcatAVLatent.execute(video, audio)[0]


def _sample(guider: object, latent: dict, sigmas: torch.Tensor = SIGMAS, sampler: str = "euler") -> list[torch.Tensor]:
    out, _ = SamplerCustomAdvanced.execute(NoiseSource(7), guider, SamplerChoice(sampler), sigmas, latent)
    samples = out["samples"]
    return list(samples.unbind()) if hasattr(samples, "unbind") and not isinstance(samples, torch.Tensor) else [samples]


def test_each_stream_is_guided_at_its_own_scale(av: tuple) -> None:
    """One euler step: the video equals CFGGuider's at video_cfg, the audio CFGGuider's at audio_cfg;
    over two steps (the streams then feed each other through the model) the result differs from both."""
    model, pos, neg = av
    dual = LTXVDualCFGGuider.execute(model, pos, neg, 2.0, 6.0)[0]
    one_step = SIGMAS[1:]
    video, audio = _sample(dual, _joint(), one_step)
    at_video = _sample(CFGGuider.execute(model, pos, neg, 2.0)[0], _joint(), one_step)
    at_audio = _sample(CFGGuider.execute(model, pos, neg, 6.0)[0], _joint(), one_step)
    assert torch.equal(video, at_video[0]) and torch.equal(audio, at_audio[1])
    assert not torch.allclose(at_video[1], at_audio[1])  # the scales do change the audio

    # by hand: the denoised estimate at σ is uncond + (cond − uncond)·scale per stream (euler to σ=0
    # returns it), from the cond and uncond estimates (BasicGuider-style runs on each conditioning)
    from nodeloom.nodes.diffusion.custom_sampling import BasicGuider

    cond = _sample(BasicGuider.execute(model, pos)[0], _joint(), one_step)
    uncond = _sample(BasicGuider.execute(model, neg)[0], _joint(), one_step)
    assert torch.allclose(video, uncond[0] + (cond[0] - uncond[0]) * 2.0, atol=1e-5)
    assert torch.allclose(audio, uncond[1] + (cond[1] - uncond[1]) * 6.0, atol=1e-5)

    two = _sample(dual, _joint())
    assert not torch.equal(two[0], _sample(CFGGuider.execute(model, pos, neg, 2.0)[0], _joint())[0])


def test_equal_scales_are_cfg_guider_exactly(av: tuple) -> None:
    model, pos, neg = av
    for scale in (1.0, 3.5):
        dual = _sample(LTXVDualCFGGuider.execute(model, pos, neg, scale, scale)[0], _joint(), sampler="euler_ancestral")
        plain = _sample(CFGGuider.execute(model, pos, neg, scale)[0], _joint(), sampler="euler_ancestral")
        assert all(torch.equal(a, b) for a, b in zip(dual, plain))


def test_a_latent_that_is_not_joint_uses_video_cfg(diffusion_services: object) -> None:
    """SD 1.x on a plain latent: video_cfg is the scale, audio_cfg is not read."""
    from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
    from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple

    model, clip, _ = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    pos, neg = CLIPTextEncode.execute("a lighthouse at dusk", clip)[0], CLIPTextEncode.execute("blurry", clip)[0]
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    sigmas = torch.tensor([14.6, 3.0, 0.0])
    dual = _sample(LTXVDualCFGGuider.execute(model, pos, neg, 4.0, 9.0)[0], latent, sigmas)[0]
    assert torch.equal(dual, _sample(CFGGuider.execute(model, pos, neg, 4.0)[0], latent, sigmas)[0])
    assert not torch.equal(dual, _sample(CFGGuider.execute(model, pos, neg, 9.0)[0], latent, sigmas)[0])


def test_stream_cfg_rules() -> None:
    shapes = [torch.Size([1, 2, 3]), torch.Size([1, 4])]
    assert stream_cfg_for((3.0, 3.0), shapes) is None
    assert stream_cfg_for((3.0, 3.0 + 1e-9), shapes) is None
    assert stream_cfg_for((3.0, 7.0), None) is None
    rule = stream_cfg_for((3.0, 7.0), shapes)
    assert rule == StreamCfg(((3.0, 6), (7.0, 4)))
    assert rule.needs_uncond() and not StreamCfg(((1.0, 6), (1.0, 4))).needs_uncond()
    cond, uncond = torch.ones(2, 1, 10), torch.zeros(2, 1, 10)
    calls = []

    def cfg_fn(c: torch.Tensor, u: torch.Tensor, s: float) -> torch.Tensor:
        calls.append(s)
        return u + (c - u) * s

    out = rule.combine(cond, uncond, cfg_fn)
    assert calls == [3.0, 7.0]
    assert torch.equal(out[..., :6], torch.full((2, 1, 6), 3.0))
    assert torch.equal(out[..., 6:], torch.full((2, 1, 4), 7.0))


def test_declaration_and_bad_input(av: tuple) -> None:
    schema = LTXVDualCFGGuider.SCHEMA
    assert schema.node_id == "LTXVDualCFGGuider" and schema.display_name == "LTXV Dual CFG Guider"
    assert [i.name for i in schema.inputs] == ["model", "positive", "negative", "video_cfg", "audio_cfg"]
    floats = {i.name: i for i in schema.inputs[3:]}
    assert (floats["video_cfg"].default, floats["audio_cfg"].default) == (3.0, 7.0)
    assert all((i.min, i.max) == (0.0, 100.0) for i in floats.values())
    assert [(o.io_type, o.name) for o in schema.outputs] == [("GUIDER", "GUIDER")]
    model, pos, _ = av
    with pytest.raises(ValidationError, match="`negative`"):
        LTXVDualCFGGuider.execute(model, pos, [], 3.0, 7.0)


def test_templates_widget_values_fit_the_declaration() -> None:
    """The LTX-2.5 templates set (video_cfg, audio_cfg) as widgets, in that order, after model,
    positive and negative links."""
    from comfyui_workflow_templates_json import templates  # type: ignore[import-not-found]

    folder = Path(list(templates.__path__)[0])
    if not (folder / "video_ltx2_5_t2v.json").exists():
        pytest.skip("the official templates are not installed")
    data = json.loads((folder / "video_ltx2_5_t2v.json").read_text())
    nodes = list(data.get("nodes", []))
    for sub in data.get("definitions", {}).get("subgraphs", []):
        nodes += sub.get("nodes", [])
    found = [n for n in nodes if n.get("type") == "LTXVDualCFGGuider"]
    assert found
    for node in found:
        assert [i["name"] for i in node["inputs"]][:3] == ["model", "positive", "negative"]
        assert len(node["widgets_values"]) == 2
        assert node["outputs"][0]["type"] == "GUIDER"


def test_in_the_ltx2_template_graph(tmp_path: Path) -> None:
    """The LTX-2 text-to-video template's first stage with its CFGGuider swapped for LTXVDualCFGGuider,
    as the LTX-2.5 templates wire it: equal scales give CFGGuider's latents exactly, a larger audio
    scale changes the audio and writes the MP4 as well."""
    from nodeloom.testing.tiny_ltx2 import ltx2_t2v_workflow
    from tests.nodes.diffusion.family_helpers import engine_for, run_ok

    root = tmp_path / "models"
    parts = build_tiny_ltx2_av(root)
    prompt = ltx2_t2v_workflow(parts)
    guider = prompt["47"]["inputs"]

    def streams(node: dict) -> list[torch.Tensor]:
        prompt["47"] = node
        result = run_ok(engine, prompt)
        return [result.value("80", 0)["samples"], result.value("80", 1)["samples"]]

    with engine_for(tmp_path / "base", root) as engine:
        plain = streams({"class_type": "CFGGuider", "inputs": dict(guider, cfg=3.0)})
        inputs = {k: guider[k] for k in ("model", "positive", "negative")}
        same = streams({"class_type": "LTXVDualCFGGuider", "inputs": dict(inputs, video_cfg=3.0, audio_cfg=3.0)})
        louder = streams({"class_type": "LTXVDualCFGGuider", "inputs": dict(inputs, video_cfg=3.0, audio_cfg=6.0)})
    assert all(torch.equal(a, b) for a, b in zip(same, plain))
    assert not torch.allclose(louder[1], plain[1])
