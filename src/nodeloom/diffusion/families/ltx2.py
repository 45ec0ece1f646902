"""LTX-2 (Lightricks): one flow transformer that denoises a video latent (128 channels, VAE 32×
in space, 8× in time) and an audio latent (8 channels × 16 mel bins) together, each stream
attending to the other, prompted through Gemma 3.

Files: the release's all-in-one checkpoint keeps the transformer under ComfyUI's
``model.diffusion_model.`` wrapper in the original layout (``patchify_proj``,
``audio_patchify_proj``, ``adaln_single``, ``av_ca_*``) beside the two text connectors
(``video_embeddings_connector``, ``audio_embeddings_connector``: small 1-D transformers with
learnable registers); diffusers' layout (``proj_in``, ``audio_proj_in``) loads too. Sizes come
from tensor shapes; head counts and the rest from ``data/families/ltx2.json`` (the 2.0 release).
LTX-2.3 files (gated attention, per-modality prompt projections) are refused with a message.

The MODEL's unet is :class:`LTX2AVModel` (transformer + connectors; LoRAs patch the transformer). The prompt reaches it as the
text encoder's projected Gemma features of the prompt's tokens (:mod:`nodeloom.diffusion.ltx2_text`);
the adapter pads them to ``max(1024, tokens)`` rounded up to the register count (the padding
replaced by the registers) and runs each connector, as LTX2Pipeline does for a prompt padded to
1024 tokens — once per prompt and run. Prompts of different lengths share one call (the sampler
end-pads them in the batch; each row's own length is masked here). The latent arrives packed (:mod:`nodeloom.diffusion.av_latent`); the transformer
takes ``1000·σ`` as its time (per token where a noise mask keeps frames) and predicts ComfyUI's
velocity on both streams. Imports no node, engine or adapter.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion.families import Family, family_config
from nodeloom.diffusion.flow import FluxSampling
from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["CONNECTOR_PREFIXES", "FAMILY", "LTX2AVModel", "connector_config", "connectors_to_release",
           "transformer_config", "transformer_to_release"]

_ORIGINAL = ("patchify_proj.weight", "audio_patchify_proj.weight", "av_ca_a2v_gate_adaln_single.linear.weight")
_DIFFUSERS = ("proj_in.weight", "audio_proj_in.weight", "av_cross_attn_video_a2v_gate.linear.weight")
#: the connectors' release prefixes → the module's attribute names
CONNECTOR_PREFIXES = {"video_embeddings_connector.": "video_connector.", "audio_embeddings_connector.": "audio_connector."}
_CONNECTOR_NAMES = (("transformer_1d_blocks.", "transformer_blocks."), (".q_norm.", ".norm_q."), (".k_norm.", ".norm_k."))
#: diffusers → release names of the transformer (the inverse of diffusers' single-file converter's)
_TRANSFORMER_NAMES = (
    ("audio_proj_in.", "audio_patchify_proj."), ("proj_in.", "patchify_proj."),
    ("audio_time_embed.", "audio_adaln_single."), ("time_embed.", "adaln_single."),
    ("av_cross_attn_video_scale_shift.", "av_ca_video_scale_shift_adaln_single."),
    ("av_cross_attn_video_a2v_gate.", "av_ca_a2v_gate_adaln_single."),
    ("av_cross_attn_audio_scale_shift.", "av_ca_audio_scale_shift_adaln_single."),
    ("av_cross_attn_audio_v2a_gate.", "av_ca_v2a_gate_adaln_single."),
)
_BLOCK_NAMES = (("video_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_video"),
                ("audio_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_audio"),
                (".norm_q.", ".q_norm."), (".norm_k.", ".k_norm."))


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    return all(k in shapes for k in _ORIGINAL) or all(k in shapes for k in _DIFFUSERS)


def _layers(shapes: dict[str, Any], pattern: str) -> int:
    found = {int(m.group(1)) for k in shapes if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _refuse_later(shapes: dict[str, tuple[int, ...]]) -> None:
    if any(".to_gate_logits." in k or k.startswith("prompt_adaln") for k in shapes):
        raise ValidationError("this is an LTX-2.3 model (gated attention, prompt modulation), which nodeloom cannot run"
                              " yet; the LTX-2.0 release runs", type="unsupported_model_variant",
                              extra_info={"variant": "ltx-2.3"})


def transformer_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``LTX2VideoTransformer3DModel`` config of a file's transformer, read from its shapes
    (diffusers' names)."""
    cfg = {k: v for k, v in family_config("ltx2").items() if not k.startswith("connector_")}
    inner, channels = shapes["proj_in.weight"]
    audio_inner, audio_channels = shapes["audio_proj_in.weight"]
    for width, heads, what in ((inner, cfg["num_attention_heads"], "video"),
                               (audio_inner, cfg["audio_num_attention_heads"], "audio")):
        if width % heads:
            raise ValidationError(f"an LTX-2 {what} stream of width {width} cannot have {heads} heads",
                                  type="invalid_model_file")
    cfg.update(in_channels=channels, out_channels=shapes["proj_out.weight"][0], cross_attention_dim=inner,
               attention_head_dim=inner // cfg["num_attention_heads"], audio_in_channels=audio_channels,
               audio_out_channels=shapes["audio_proj_out.weight"][0], audio_cross_attention_dim=audio_inner,
               audio_attention_head_dim=audio_inner // cfg["audio_num_attention_heads"],
               caption_channels=shapes["caption_projection.linear_1.weight"][1],
               num_layers=_layers(shapes, r"transformer_blocks\.(\d+)\."))
    return cfg


