"""CLIPAttentionMultiply: a tiny SD 1.x CLIP and a tiny Qwen3 encoder give the same prompt states
patched as with their self-attention weights scaled by hand, neutral factors change nothing, the
weights are put back, T5 is left alone (ComfyUI's names reach none of its weights), chained nodes
multiply, clones keep the patch, and nested CLIP values (Flux: CLIP-L in a ClipModel, T5) are
searched for every encoder."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from nodeloom.diffusion.clip_attention_multiply import MultipliedClip, clip_modules
from nodeloom.diffusion.models import ClipModel
from nodeloom.diffusion.text_encoders import FluxClip, LlmClip
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.attention_multiply_nodes import CLIPAttentionMultiply
from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple

PROMPT = "a lighthouse at dusk"


def _by_hand(modules: list[torch.nn.Module], scales: dict[str, float], run: Any) -> Any:
    """``run()`` with the parameters whose names end with a key scaled by its value, then restored."""
    saved = []
    with torch.no_grad():
        for module in modules:
            for name, param in module.named_parameters():
                for suffix, factor in scales.items():
                    if name.endswith(suffix):
                        saved.append((param, param.detach().clone()))
                        param.mul_(factor)
    try:
        return run()
    finally:
        with torch.no_grad():
            for param, original in saved:
                param.copy_(original)


def _state(modules: list[torch.nn.Module]) -> list[dict[str, torch.Tensor]]:
    return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]


def test_sd1_clip_equals_its_weights_scaled_by_hand(diffusion_services: Any) -> None:
    _, clip, _ = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    encode = lambda c: CLIPTextEncode.execute(PROMPT, c)[0][0]  # noqa: E731
    modules = clip_modules(clip)
    assert len(modules) == 1 and modules[0] is clip.encoders[0]
    before = _state(modules)
    plain_cond = encode(clip)
    neutral = encode(CLIPAttentionMultiply.execute(clip, 1.0, 1.0, 1.0, 1.0)[0])
    assert torch.equal(neutral[0], plain_cond[0]) and torch.equal(neutral[1]["pooled_output"],
                                                                   plain_cond[1]["pooled_output"])
    patched = CLIPAttentionMultiply.execute(clip, 1.3, 0.8, 0.7, 1.2)[0]
    got = encode(patched)
    scales = {f"self_attn.{p}.{kind}": f for p, f in (("q_proj", 1.3), ("k_proj", 0.8), ("v_proj", 0.7),
                                                     ("out_proj", 1.2)) for kind in ("weight", "bias")}
    want = _by_hand(modules, scales, lambda: encode(clip))
    assert (got[0] - plain_cond[0]).abs().max() > 1e-4
    assert torch.allclose(got[0], want[0], atol=1e-6)
    assert torch.allclose(got[1]["pooled_output"], want[1]["pooled_output"], atol=1e-6)
    assert all(torch.equal(a[k], b[k]) for a, b in zip(before, _state(modules)) for k in a)  # weights put back
    assert torch.equal(encode(clip)[0], plain_cond[0])  # the source CLIP carries no patch
    # chained nodes multiply; a clone (CLIPSetLastLayer, LoraLoader) keeps the patch
    twice = CLIPAttentionMultiply.execute(CLIPAttentionMultiply.execute(clip, 1.1, 1.0, 1.0, 1.0)[0],
                                          1.2, 1.0, 1.0, 1.0)[0]
    assert isinstance(twice, MultipliedClip) and len(twice.patches) == 2
    assert torch.allclose(encode(twice)[0], _by_hand(modules, {"self_attn.q_proj.weight": 1.32,
                                                               "self_attn.q_proj.bias": 1.32},
                                                     lambda: encode(clip))[0], atol=1e-5)
    layered = patched.clone(layer=-2)
    assert isinstance(layered, MultipliedClip) and layered.layer == -2 and layered.family == clip.family
    assert torch.allclose(encode(layered)[0], _by_hand(modules, scales, lambda: encode(clip.clone(layer=-2)))[0],
                          atol=1e-6)


def _qwen3() -> Any:
    import transformers

    from nodeloom.testing.tiny_lm import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    cfg = transformers.Qwen3Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    return LlmClip(transformers.Qwen3Model(cfg).eval(), tok, "z_image", template="{}")


def test_llm_encoder_scales_q_k_v_and_has_no_out_proj() -> None:
    clip = _qwen3()
    modules = clip_modules(clip)
    before = _state(modules)
    plain = clip.encode(PROMPT)[0]
    got = CLIPAttentionMultiply.execute(clip, 1.4, 0.9, 0.6, 1.0)[0].encode(PROMPT)[0]
    want = _by_hand(modules, {"self_attn.q_proj.weight": 1.4, "self_attn.k_proj.weight": 0.9,
                              "self_attn.v_proj.weight": 0.6}, lambda: clip.encode(PROMPT))[0]
    assert (got - plain).abs().max() > 1e-4 and torch.allclose(got, want, atol=1e-6)
    # Llama-style attention names its output projection o_proj: ComfyUI's `out` rule matches none
    assert torch.equal(CLIPAttentionMultiply.execute(clip, 1.0, 1.0, 1.0, 3.0)[0].encode(PROMPT)[0], plain)
    assert all(torch.equal(a[k], b[k]) for a, b in zip(before, _state(modules)) for k in a)


def test_t5_is_unchanged_and_nested_clips_are_searched() -> None:
    import transformers

    from nodeloom.testing.tiny_lm import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    t5 = transformers.T5EncoderModel(transformers.T5Config(vocab_size=len(tok), d_model=16, d_ff=32, num_layers=1,
                                                           num_heads=2, d_kv=8)).eval()
    t5_clip = LlmClip(t5, tok, "t5", hidden_layer=-1)
    plain = t5_clip.encode(PROMPT)[0]
    assert torch.equal(CLIPAttentionMultiply.execute(t5_clip, 2.0, 2.0, 2.0, 2.0)[0].encode(PROMPT)[0], plain)
    clip_l = torch.nn.Linear(2, 2)
    flux = FluxClip(clip_l=ClipModel(encoders=(clip_l,), family="sd1"), t5=t5, tokenizer=tok)
    assert {id(m) for m in clip_modules(flux)} == {id(clip_l), id(t5)}
    assert {id(m) for m in clip_modules(MultipliedClip(flux, ()))} == {id(clip_l), id(t5)}


def test_t5_tokenizer_options_reach_a_patched_clip() -> None:
    from nodeloom.nodes.diffusion.t5_options import T5TokenizerOptions

    flux = FluxClip(clip_l=ClipModel(encoders=(torch.nn.Linear(2, 2),), family="sd1"), t5=torch.nn.Linear(2, 2),
                    tokenizer=None)
    patched = CLIPAttentionMultiply.execute(flux, 1.1, 1.0, 1.0, 1.0)[0]
    out = T5TokenizerOptions.execute(patched, 3, 64)[0]
    assert isinstance(out, MultipliedClip) and (out.min_padding, out.min_length) == (3, 64)


def test_declaration_follows_comfyui_and_bad_input_is_named() -> None:
    schema = CLIPAttentionMultiply.SCHEMA
    assert (schema.node_id, schema.category) == ("CLIPAttentionMultiply", "_for_testing/attention_experiments")
    assert [i.name for i in schema.inputs] == ["clip", "q", "k", "v", "out"]
    for factor in schema.inputs[1:]:
        assert (factor.default, factor.min, factor.max, factor.step) == (1.0, 0.0, 10.0, 0.01)
    assert all(i.tooltip for i in schema.inputs)
    assert [(o.io_type, o.name) for o in schema.outputs] == [("CLIP", "CLIP")]
    with pytest.raises(ValidationError, match="`clip` must be a CLIP"):
        CLIPAttentionMultiply.execute(None, 1.0, 1.0, 1.0, 1.0)


def test_object_info_equals_comfyui_module_loaded_through_the_compat_layer(tmp_path: Any) -> None:
    """ComfyUI's own ``nodes_attention_multiply`` (a V3 module) declares the node as ours does, tooltips
    and description aside. Needs a local git copy of ComfyUI (``COMFY_MIRROR``)."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    from nodeloom import Engine

    mirror = os.environ.get("COMFY_MIRROR")
    if not mirror or shutil.which("git") is None or not Path(mirror).exists():
        pytest.skip("no local git copy of the ComfyUI repository (set COMFY_MIRROR)")
    folder = tmp_path / "custom_nodes"
    folder.mkdir()
    text = subprocess.run(["git", "-C", mirror, "show", "HEAD:comfy_extras/nodes_attention_multiply.py"],
                          check=True, capture_output=True, text=True).stdout
    (folder / "nodes_attention_multiply.py").write_text(text)

    def strip(entry: dict[str, Any]) -> dict[str, Any]:
        inputs = {name: [spec[0], {k: v for k, v in spec[1].items() if k != "tooltip"}]
                  for name, spec in entry["input"]["required"].items()}
        keys = ("output", "output_name", "output_is_list", "category", "display_name", "experimental", "output_node")
        return {"inputs": inputs, **{k: entry.get(k) for k in keys}}

    with Engine(base_dir=tmp_path / "a", builtin_packs=False, custom_nodes_dirs=[folder]) as theirs, \
            Engine(base_dir=tmp_path / "b", load_custom_nodes=False) as ours:
        assert strip(theirs.object_info("CLIPAttentionMultiply")["CLIPAttentionMultiply"]) == \
            strip(ours.object_info("CLIPAttentionMultiply")["CLIPAttentionMultiply"])


