"""Tiny random-weight Stable Diffusion models for tests: SD 1.x, SD 1.x inpainting, SDXL, ControlNet, LoRA.

Each builder makes real diffusers/transformers modules from small configs (seeded), and the
savers write them the way users have them: one ``.safetensors`` in the original SD key layout
(so the real single-file loading path runs) or a diffusers folder. Any pack's tests may import
these; the signatures are kept stable. Shapes follow each family's conventions (norm groups of
32, CLIP BPE vocabulary of 49408, head rules), so the loader infers exactly these configs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_API_WORKFLOW",
    "KINDS",
    "build_tiny_checkpoint",
    "build_tiny_controlnet",
    "build_tiny_lora",
    "build_tiny_loha",
    "build_tiny_lokr",
    "save_diffusers_folder",
    "save_single_file",
    "tiny_components",
    "tiny_controlnet",
]

#: kinds of tiny checkpoints: SD 1.x, SD 1.x inpainting (9-channel UNet), SD 2.x, SDXL.
KINDS = ("sd1", "sd1_inpaint", "sd2", "sdxl")

_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 32, 32), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            norm_num_groups=32, sample_size=64)
_CLIP_L = dict(hidden_size=32, intermediate_size=37, num_attention_heads=1, num_hidden_layers=2, vocab_size=49408,
               max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=32, layer_norm_eps=1e-5,
               bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
_CLIP_G = dict(_CLIP_L, hidden_size=64, hidden_act="gelu", projection_dim=32)
_CLIP_H = dict(_CLIP_L, hidden_size=64, hidden_act="gelu", projection_dim=64)


#: ComfyUI's default text-to-image graph in API format (node ids, inputs and values as ComfyUI ships it).
DEFAULT_API_WORKFLOW: dict[str, Any] = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 156680208700286, "steps": 20, "cfg": 8.0, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {
        "text": "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}


def _unet_config(kind: str) -> dict[str, Any]:
    if kind == "sdxl":
        return dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 32, 64), layers_per_block=1,
                    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"), transformer_layers_per_block=(1, 1, 1),
                    attention_head_dim=(1, 1, 1), cross_attention_dim=96, norm_num_groups=32, use_linear_projection=True,
                    addition_embed_type="text_time", addition_time_embed_dim=8,
                    projection_class_embeddings_input_dim=32 + 6 * 8)
    if kind == "sd2":
        return dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 32, 64), layers_per_block=1,
                    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"), attention_head_dim=(1, 1, 1),
                    cross_attention_dim=64, norm_num_groups=32, use_linear_projection=True)
    # attention only at the coarsest level keeps a 512x512 (64x64 latent) run cheap on a CPU
    return dict(sample_size=8, in_channels=9 if kind == "sd1_inpaint" else 4, out_channels=4,
                block_out_channels=(32, 32, 64), layers_per_block=1,
                down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"), attention_head_dim=8,
                cross_attention_dim=32, norm_num_groups=32)


def tiny_components(kind: str = "sd1", seed: int = 0) -> dict[str, Any]:
    """Build the modules of a tiny checkpoint.

    Args:
        kind: one of :data:`KINDS`.
        seed: seeds the random initialisation.

    Returns:
        ``{"kind", "unet", "vae", "text_encoder"[, "text_encoder_2"]}`` (eval mode, float32, CPU).
    """
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}")
    torch.manual_seed(seed)
    parts: dict[str, Any] = {"kind": kind}
    parts["unet"] = UNet2DConditionModel(**_unet_config(kind)).eval()
    parts["vae"] = AutoencoderKL(**_VAE).eval()
    parts["text_encoder"] = CLIPTextModel(CLIPTextConfig(**(_CLIP_H if kind == "sd2" else _CLIP_L))).eval()
    if kind == "sdxl":
        parts["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig(**_CLIP_G)).eval()
    return parts


def _ldm_state_dict(parts: dict[str, Any]) -> dict[str, Any]:
    from nodeloom.diffusion.ldm_export import clip_to_ldm, open_clip_to_ldm, unet_to_ldm, vae_to_ldm

    sd: dict[str, Any] = {}
    sd.update(unet_to_ldm(parts["unet"].state_dict(), parts["unet"].config))
    sd.update(vae_to_ldm(parts["vae"].state_dict(), parts["vae"].config))
    if parts["kind"] == "sdxl":
        sd.update(clip_to_ldm(parts["text_encoder"].state_dict(), "conditioner.embedders.0.transformer."))
        sd.update(open_clip_to_ldm(parts["text_encoder_2"].state_dict(), "conditioner.embedders.1.model."))
    elif parts["kind"] == "sd2":
        sd.update(open_clip_to_ldm(parts["text_encoder"].state_dict(), "cond_stage_model.model."))
    else:
        sd.update(clip_to_ldm(parts["text_encoder"].state_dict(), "cond_stage_model.transformer."))
    return {k: v.detach().contiguous().clone() for k, v in sd.items()}


def save_single_file(parts: dict[str, Any], path: str | Path) -> Path:
    """Save ``parts`` as one ``.safetensors`` in the original SD/LDM key layout."""
    from safetensors.torch import save_file

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    save_file(_ldm_state_dict(parts), str(p))
    return p


def save_diffusers_folder(parts: dict[str, Any], path: str | Path) -> Path:
    """Save ``parts`` as a diffusers repository folder (with tokenizer and scheduler configs)."""
    from diffusers import EulerDiscreteScheduler

    from nodeloom.diffusion.tokenizer import write_tokenizer_files

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0"}
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if name in parts:
            parts[name].save_pretrained(str(root / name), safe_serialization=True)
            lib = "transformers" if name.startswith("text") else "diffusers"
            index[name] = [lib, type(parts[name]).__name__]
    for name in ("tokenizer", "tokenizer_2") if "text_encoder_2" in parts else ("tokenizer",):
        write_tokenizer_files(root / name)
        index[name] = ["transformers", "CLIPTokenizer"]
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    sched.save_pretrained(str(root / "scheduler"))
    index["scheduler"] = ["diffusers", "EulerDiscreteScheduler"]
    if parts["kind"] == "sdxl":
        index["_class_name"] = "StableDiffusionXLPipeline"
    (root / "model_index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    return root


def build_tiny_checkpoint(models_dir: str | Path, kind: str = "sd1", fmt: str = "safetensors",
                          name: str | None = None, seed: int = 0) -> str:
    """Build a tiny checkpoint into ``<models_dir>/checkpoints`` and return its ``ckpt_name``.

    Args:
        models_dir: the engine's models folder.
        kind: one of :data:`KINDS`.
        fmt: ``"safetensors"`` (single file, SD layout) or ``"diffusers"`` (folder).
        name: file/folder name (default ``tiny_<kind>.safetensors`` / ``tiny_<kind>``).
        seed: seeds the weights.
    """
    parts = tiny_components(kind, seed)
    folder = Path(models_dir) / "checkpoints"
    if fmt == "safetensors":
        name = name or f"tiny_{kind}.safetensors"
        save_single_file(parts, folder / name)
    elif fmt == "diffusers":
        name = name or f"tiny_{kind}"
        save_diffusers_folder(parts, folder / name)
    else:
        raise ValueError(f"`fmt` must be 'safetensors' or 'diffusers', got {fmt!r}")
    return name


def tiny_controlnet(unet: Any, seed: int = 0) -> Any:
    """A ControlNet shaped like ``unet`` with every weight random (zero-convs included, so it acts)."""
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 16, 16, 16))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    return net.eval()


def build_tiny_controlnet(models_dir: str | Path, kind: str = "sd1", name: str | None = None, seed: int = 1,
                          fmt: str = "diffusers") -> str:
    """Save a tiny random ControlNet under ``<models_dir>/controlnet``; returns its ``control_net_name``.

    Args:
        fmt: ``"diffusers"`` (folder, default name ``tiny_controlnet``) or ``"safetensors"`` (one file in
            the original ``control_model.*`` layout, default ``tiny_controlnet.safetensors``).
    """
    from safetensors.torch import save_file

    from nodeloom.diffusion.ldm_export import controlnet_to_ldm

    net = tiny_controlnet(tiny_components(kind, 0)["unet"], seed)
    folder = Path(models_dir) / "controlnet"
    if fmt == "diffusers":
        name = name or "tiny_controlnet"
        net.save_pretrained(str(folder / name), safe_serialization=True)
    elif fmt == "safetensors":
        name = name or "tiny_controlnet.safetensors"
        folder.mkdir(parents=True, exist_ok=True)
        ldm = controlnet_to_ldm(net.state_dict(), net.config)
        save_file({k: v.detach().contiguous().clone() for k, v in ldm.items()}, str(folder / name))
    else:
        raise ValueError(f"`fmt` must be 'diffusers' or 'safetensors', got {fmt!r}")
    return name


def build_tiny_lora(models_dir: str | Path, kind: str = "sd1", name: str = "tiny_lora.safetensors",
                    rank: int = 4, seed: int = 2, text_encoder: bool = True) -> str:
    """Save a tiny random LoRA in kohya's format (``lora_unet_*`` / ``lora_te_*``) under ``<models_dir>/loras``.

    Returns:
        The ``lora_name``.
    """
    import torch
    from safetensors.torch import save_file

    parts = tiny_components(kind, 0)
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, Any] = {}

    def add(prefix: str, module_name: str, module: Any) -> None:
        key = prefix + module_name.replace(".", "_")
        out_f, in_f = module.weight.shape[:2]
        sd[key + ".lora_down.weight"] = torch.randn(rank, in_f, generator=gen) * 0.3
        sd[key + ".lora_up.weight"] = torch.randn(out_f, rank, generator=gen) * 0.3
        sd[key + ".alpha"] = torch.tensor(float(rank))

    for mname, module in parts["unet"].named_modules():
        if mname.endswith(("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn2.to_q", "attn2.to_out.0")):
            add("lora_unet_", mname, module)
    if text_encoder:
        for mname, module in parts["text_encoder"].named_modules():
            if mname.endswith(("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj")):
                body = mname if mname.startswith("text_model.") else "text_model." + mname
                add("lora_te_", body, module)
    path = Path(models_dir) / "loras" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))
    return name


def build_tiny_loha(models_dir: str | Path, kind: str = "sd1", name: str = "tiny_loha.safetensors", rank: int = 2,
                    seed: int = 3, tucker_conv: bool = False) -> str:
    """Save a tiny random LyCORIS LoHa (kohya names, ``hada_w1_a``…) under ``<models_dir>/loras``; returns its name.

    With ``tucker_conv`` the first ResNet's 3×3 ``conv1`` gets a Tucker-decomposed pair too
    (cores ``hada_t1``/``hada_t2`` with ``hada_w*_a`` of shape (rank, out), ``hada_w*_b`` (rank, in)).
    """
    import torch
    from safetensors.torch import save_file

    parts = tiny_components(kind, 0)
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, Any] = {}
    for mname, module in parts["unet"].named_modules():
        if mname.endswith(("attn1.to_q", "attn2.to_v", "proj_in")):
            key = "lora_unet_" + mname.replace(".", "_")
            out_f, in_f = module.weight.shape[0], module.weight[0].numel()
            for w in ("w1", "w2"):
                sd[f"{key}.hada_{w}_a"] = torch.randn(out_f, rank, generator=gen) * 0.5
                sd[f"{key}.hada_{w}_b"] = torch.randn(rank, in_f, generator=gen) * 0.5
            sd[f"{key}.alpha"] = torch.tensor(float(rank))
        if tucker_conv and mname.endswith("down_blocks.0.resnets.0.conv1"):
            key = "lora_unet_" + mname.replace(".", "_")
            out_c, in_c, kh, kw = module.weight.shape
            for w, t in (("w1", "t1"), ("w2", "t2")):
                sd[f"{key}.hada_{t}"] = torch.randn(rank, rank, kh, kw, generator=gen) * 0.5
                sd[f"{key}.hada_{w}_a"] = torch.randn(rank, out_c, generator=gen) * 0.5
                sd[f"{key}.hada_{w}_b"] = torch.randn(rank, in_c, generator=gen) * 0.5
            sd[f"{key}.alpha"] = torch.tensor(1.0)
    path = Path(models_dir) / "loras" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))
    return name


def _split(n: int) -> tuple[int, int]:
    """n = a·b with a the largest divisor not above √n (LyCORIS-style factor sizes)."""
    a = max(d for d in range(1, int(n ** 0.5) + 1) if n % d == 0)
    return a, n // a


def build_tiny_lokr(models_dir: str | Path, kind: str = "sd1", name: str = "tiny_lokr.safetensors", rank: int = 2,
                    seed: int = 4) -> str:
    """Save a tiny random LyCORIS LoKr under ``<models_dir>/loras``; returns its name.

    It holds the three layouts LyCORIS writes: attention projections with a full ``lokr_w1`` and a
    decomposed ``lokr_w2_a``/``lokr_w2_b`` (alpha 1, so scale 1/rank); cross-attention keys with
    both factors full (no alpha, scale 1); and 3×3 ResNet convolutions with a Tucker core
    ``lokr_t2`` (alpha = rank).
    """
    import torch
    from safetensors.torch import save_file

    parts = tiny_components(kind, 0)
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, Any] = {}

    def randn(*shape: int) -> Any:
        return torch.randn(*shape, generator=gen) * 0.3

    for mname, module in parts["unet"].named_modules():
        key = "lora_unet_" + mname.replace(".", "_")
        if mname.endswith("attn1.to_q") or mname.endswith("attn2.to_k") or mname.endswith("resnets.0.conv1"):
            (a, b), (c, d) = _split(module.weight.shape[0]), _split(module.weight.shape[1])
            sd[f"{key}.lokr_w1"] = randn(a, c)
        if mname.endswith("attn1.to_q"):
            sd[f"{key}.lokr_w2_a"], sd[f"{key}.lokr_w2_b"] = randn(b, rank), randn(rank, d)
            sd[f"{key}.alpha"] = torch.tensor(1.0)
        elif mname.endswith("attn2.to_k"):
            sd[f"{key}.lokr_w2"] = randn(b, d)
        elif mname.endswith("resnets.0.conv1"):
            kh, kw = module.weight.shape[2:]
            sd[f"{key}.lokr_t2"] = randn(rank, rank, kh, kw)
            sd[f"{key}.lokr_w2_a"], sd[f"{key}.lokr_w2_b"] = randn(rank, b), randn(rank, d)
            sd[f"{key}.alpha"] = torch.tensor(float(rank))
    path = Path(models_dir) / "loras" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))
    return name