def connector_config(shapes: dict[str, tuple[int, ...]], prefix: str) -> dict[str, Any]:
    """The ``LTX2ConnectorTransformer1d`` arguments of one connector (module names, ``prefix`` included)."""
    base = family_config("ltx2")
    heads = int(base["connector_num_attention_heads"])
    registers, width = shapes[f"{prefix}learnable_registers"]
    if width % heads:
        raise ValidationError(f"an LTX-2 text connector of width {width} cannot have {heads} heads",
                              type="invalid_model_file")
    return {"num_attention_heads": heads, "attention_head_dim": width // heads,
            "num_layers": _layers(shapes, re.escape(prefix) + r"transformer_blocks\.(\d+)\."),
            "num_learnable_registers": registers, "rope_base_seq_len": int(base["connector_rope_base_seq_len"]),
            "rope_theta": float(base["rope_theta"]), "rope_double_precision": True, "rope_type": base["rope_type"]}


def _rename(key: str, pairs: Any) -> str:
    for old, new in pairs:
        key = key.replace(old, new)
    return key


def connectors_to_release(sd: dict[str, Any]) -> dict[str, Any]:
    """Connector weights of an :class:`LTX2AVModel` (``video_connector.``/``audio_connector.``) in
    the release's names."""
    back = {v: k for k, v in CONNECTOR_PREFIXES.items()}
    out = {}
    for key, value in sd.items():
        prefix = next(p for p in back if key.startswith(p))
        out[back[prefix] + _rename(key[len(prefix):], [(n, o) for o, n in _CONNECTOR_NAMES])] = value
    return out


def transformer_to_release(sd: dict[str, Any]) -> dict[str, Any]:
    """Diffusers-named transformer weights in the release's names (no wrapper prefix)."""
    out = {}
    for key, value in sd.items():
        for old, new in _TRANSFORMER_NAMES:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[_rename(key, _BLOCK_NAMES) if key.startswith("transformer_blocks.") else key] = value
    return out


