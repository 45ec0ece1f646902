"""LTX-2's audio-video nodes with ComfyUI's names and inputs: LTXAVTextEncoderLoader (Gemma 3
and the checkpoint's feature projection as a CLIP), LTXVConcatAVLatent and LTXVSeparateAVLatent
(a video and an audio latent joined into one LATENT the samplers step together, and split again),
and LTXVDualCFGGuider (a CFG scale per stream of that latent). Model code is
:mod:`nodeloom.diffusion.ltx2_text`, :mod:`nodeloom.diffusion.av_latent` and
:mod:`nodeloom.diffusion.stream_cfg`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nodeloom.diffusion.av_latent import NestedLatent, fit_audio, is_nested
from nodeloom.diffusion.ltx2_text import PROJECTION_KEY, LTXAVClip, load_gemma3
from nodeloom.diffusion.single_file import load_weights, read_header
from nodeloom.diffusion.text_encoders import find_tokenizer
from nodeloom.errors import ValidationError, require
from nodeloom.node_api import IO, Combo, Conditioning, Float, Latent, Model, Node, Output, Schema, model_key, services
from nodeloom.nodes.diffusion._common import file_list
from nodeloom.nodes.diffusion.custom_sampling import GUIDER, Guider

__all__ = ["LTXAVTextEncoderLoader", "LTXVConcatAVLatent", "LTXVDualCFGGuider", "LTXVSeparateAVLatent"]


def _projection(path: Path) -> Any:
    """The checkpoint's ``text_embedding_projection`` as a bias-free ``nn.Linear``."""
    header = read_header(path)
    if PROJECTION_KEY not in header.shapes:
        raise ValidationError(f"`{path.name}` holds no LTX-2 text feature projection (`{PROJECTION_KEY}`): choose the "
                              "LTX-2 checkpoint as `ckpt_name`", type="invalid_model_file",
                              extra_info={"name": path.name})
    weight = load_weights(path, dtype=torch.float32, prefix="")[PROJECTION_KEY]
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        linear.weight.copy_(weight)
    return linear.eval()