def test_a_flux_clip_patches_its_clip_l_and_leaves_t5(diffusion_services: Any) -> None:
    """A CLIP value holding another (Flux: CLIP-L in a ClipModel, T5 beside it): the pooled vector
    (CLIP-L) equals the hand-scaled one, the T5 states are unchanged."""
    import transformers

    from nodeloom.testing.tiny_lm import build_tiny_tokenizer

    _, sd1, _ = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    t5 = transformers.T5EncoderModel(transformers.T5Config(vocab_size=len(tok), d_model=16, d_ff=32, num_layers=1,
                                                           num_heads=2, d_kv=8)).eval()
    flux = FluxClip(clip_l=sd1, t5=t5, tokenizer=tok, min_length=8)
    states, pooled = flux.encode(PROMPT)
    got_states, got_pooled = CLIPAttentionMultiply.execute(flux, 1.2, 1.0, 0.8, 1.1)[0].encode(PROMPT)
    scales = {"self_attn.q_proj.weight": 1.2, "self_attn.q_proj.bias": 1.2, "self_attn.v_proj.weight": 0.8,
              "self_attn.v_proj.bias": 0.8, "self_attn.out_proj.weight": 1.1, "self_attn.out_proj.bias": 1.1}
    _, want_pooled = _by_hand(clip_modules(flux), scales, lambda: flux.encode(PROMPT))
    assert torch.equal(got_states, states)
    assert (got_pooled - pooled).abs().max() > 1e-4 and torch.allclose(got_pooled, want_pooled, atol=1e-6)