def _module_class() -> Any:
    torch = require("torch", "diffusion")

    class _LTX2AVModel(torch.nn.Module):  # built lazily: importing the registry must not import torch
        def __init__(self, transformer: Any, video_connector: Any, audio_connector: Any) -> None:
            super().__init__()
            self.transformer, self.video_connector, self.audio_connector = transformer, video_connector, audio_connector
            #: the connectors' outputs of the last few prompt tensors (a run's contexts do not change
            #: between steps): id → (weak reference, dtype, device, (video, audio))
            self.prompt_cache: dict[int, tuple[Any, Any, Any, Any]] = {}

        @property
        def config(self) -> Any:
            return self.transformer.config

        # LoRAs (LoraLoaderModelOnly) patch the transformer: its PEFT adapters and their configs
        def load_lora_adapter(self, *args: Any, **kwargs: Any) -> Any:
            return self.transformer.load_lora_adapter(*args, **kwargs)

        @property
        def peft_config(self) -> Any:
            return getattr(self.transformer, "peft_config", None)

        @peft_config.setter
        def peft_config(self, value: Any) -> None:
            self.transformer.peft_config = value

    return _LTX2AVModel


def LTX2AVModel(transformer: Any, video_connector: Any, audio_connector: Any) -> Any:  # noqa: N802 - a factory
    """The LTX-2 MODEL's module: the AV transformer and its two text connectors (one ``nn.Module``,
    so the model manager moves them together)."""
    return _module_class()(transformer, video_connector, audio_connector)


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    from diffusers.pipelines.ltx2.connectors import LTX2ConnectorTransformer1d

    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    _refuse_later(shapes)
    connectors: dict[str, Any] = {}
    weights: dict[str, Any] = {}
    for key, value in sd.items():
        prefix = next((p for p in CONNECTOR_PREFIXES if key.startswith(p)), None)
        if prefix is not None:
            connectors[CONNECTOR_PREFIXES[prefix] + _rename(key[len(prefix):], _CONNECTOR_NAMES)] = value
        elif key.startswith(tuple(CONNECTOR_PREFIXES.values())):  # already the module's names
            connectors[key] = value
        else:
            weights[key] = value
    if "patchify_proj.weight" in shapes:
        from diffusers.loaders.single_file_utils import convert_ltx2_transformer_to_diffusers

        weights = convert_ltx2_transformer_to_diffusers(weights)
    cfg = transformer_config({k: tuple(v.shape) for k, v in weights.items()})
    transformer = diffusers.LTX2VideoTransformer3DModel.from_config(cfg)
    missing, unexpected = transformer.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValidationError(f"the LTX-2 transformer weights do not fit the model their shapes describe ({len(missing)}"
                              f" missing, {len(unexpected)} unexpected, e.g. `{(missing or unexpected)[0]}`)",
                              type="invalid_model_file")
    parts = []
    cshapes = {k: tuple(v.shape) for k, v in connectors.items()}
    for prefix in CONNECTOR_PREFIXES.values():
        if f"{prefix}learnable_registers" not in cshapes:
            raise ValidationError(f"the LTX-2 model file has no `{prefix.replace('_connector.', '_embeddings_connector')}`"
                                  " weights (its text connectors); load the release's all-in-one checkpoint",
                                  type="invalid_model_file")
        module = LTX2ConnectorTransformer1d(**connector_config(cshapes, prefix))
        own = {k[len(prefix):]: v for k, v in connectors.items() if k.startswith(prefix)}
        missing, unexpected = module.load_state_dict(own, strict=False)
        if missing or unexpected:
            raise ValidationError(f"the LTX-2 `{prefix[:-1]}` weights do not fit ({len(missing)} missing, "
                                  f"{len(unexpected)} unexpected)", type="invalid_model_file")
        parts.append(module)
    model = LTX2AVModel(transformer, *parts)
    return (model.to(dtype) if dtype is not None else model).eval()


def _frame_rate(group: ModelCall) -> float:
    for entry in group.entries:
        if "frame_rate" in entry.extra:
            return float(entry.extra["frame_rate"])
    return 25.0