def _load_clip(encoder_path: Path, ckpt_path: Path, tokenizer_folders: list[Path]) -> LTXAVClip:
    transformers = require("transformers", "diffusion")
    projection = _projection(ckpt_path)
    tok_dir = find_tokenizer("gemma3", tokenizer_folders, encoder_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    encoder = load_gemma3(load_weights(encoder_path, dtype=torch.float32, prefix=""), encoder_path.name)
    return LTXAVClip(encoder, projection, tokenizer)


def _full_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """An audio noise mask as a new float tensor of the audio latent's full shape."""
    m = mask.float()
    while m.ndim < like.ndim:
        m = m.unsqueeze(1)
    try:
        return m.expand(like.shape).clone()
    except RuntimeError as exc:
        raise ValidationError(f"LTXVConcatAVLatent: the audio `noise_mask` {tuple(mask.shape)} does not fit the audio "
                              f"latent {tuple(like.shape)}") from exc


class LTXAVTextEncoderLoader(Node):
    """Loads LTX-2's text encoder: Gemma 3 from models/text_encoders and the feature projection
    stored in the LTX-2 checkpoint."""

    SCHEMA = Schema(
        "LTXAVTextEncoderLoader", display_name="LTXV Audio Text Encoder Loader", category="advanced/loaders",
        inputs=[Combo("text_encoder", file_list("text_encoders"), tooltip="The Gemma 3 text encoder file."),
                Combo("ckpt_name", file_list("checkpoints"), tooltip="The LTX-2 checkpoint holding the text projection."),
                Combo("device", ["default", "cpu"], default="default", optional=True, advanced=True,
                      tooltip="Where the text encoder runs: default (the engine's device) or cpu.")],
        outputs=[Output(IO.CLIP, "CLIP")],
    )

    @classmethod
    def execute(cls, text_encoder: str, ckpt_name: str, device: str = "default") -> tuple[Any, ...]:
        svc = services()
        encoder_path = Path(svc.paths.get_full_path("text_encoders", text_encoder))
        ckpt_path = Path(svc.paths.get_full_path("checkpoints", ckpt_name))
        folders = [Path(p) for p in svc.paths.model_folders("tokenizers")]
        clip = svc.models.load(model_key(encoder_path, "ltxav-text-encoder", str(ckpt_path)),
                               lambda: _load_clip(encoder_path, ckpt_path, folders))
        return (clip.clone(cpu_only=True) if device == "cpu" else clip,)


class LTXVConcatAVLatent(Node):
    """Joins a video latent and an audio latent into one audio-video latent (for LTX-2). When the
    video latent is already joint, its video is kept and its audio replaced."""

    SCHEMA = Schema(
        "LTXVConcatAVLatent", display_name="LTXVConcatAVLatent", category="latent/video/ltxv",
        inputs=[Latent("video_latent", tooltip="The video latent (or a joint one whose audio is replaced)."),
                Latent("audio_latent", tooltip="The audio latent; trimmed or zero-padded to the joint latent's length.")],
        outputs=[Output(IO.LATENT, "latent")],
    )

    @classmethod
    def execute(cls, video_latent: dict[str, Any], audio_latent: dict[str, Any]) -> tuple[Any, ...]:
        video, audio = video_latent["samples"], audio_latent["samples"]
        if is_nested(audio):
            raise ValidationError("LTXVConcatAVLatent: `audio_latent` is already a joint audio-video latent")
        video_mask, audio_mask = video_latent.get("noise_mask"), audio_latent.get("noise_mask")
        if audio_mask is not None:
            audio_mask = _full_mask(audio_mask, audio)
        if is_nested(video):
            streams = video.unbind()
            masks = video_mask.unbind() if is_nested(video_mask) else (video_mask, None)
            video, video_mask = streams[0], masks[0]
            audio, pad = fit_audio(audio, streams[1])
            if audio_mask is not None:  # trimmed alike; a padded tail is generated (mask 1)
                audio_mask = fit_audio(audio_mask, streams[1])[0]
                if pad:
                    audio_mask.narrow(2, audio_mask.shape[2] - pad, pad).fill_(1.0)
        if video.ndim != 5 or audio.ndim != 4:
            raise ValidationError(f"LTXVConcatAVLatent: expected a video latent [B,C,F,H,W] and an audio latent [B,C,L,M],"
                                  f" got {tuple(video.shape)} and {tuple(audio.shape)}")
        if video.shape[0] != audio.shape[0]:
            raise ValidationError(f"LTXVConcatAVLatent: the video latent's batch ({video.shape[0]}) and the audio "
                                  f"latent's ({audio.shape[0]}) differ")
        out: dict[str, Any] = {"samples": NestedLatent((video, audio))}
        if video_mask is not None or audio_mask is not None:
            vm = video_mask if video_mask is not None else torch.ones_like(video[:, :1])
            am = audio_mask if audio_mask is not None else torch.ones_like(audio)
            out["noise_mask"] = NestedLatent((vm, am))
        return (out,)


class LTXVSeparateAVLatent(Node):
    """Splits an audio-video latent into its video latent and its audio latent."""

    SCHEMA = Schema(
        "LTXVSeparateAVLatent", display_name="LTXVSeparateAVLatent", category="latent/video/ltxv",
        inputs=[Latent("av_latent", tooltip="The joint audio-video latent.")],
        outputs=[Output(IO.LATENT, "video_latent"), Output(IO.LATENT, "audio_latent")],
    )

    @classmethod
    def execute(cls, av_latent: dict[str, Any]) -> tuple[Any, ...]:
        samples = av_latent["samples"]
        if not is_nested(samples) or len(samples.unbind()) < 2:
            raise ValidationError("LTXVSeparateAVLatent: `av_latent` is not a joint audio-video latent (join one with "
                                  "LTXVConcatAVLatent)")
        video, audio = samples.unbind()[:2]
        video_out: dict[str, Any] = {k: v for k, v in av_latent.items() if k not in ("samples", "noise_mask")}
        audio_out: dict[str, Any] = {"samples": audio, "type": "audio"}
        video_out["samples"] = video
        mask = av_latent.get("noise_mask")
        if mask is not None:
            masks = mask.unbind() if is_nested(mask) else (mask, None)
            video_out["noise_mask"] = masks[0]
            if len(masks) > 1 and masks[1] is not None:
                audio_out["noise_mask"] = masks[1]
        return video_out, audio_out


def _scale(name: str, default: float, stream: str) -> Float:
    return Float(name, default, min=0.0, max=100.0, step=0.1, round=0.01,
                 tooltip=f"Classifier-free guidance scale of the {stream} stream of the latent.")


class LTXVDualCFGGuider(Node):
    """Classifier-free guidance with separate scales for the video and the audio of an LTX-2
    audio-video latent. Equal scales, or a latent that is not a joint one (then `video_cfg` alone),
    guide exactly as CFGGuider does."""

    SCHEMA = Schema(
        "LTXVDualCFGGuider", display_name="LTXV Dual CFG Guider", category="sampling/custom_sampling/guiders",
        inputs=[Model("model", tooltip="The model used for denoising."),
                Conditioning("positive", tooltip="The conditioning describing what to include."),
                Conditioning("negative", tooltip="The conditioning describing what to exclude."),
                _scale("video_cfg", 3.0, "video"),
                _scale("audio_cfg", 7.0, "audio")],
        outputs=[Output(GUIDER, "GUIDER")],
    )

    @classmethod
    def execute(cls, model: Any, positive: list[Any], negative: list[Any], video_cfg: float,
                audio_cfg: float) -> tuple[Any, ...]:
        if not negative:
            raise ValidationError("LTXVDualCFGGuider: `negative` must hold at least one conditioning")
        return (Guider(model, positive, negative, float(video_cfg), stream_cfg=(float(video_cfg), float(audio_cfg))),)