def _prompt(module: Any, context: Any, lengths: list[int]) -> tuple[Any, Any]:
    """(video, audio) prompt states: each row's projected features (its first ``lengths[i]``
    tokens; the rest is batch padding) padded with the registers and run through each connector;
    kept for the next steps while ``context`` lives."""
    import weakref

    hit = module.prompt_cache.get(id(context))
    if hit is not None and hit[0]() is context and hit[1] == context.dtype and hit[2] == context.device:
        return hit[3]
    states = _run_connectors(module, context, lengths)
    if len(module.prompt_cache) >= 4:
        module.prompt_cache.clear()
    module.prompt_cache[id(context)] = (weakref.ref(context), context.dtype, context.device, states)
    return states


def _run_connectors(module: Any, context: Any, lengths: list[int]) -> tuple[Any, Any]:
    torch = require("torch", "diffusion")
    n, tokens, width = context.shape
    registers = int(module.video_connector.num_learnable_registers)
    length = math.ceil(max(int(family_config("ltx2")["connector_min_tokens"]), tokens) / registers) * registers
    padded = torch.cat([context, context.new_zeros(n, length - tokens, width)], dim=1)
    mask = torch.zeros(n, 1, 1, length, dtype=context.dtype, device=context.device)
    for row, real in enumerate(lengths):
        mask[row, ..., real:] = -torch.finfo(context.dtype).max
    video, _ = module.video_connector(padded, mask)
    audio, _ = module.audio_connector(padded, mask)
    return video, audio


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall, mask: Any = None, shapes: Any = None) -> Any:
    """Call the AV transformer on a packed ``[B, 1, N]`` joint latent; returns the packed velocity.
    With a noise ``mask`` each token's time is ``1000·σ·mask`` (frames kept as given read as clean)."""
    from nodeloom.diffusion.av_latent import pack, unpack

    if shapes is None or len(shapes) != 2:
        raise ValidationError("the LTX-2 audio-video model denoises a joint latent: join the video and audio latents "
                              "with LTXVConcatAVLatent before sampling")
    rate = _frame_rate(group)
    if rate <= 0:
        raise ValidationError(f"`frame_rate` must be above 0 for LTX-2, got {rate}")
    video, audio = unpack(x, shapes)
    n, _, frames, height, width = video.shape
    t = (sigma * 1000.0).to(x.dtype).reshape(1).expand(n)
    t_video = t_audio = t
    if mask is not None:
        m_video, m_audio = unpack(mask.repeat(n // mask.shape[0], 1, 1).to(x.dtype), shapes)
        t_video = m_video[:, 0].flatten(1) * t[:, None]
        t_audio = m_audio[:, 0, :, 0] * t[:, None]
    transformer = module.transformer
    context = group.context.to(x.dtype)
    per = context.shape[0] // len(group.entries)  # rows per entry; batched entries are end-padded
    lengths = [int(e.context.shape[1]) for e in group.entries for _ in range(per)]
    video_prompt, audio_prompt = _prompt(module, context, lengths)
    out_video, out_audio = transformer(
        hidden_states=video.flatten(2).transpose(1, 2), audio_hidden_states=audio.transpose(1, 2).flatten(2),
        encoder_hidden_states=video_prompt, audio_encoder_hidden_states=audio_prompt,
        timestep=t_video, audio_timestep=t_audio, sigma=t, num_frames=frames, height=height, width=width,
        fps=rate, audio_num_frames=audio.shape[2], use_cross_timestep=True, return_dict=False)
    v_video = out_video.float().transpose(1, 2).reshape(video.shape)
    v_audio = out_audio.float().unflatten(2, (audio.shape[1], audio.shape[3])).transpose(1, 2)
    return pack([v_video, v_audio])[0]


FAMILY = Family(
    name="ltx2", title="LTX-2", matches=_matches, load=_load, adapter=_adapter,
    sampling=lambda module: FluxSampling(shift=2.37),
    latent_scale=1.0, latent_shift=0.0, latent_channels=128,
    signature=_ORIGINAL, video_mask=True, joint_latent=True,
)
