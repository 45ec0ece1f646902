"""The KSampler contract: seeded noise, sigma schedules, classifier-free guidance, masks, ControlNet.

:func:`sample` (KSampler, KSamplerAdvanced and other packs) turns a scheduler name into sigmas and
calls :func:`sample_sigmas` (also the custom-sampling nodes' entry point), which builds a
``denoise(x, sigma)`` function around the UNet — input scaling, fractional timesteps, CFG over the
positive/negative conditioning lists (each entry acting within its timestep range, and over its
area and mask: :mod:`~nodeloom.diffusion.regions`), inpainting
channels, noise-mask blending, ControlNet residuals, LoRA adapters — and walks the chosen sampler
over the sigmas. Noise is drawn as ComfyUI draws it: the initial noise from a CPU generator seeded
with ``seed`` (:func:`prepare_noise`), stochastic steps from a second generator seeded alike
(:func:`step_noise`), or for the SDE samplers from a Brownian tree (:func:`brownian_noise`).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from nodeloom.diffusion.av_latent import NestedLatent, is_nested, nested_noise, pack, pack_mask, unpack
from nodeloom.diffusion.cfg_patches import cfg_at
from nodeloom.diffusion.controlnet import control_residuals, controls_for_uncond, prepare_controls
from nodeloom.diffusion.dual_cfg import DualCfg
from nodeloom.diffusion.fast_path import unet_forward
from nodeloom.diffusion.flow import accelerator_dtype, noise_scaling, scale_of_noise
from nodeloom.diffusion.flow_samplers import flow_sampler
from nodeloom.diffusion.lora import lora_active
from nodeloom.diffusion.block_patches import output_blocks_patched
from nodeloom.diffusion.models import DiffusionModel, check_model_options
from nodeloom.diffusion.regions import Region, combine, has_area, is_regional, pair_areas, resolve
from nodeloom.diffusion.samplers import BROWNIAN, CFG_PP, DISCARD_PENULTIMATE, SAMPLERS
from nodeloom.diffusion.schedules import denoise_sigmas
from nodeloom.diffusion.stream_cfg import StreamCfg, stream_cfg_for
from nodeloom.diffusion.unclip import apply_unclip
from nodeloom.errors import ValidationError, require
from nodeloom.models.offload import compute_param

__all__ = ["CondEntry", "ModelCall", "apply_cfg_patches", "brownian_noise", "guided_estimate", "prepare_noise", "sample", "sample_sigmas",
           "sampler_sigmas", "step_noise"]

StepCallback = Callable[[int, int, torch.Tensor], None]


def _generator(seed: int, device: Any = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)


def prepare_noise(latent: torch.Tensor, seed: int, batch_index: list[int] | None = None) -> torch.Tensor:
    """The initial noise, as ComfyUI draws it: a CPU generator seeded with ``seed``, float32.

    With ``batch_index`` (latents cut from a larger batch) each item gets the noise it would
    have had in the full batch. A joint audio–video latent gets a :class:`NestedLatent` of noise,
    each stream drawn in turn from the one generator (video first).
    """
    if is_nested(latent):
        if batch_index is not None:
            raise ValidationError("`batch_index` is not supported on a joint audio-video latent")
        return NestedLatent(tuple(nested_noise(latent.unbind(), seed)))
    gen = _generator(seed)
    shape = list(latent.shape)
    if batch_index is None:
        return torch.randn(shape, generator=gen, dtype=torch.float32)
    draws = [torch.randn([1] + shape[1:], generator=gen, dtype=torch.float32) for _ in range(max(batch_index) + 1)]
    return torch.cat([draws[i] for i in batch_index])


def step_noise(seed: int) -> Callable[..., torch.Tensor]:
    """The noise of stochastic steps, as ComfyUI draws it: a second generator seeded with ``seed``
    on the latent's device, drawing in the latent's dtype (so on CPU it repeats the initial noise
    first, exactly as ComfyUI's does). Called as ``draw(like, sigma, sigma_next)``; the sigmas
    are not needed here."""
    gens: dict[str, torch.Generator] = {}

    def draw(like: torch.Tensor, sigma: Any = None, sigma_next: Any = None) -> torch.Tensor:
        key = str(like.device)
        if key not in gens:
            gens[key] = _generator(seed, like.device)
        return torch.randn(like.shape, generator=gens[key], dtype=like.dtype, device=like.device)

    return draw


def brownian_noise(seed: int, like: torch.Tensor, sigmas: torch.Tensor, on_cpu: bool = True) -> Callable[..., torch.Tensor]:
    """The noise of ComfyUI's SDE samplers: increments of one Brownian path over [σ_min, σ_max] of
    the schedule (torchsde's ``BrownianTree`` with the seed as entropy), scaled to unit variance.

    ``draw(like, sigma, sigma_next)`` returns (W(σ_next) − W(σ)) / √|σ_next − σ|, so steps and
    sub-steps of any size see one consistent path, and the same seed gives the same path
    whatever the step count. ``on_cpu`` keeps the tree on the CPU (ComfyUI's plain names); the
    ``_gpu`` names build it on the latent's device.
    """
    torchsde = require("torchsde", "diffusion")
    device = torch.device("cpu") if on_cpu else like.device
    low, high = sigmas[sigmas > 0].min(), sigmas.max()
    tree = torchsde.BrownianTree(low.to(device), torch.zeros_like(like, device=device), high.to(device),
                                 entropy=int(seed) & 0xFFFFFFFFFFFFFFFF)

    def draw(x: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        a, b = (sigma, sigma_next) if sigma < sigma_next else (sigma_next, sigma)
        if on_cpu:
            a, b = a.detach().cpu().float(), b.detach().cpu().float()
        w = tree(a, b).to(device=x.device, dtype=x.dtype)
        if sigma > sigma_next:
            w = -w
        return w / (sigma_next - sigma).abs().sqrt()

    return draw


def sampler_sigmas(model: DiffusionModel, scheduler: str, sampler_name: str, steps: int, denoise: float = 1.0,
                   start_step: int | None = None, last_step: int | None = None,
                   force_full_denoise: bool = False) -> torch.Tensor:
    """The sigmas KSampler/KSamplerAdvanced walk (ComfyUI's start/end step and denoise rules)."""
    if sampler_name not in SAMPLERS:
        raise ValidationError(f"`sampler_name` '{sampler_name}' is not supported; supported: {list(SAMPLERS)}")
    sig = denoise_sigmas(model.sampling, scheduler, steps, denoise, sampler_name in DISCARD_PENULTIMATE)
    if last_step is not None and last_step < len(sig) - 1:
        sig = sig[: last_step + 1].clone()
        if force_full_denoise:
            sig[-1] = 0
    if start_step is not None:
        sig = sig[start_step:] if start_step < len(sig) - 1 else sig[:0]
    return sig


@dataclass(frozen=True)
class CondEntry:
    """One CONDITIONING item made ready to sample: its context at the batch size, its options
    (``pooled_output``, ``control``, timestep range, SDXL sizes...), the latent's pixel size
    and its weight."""

    context: torch.Tensor
    extra: dict[str, Any]
    hw: tuple[int, int]
    strength: float
    uncond: bool = False  # from the negative side (SkipLayerGuidanceDiTSimple changes only those calls)


@dataclass(frozen=True)
class ModelCall:
    """What one batched UNet call over some entries needs that does not change between steps."""

    entries: list[CondEntry]
    context: torch.Tensor
    added: dict[str, torch.Tensor] | None
    #: ``[rows, tokens]``, 1 for a prompt's tokens, 0 for the zeros shorter prompts were padded with
    #: (families marked ``pad_context`` batch prompts of different lengths); None when none was padded
    context_mask: torch.Tensor | None = None


def _entries(conds: list[Any], batch: int, hw: tuple[int, int], uncond: bool = False) -> list[CondEntry]:
    out = []
    for item in conds:
        ctx, extra = item[0], dict(item[1]) if len(item) > 1 else {}
        ctx = ctx if ctx.shape[0] == batch else ctx[:1].expand(batch, -1, -1)
        out.append(CondEntry(ctx, extra, hw, float(extra.get("strength", 1.0)), uncond))
    return out


def _added_cond(model: DiffusionModel, entry: CondEntry, batch: int, device: Any, dtype: Any) -> dict[str, Any] | None:
    if not model.is_sdxl:
        return None
    extra = entry.extra
    if extra.get("unclip_conditioning"):  # sample_sigmas turns them into the pooled embedding (unclip.py)
        raise ValidationError("unCLIPConditioning (SDXL Revision) is applied by KSampler and SamplerCustom(Advanced); "
                              "this sampling path does not apply it")
    pooled = extra.get("pooled_output")
    if pooled is None:
        raise ValidationError("SDXL conditioning needs `pooled_output`; encode the prompt with an SDXL checkpoint's CLIP")
    h, w = entry.hw
    ids = [extra.get("height", h), extra.get("width", w), extra.get("crop_h", 0), extra.get("crop_w", 0),
           extra.get("target_height", h), extra.get("target_width", w)]
    time_ids = torch.tensor([ids], dtype=dtype, device=device).expand(batch, -1)
    pooled = pooled.to(device, dtype)
    return {"text_embeds": pooled if pooled.shape[0] == batch else pooled[:1].expand(batch, -1), "time_ids": time_ids}


def _batch(model: DiffusionModel, entries: list[CondEntry], batch: int, device: Any, dtype: Any) -> ModelCall:
    """What one UNet call over ``entries`` needs that does not change between steps (contexts of
    different lengths, where the family takes them, zero-padded at the end to the longest)."""
    added = [_added_cond(model, e, batch, device, dtype) for e in entries]
    contexts = [e.context.to(device, dtype) for e in entries]
    longest = max(c.shape[1] for c in contexts)
    mask = None
    if any(c.shape[1] != longest for c in contexts):  # a pad_context family: zeros after each prompt, masked out
        mask = torch.cat([(torch.arange(longest, device=device) < c.shape[1]).to(dtype)[None].expand(c.shape[0], -1)
                          for c in contexts])
        contexts = [F.pad(c, (0, 0, 0, longest - c.shape[1])) for c in contexts]
    return ModelCall(
        entries=entries,
        context=torch.cat(contexts),
        added=None if added[0] is None else {k: torch.cat([a[k] for a in added]) for k in added[0]},
        context_mask=mask,
    )


def _before_call(model: DiffusionModel, sigma: torch.Tensor, group: ModelCall, x: torch.Tensor) -> None:
    """Tell the model's attention patches that keep per-call state (IP-Adapters: the step's σ, which
    rows are uncond, the latent's size) about the call about to run; stateless patches (ScaleROPE's
    positions) have no ``before_call``."""
    for patch in model.extra.get("attn_patches", ()):
        hook = getattr(patch, "before_call", None)
        if hook is not None:
            hook(float(sigma), [e.uncond for e in group.entries], tuple(x.shape[-2:]))


def _predict(model: DiffusionModel, unet: Any, group: ModelCall, x: torch.Tensor, sigma: torch.Tensor,
             t: torch.Tensor, concat: torch.Tensor | None) -> list[torch.Tensor]:
    """Denoised estimates, one per entry of ``group``, from one batched UNet call."""
    dtype = group.context.dtype
    n = len(group.entries)
    if model.adapter is not None:  # a flow transformer: its family adapter returns the velocity
        x_all = x.repeat(n, *[1] * (x.ndim - 1))  # image [B,C,H,W] or video [B,C,F,H,W] latents
        extra = {"mask": concat} if concat is not None else {}  # a video family's noise mask (per-token times)
        _before_call(model, sigma, group, x)  # Flux IP-Adapter: which entries are uncond
        velocity = model.adapter(unet, x_all.to(dtype), sigma, group, **extra).float()
        return list((x_all - velocity * sigma).chunk(n))
    prediction = model.sampling.prediction_type
    # IMG_TO_IMG (Lotus) takes the latent as it is; the other readings scale it to unit variance
    xin = x if prediction == "img_to_img" else x * (1.0 / torch.sqrt(sigma ** 2 + 1.0))
    if concat is not None:
        xin = torch.cat([xin, concat], dim=1)
    xin_all = xin.repeat(n, 1, 1, 1).to(dtype)
    ctx, added = group.context, group.added
    residuals = control_residuals(model, [e.extra.get("control") for e in group.entries], xin_all, t, ctx, added, sigma)
    _before_call(model, sigma, group, x)  # IP-Adapter: the step's sigma and the call's uncond rows
    run = functools.partial(unet_forward, model, unet, t=t, ctx=ctx, added=added, residuals=residuals)
    for wrap in reversed(model.extra.get("unet_wrappers", ())):  # wrap(run, x, sigma=σ); the first filed is outermost
        run = functools.partial(wrap, run, sigma=sigma)
    out = run(xin_all).float()
    x_all = x.repeat(n, 1, 1, 1)
    if prediction == "v_prediction":
        den = x_all / (sigma ** 2 + 1) - out * sigma / torch.sqrt(sigma ** 2 + 1)
    elif prediction in ("x0", "img_to_img"):  # the UNet gives the clean estimate itself
        den = out
    else:
        den = x_all - out * sigma
    return list(den.chunk(n))


def _groups(entries: list[CondEntry], pad: bool = False, areas: list[Any] | None = None) -> list[list[int]]:
    """Entries whose contexts have one shape share a UNet call (uncond first, as diffusers batches);
    with ``pad`` (a family that masks padded prompt tokens, or whose adapter reads each entry's own
    length) one width is enough, whatever the lengths. With ``areas`` (each entry's latent crop,
    None for the whole latent) only entries over the same crop share a call."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, e in enumerate(entries):
        key = tuple(e.context.shape[2 if pad else 1:])
        groups.setdefault(key if areas is None else (key, areas[i]), []).append(i)
    return list(groups.values())


def _mix(dens: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    if len(dens) == 1:
        return dens[0]
    return sum(w * d for w, d in zip(weights, dens)) / max(sum(weights), 1e-8)


class _Denoiser:
    """``denoise(x, σ)`` for the samplers; ``uncond`` keeps the last call's unguided estimate (CFG++)."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]) -> None:
        self._fn = fn
        self.uncond: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        guided, self.uncond = self._fn(x, sigma)
        return guided


def _sigma_range(model: DiffusionModel, extra: dict[str, Any]) -> tuple[float, float]:
    """The sigmas between which an entry acts: ConditioningSetTimestepRange's start/end percents."""
    high = model.sampling.percent_to_sigma(float(extra.get("start_percent", 0.0)))
    low = model.sampling.percent_to_sigma(float(extra.get("end_percent", 1.0)))
    return high, low


def apply_cfg_patches(model: DiffusionModel, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor,
                      uncond: torch.Tensor | None, cfg: float) -> torch.Tensor:
    """Guidance with the CFG functions custom-node packs set on a MODEL (``model_options``).

    Each ``sampler_pre_cfg_function(args)`` first rewrites ``args["conds_out"]`` (``[cond,
    uncond]`` estimates, uncond zeros when CFG 1 skipped it; ``conds`` is not passed);
    ``sampler_cfg_function(args)`` replaces the guidance formula (it returns ``x - denoised``);
    each ``sampler_post_cfg_function(args)`` then returns a new denoised estimate. Arguments
    follow ComfyUI's names; ``sigma``/``timestep`` are σ per batch item.
    """
    options = model.extra.get("model_options") or {}
    custom = options.get("sampler_cfg_function")
    posts = options.get("sampler_post_cfg_function") or []
    sig = sigma.reshape(-1).expand(x.shape[0]) if sigma.numel() == 1 else sigma
    for pre in options.get("sampler_pre_cfg_function") or []:
        outs = pre({"conds_out": [cond, torch.zeros_like(cond) if uncond is None else uncond], "cond_scale": cfg,
                    "timestep": sig, "input": x, "sigma": sig, "model": model, "model_options": options})
        cond, uncond = outs[0], (None if uncond is None else outs[1])
    if uncond is None:
        out = cond
    elif custom is None:
        out = uncond + (cond - uncond) * cfg
    if custom is None and not posts:
        return out
    base = {"cond_scale": cfg, "timestep": sig, "input": x, "sigma": sig, "cond_denoised": cond,
            "uncond_denoised": uncond, "model": model, "model_options": options}
    if custom is not None and uncond is not None:
        out = x - custom({**base, "cond": x - cond, "uncond": x - uncond})
    for post in posts:
        out = post({**base, "denoised": out, "cond": None, "uncond": None})
    return out


def _guided(model: DiffusionModel, unet: Any, pos: list[CondEntry], neg: list[CondEntry], cfg: float,
            concat: torch.Tensor | None, batch: int, need_uncond: bool = False,
            dual: tuple[DualCfg, list[CondEntry]] | None = None, streams: StreamCfg | None = None) -> _Denoiser:
    """Classifier-free guidance over the conditioning entries; at cfg 1 the negative prompt is skipped
    unless the sampler reads the unguided estimate (``need_uncond``, as ComfyUI does for CFG++).
    ``dual`` adds DualCFGGuider's second conditioning (its entries) between the two; ``streams``
    guides each stream of a joint latent at its own scale (LTXVDualCFGGuider; ``cfg`` unused then).

    An entry with a timestep range acts only while σ lies inside it; a side with no entry acting
    at some σ predicts zeros there, as ComfyUI's does.
    """
    options = model.extra.get("model_options") or {}
    use_neg = need_uncond or not math.isclose(cfg, 1.0) or bool(options.get("disable_cfg1_optimization"))
    if streams is not None:
        use_neg = need_uncond or streams.needs_uncond() or bool(options.get("disable_cfg1_optimization"))
    mid: list[CondEntry] = []
    if dual is not None:
        use_neg, use_mid = (True, True) if options.get("disable_cfg1_optimization") else dual[0].needs(cfg)
        mid = dual[1] if use_mid else []
    if any(is_regional(e.extra) for e in pos + neg + mid):
        _check_regional(model, pos + neg + mid)
        if use_neg and any(has_area(e.extra) for e in pos + neg):
            pos, neg = _paired(pos, neg)
    entries = (neg if use_neg else []) + mid + pos
    first = compute_param(unet)  # fp8-stored weights keep their dtype: inputs take the compute one
    weights = [e.strength for e in entries]
    ranges = [_sigma_range(model, e.extra) for e in entries]
    timesteps: dict[float, torch.Tensor] = {}
    groups_for: dict[tuple[Any, ...], list[tuple[list[int], ModelCall]]] = {}
    regions_for: dict[tuple[int, ...], list[Region | None]] = {}
    n_neg = len(neg) if use_neg else 0
    n_side = n_neg + len(mid)
    regional = any(is_regional(e.extra) for e in entries)

    def regions(x: torch.Tensor) -> list[Region | None]:
        """Each entry's crop and per-pixel weight over latents shaped like ``x`` (None: all of it)."""
        shape = tuple(x.shape)
        if shape not in regions_for:
            regions_for[shape] = [resolve(e.extra, shape, x.device) for e in entries]
            _check_crops(model, regions_for[shape])
        return regions_for[shape]

    def groups(active: tuple[int, ...], regs: list[Region | None]) -> list[tuple[list[int], ModelCall]]:
        """UNet-call groups over the acting entries (indices into ``entries``), built once per set;
        entries over different crops of the latent run apart."""
        areas = [None if regs[i] is None else regs[i].area for i in active] if regional else None
        key = (active, tuple(areas) if areas else None)
        if key not in groups_for:
            subset = [entries[i] for i in active]
            groups_for[key] = [([active[j] for j in idx], _batch(model, [subset[j] for j in idx], batch, first.device,
                                                                  first.dtype))
                               for idx in _groups(subset, bool(model.extra.get("pad_context") or model.extra.get("joint_latent")),
                                                  areas)]
        return groups_for[key]

    def side(dens: dict[int, torch.Tensor], members: range, x: torch.Tensor,
             regs: list[Region | None] | None = None) -> torch.Tensor:
        acting = [i for i in members if i in dens]
        if not acting:
            return torch.zeros_like(x)
        if regs is not None and any(regs[i] is not None for i in acting):
            return combine([dens[i] for i in acting], [regs[i] for i in acting], [weights[i] for i in acting], x)
        return _mix([dens[i] for i in acting], [weights[i] for i in acting])

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        key = float(sigma)
        if key not in timesteps:
            timesteps[key] = model.sampling.timestep(sigma.detach().cpu()).to(x.device)
        active = tuple(i for i, (high, low) in enumerate(ranges) if low <= key <= high)
        regs = regions(x) if regional else [None] * len(entries)
        dens: dict[int, torch.Tensor] = {}
        for idx, group in groups(active, regs):
            region = regs[idx[0]]
            x_in, c_in = (x, concat) if region is None else (region.crop(x), region.crop(concat))
            for i, d in zip(idx, _predict(model, unet, group, x_in, sigma, timesteps[key], c_in)):
                dens[i] = d
        cond = side(dens, range(n_side, len(entries)), x, regs)
        uncond = side(dens, range(n_neg), x, regs) if use_neg else None

        def cond_with(adapter: Any) -> torch.Tensor:
            """The positive side's estimate again through another family ``adapter`` (the extra pass of
            SkipLayerGuidanceDiT, whose post-CFG function gets this as ``cond_with``)."""
            patched = model.clone(adapter=adapter)
            again: dict[int, torch.Tensor] = {}
            for idx, group in groups(tuple(i for i in active if i >= n_side), regs):
                region = regs[idx[0]]
                x_in, c_in = (x, concat) if region is None else (region.crop(x), region.crop(concat))
                for i, d in zip(idx, _predict(patched, unet, group, x_in, sigma, timesteps[key], c_in)):
                    again[i] = d
            return side(again, range(n_side, len(entries)), x, regs)

        def cfg_fn(c: torch.Tensor, u: torch.Tensor | None, scale: float) -> torch.Tensor:
            scale = cfg_at(model.extra, model.sampling, sigma, scale)  # CFGOverride's ranges
            guided = apply_cfg_patches(model, x, sigma, c, u, scale)
            for fn in model.post_cfg:  # ComfyUI's post-CFG functions (CFGNorm, ...)
                guided = fn({"denoised": guided, "cond_denoised": c, "cond_scale": scale, "input": x, "sigma": sigma,
                             "uncond_denoised": torch.zeros_like(c) if u is None else u, "cond_with": cond_with})
            return guided

        if dual is not None:
            middle = side(dens, range(n_neg, n_side), x, regs)
            return dual[0].combine(cond, middle, torch.zeros_like(x) if uncond is None else uncond, cfg,
                                   cfg_fn), uncond
        if streams is not None:
            return streams.combine(cond, uncond, cfg_fn), uncond
        return cfg_fn(cond, uncond, cfg), uncond

    return _Denoiser(denoise)


def _check_regional(model: DiffusionModel, entries: list[CondEntry]) -> None:
    """Refuse regional conditioning the model cannot sample: areas (a crop of the latent) on a flow
    transformer family, and any area or mask on a joint audio-video latent."""
    if model.extra.get("joint_latent"):
        raise ValidationError(f"ConditioningSetArea / ConditioningSetMask: the {model.family} audio-video model "
                              "takes no regional conditioning (an `area` or `mask` on a conditioning entry)")
    if model.adapter is not None and not model.extra.get("area_crop") and any(has_area(e.extra) for e in entries):
        raise ValidationError(f"ConditioningSetArea / ConditioningSetAreaPercentage / ConditioningSetMask's 'mask bounds': "
                              f"the {model.family} model cannot sample a cropped area of the latent; confine the "
                              "prompt with ConditioningSetMask (set_cond_area 'default') instead")


def _check_crops(model: DiffusionModel, regions: list[Region | None]) -> None:
    """Refuse areas a flow family's patches do not tile (its ``area_crop`` multiple)."""
    step = int(model.extra.get("area_crop") or 0) if model.adapter is not None else 0
    for region in regions:
        if step and region is not None and region.area is not None:
            n = len(region.area) // 2
            if any(v % step for v in region.area[n - 2: n]):
                raise ValidationError(f"ConditioningSetArea / ConditioningSetAreaPercentage: the {model.family} model "
                                      f"takes areas whose height and width are multiples of {step} latent pixels "
                                      f"({8 * step} image pixels); this one is {region.area[n - 2]}×{region.area[n - 1]}")


def _paired(pos: list[CondEntry], neg: list[CondEntry]) -> tuple[list[CondEntry], list[CondEntry]]:
    """The two sides with a partner for every area entry on the other side (:func:`pair_areas`)."""
    def area(e: CondEntry) -> tuple[int, ...] | None:
        if not has_area(e.extra):
            return None
        return resolve(e.extra, (1, 1, e.hw[0] // 8, e.hw[1] // 8), "cpu").area

    def copy(partner: CondEntry, extra: dict[str, Any]) -> CondEntry:
        return CondEntry(partner.context, extra, partner.hw, float(extra.get("strength", 1.0)), partner.uncond)

    new_pos, new_neg = pair_areas([pos, neg], [[area(e) for e in pos], [area(e) for e in neg]], copy)
    return new_pos, new_neg


def guided_estimate(model: DiffusionModel, x: torch.Tensor, sigma: torch.Tensor, positive: list[Any],
                    negative: list[Any] | None, cfg: float) -> torch.Tensor:
    """One guided clean-image estimate of model-space ``x`` at ``sigma`` (ComfyUI's ``sampling_function``):
    CFG over the CONDITIONING lists with the MODEL's CFG patches; no ``negative``: the positive alone.
    The caller keeps the UNet's LoRAs active (:func:`sample_sigmas` does while it runs)."""
    if not positive:
        raise ValidationError("`cond` (the positive conditioning) must hold at least one entry")
    batch, hw = x.shape[0], (x.shape[-2] * 8, x.shape[-1] * 8)
    neg = _entries(negative, batch, hw, uncond=True) if negative else []
    fn = _guided(model, model.unet, _entries(positive, batch, hw), neg, float(cfg) if neg else 1.0, None, batch)
    with torch.no_grad():
        return fn(x, torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)[0])


@contextlib.contextmanager
def _attn_patches(model: DiffusionModel, unet: Any) -> Iterator[None]:
    """Install the MODEL's attention patches (IP-Adapters) and output-block patches (FreeU, packs'
    ``set_model_output_block_patch``) on the shared UNet for one run."""
    transformer = (model.extra.get("model_options") or {}).get("transformer_options") or {}
    block_patches = (transformer.get("patches") or {}).get("output_block_patch") or []
    with contextlib.ExitStack() as stack:
        for patch in model.extra.get("attn_patches", ()):
            stack.enter_context(patch.installed(unet))
        stack.enter_context(output_blocks_patched(unet, list(block_patches), transformer))
        yield


def _masked(denoise: _Denoiser, mask: torch.Tensor, latent: torch.Tensor, noise: torch.Tensor,
            model: DiffusionModel, sigmas: torch.Tensor) -> _Denoiser:
    """Keep the unmasked area on the original latent's noising path (mask 1 = regenerate), the mask
    first passed through the model's ``denoise_mask_fn`` when it has one. The unguided estimate
    passes through unmasked, as ComfyUI hands it to CFG++ samplers. Families marked ``video_mask``
    (LTX-Video) keep that area at the clean latent instead, as ComfyUI's do."""

    def wrapped(x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        m = mask if model.denoise_mask_fn is None else model.denoise_mask_fn(sigma, mask, sigmas, model.sampling)
        kept = latent if model.extra.get("video_mask") else noise_scaling(model.sampling, sigma, noise, latent)
        x = x * m + kept * (1 - m)
        return denoise(x, sigma) * m + latent * (1 - m), denoise.uncond

    return _Denoiser(wrapped)


def _latent_mask(noise_mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if like.ndim == 5:  # a video latent: a [B,1,F,h,w] mask (often per frame, [B,1,F,1,1]) scaled to it
        m = noise_mask.float()
        if m.ndim < 5:  # an image mask: its batch read as frames, as ComfyUI does
            m = m.reshape(1, 1, -1, m.shape[-2], m.shape[-1])
        m = F.interpolate(m, size=like.shape[-3:], mode="trilinear", align_corners=False)
        return m.repeat(math.ceil(like.shape[0] / m.shape[0]), 1, 1, 1, 1)[: like.shape[0]].to(like.device)
    m = noise_mask.float().reshape(-1, 1, noise_mask.shape[-2], noise_mask.shape[-1])
    m = F.interpolate(m, size=like.shape[-2:], mode="bilinear", align_corners=False)
    if m.shape[0] < like.shape[0]:
        m = m.repeat(math.ceil(like.shape[0] / m.shape[0]), 1, 1, 1)[: like.shape[0]]
    return m.to(like.device)


def _inpaint_channels(model: DiffusionModel, lat: torch.Tensor, mask: torch.Tensor | None, dtype: Any,
                      extra: dict[str, Any]) -> torch.Tensor | None:
    """The 5 extra input channels of an inpainting UNet: mask, then the masked image's latent (from
    InpaintModelConditioning's conditioning when given, else the latent and its noise mask)."""
    if not model.inpaint:
        return None
    if extra.get("concat_latent_image") is not None:
        image = model.latent_stats_for(lat)[0] * extra["concat_latent_image"].float().to(lat.device)
        cmask = extra.get("concat_mask")
        cmask = _latent_mask(cmask, image) if cmask is not None else torch.ones_like(image[:, :1])
        if image.shape[0] < lat.shape[0]:
            image = image[:1].expand(lat.shape[0], -1, -1, -1)
        return torch.cat([cmask[: lat.shape[0]], image], dim=1).to(dtype)
    if mask is not None:
        return torch.cat([mask, lat], dim=1).to(dtype)
    return torch.cat([torch.ones_like(lat[:, :1]), model.blank_inpaint_latent(lat)], dim=1).to(dtype)


def sample(model: DiffusionModel, latent: dict[str, Any], *, seed: int, steps: int, cfg: float, sampler_name: str,
           scheduler: str, positive: list[Any], negative: list[Any], denoise: float = 1.0, add_noise: bool = True,
           start_step: int | None = None, last_step: int | None = None, force_full_denoise: bool = False,
           manager: Any = None, callback: StepCallback | None = None) -> dict[str, Any]:
    """Denoise a LATENT; returns a new LATENT dict (input untouched).

    Args:
        model: the MODEL value.
        latent: ``{"samples": [B,4,h,w], "noise_mask"?, "batch_index"?}`` (raw VAE latents).
        seed / steps / cfg / sampler_name / scheduler / denoise: as KSampler.
        positive / negative: CONDITIONING lists.
        add_noise / start_step / last_step / force_full_denoise: as KSamplerAdvanced.
        manager: the model manager (device placement); None keeps the CPU.
        callback: ``(step, total, denoised)`` after each step (progress, interruption).

    Raises:
        ValidationError: unknown sampler or scheduler, bad steps, empty conditioning.
    """
    if not positive or not negative:
        raise ValidationError("`positive` and `negative` must each hold at least one conditioning")
    sigmas = sampler_sigmas(model, scheduler, sampler_name, steps, denoise, start_step, last_step, force_full_denoise)
    out, _ = sample_sigmas(model, latent, sigmas, seed=seed, cfg=cfg, sampler_name=sampler_name, positive=positive,
                           negative=negative, add_noise=add_noise, manager=manager, callback=callback)
    return out


def sample_sigmas(model: DiffusionModel, latent: dict[str, Any], sigmas: torch.Tensor, *, seed: int, cfg: float,
                  sampler_name: str, positive: list[Any], negative: list[Any] | None, add_noise: bool = True,
                  manager: Any = None, callback: StepCallback | None = None,
                  sampler_options: dict[str, Any] | None = None,
                  dual: DualCfg | None = None,
                  noise: torch.Tensor | None = None, walk: Callable[..., torch.Tensor] | None = None,
                  predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                  stream_cfg: tuple[float, ...] | None = None,
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Denoise a LATENT along given ``sigmas`` (ComfyUI's SamplerCustom contract).

    ``negative`` None samples the positive conditioning alone (no guidance); ``sampler_options``
    are keyword arguments of the sampler (``eta``, ``s_noise``, ``r``, ``solver``, ``order``);
    ``dual`` guides with a second conditioning as well (DualCFGGuider; needs ``negative``);
    ``noise`` replaces the seeded initial noise (shaped like the latent; ``seed`` still drives the
    stochastic steps); ``walk`` is a sampler function in :mod:`~nodeloom.diffusion.samplers`' signature
    used instead of ``sampler_name``'s (a pack's own sampler); ``predict(x, sigma)`` replaces the
    guided estimate (a pack's guider; masks still apply around it); ``stream_cfg`` gives each
    stream of a joint audio-video latent its own CFG scale (video first; ``cfg`` for any other latent).
    Returns the output LATENT and the denoised estimate of the last step (the output itself when
    nothing ran).

    Raises:
        ValidationError: unknown sampler, empty positive conditioning.
    """
    if walk is None and sampler_name not in SAMPLERS:
        raise ValidationError(f"`sampler_name` '{sampler_name}' is not supported; supported: {list(SAMPLERS)}")
    if not positive:
        raise ValidationError("`positive` must hold at least one conditioning")
    check_model_options(model)
    positive, negative = apply_unclip(model, positive, seed), apply_unclip(model, negative, seed)  # SDXL Revision
    if negative:
        negative = controls_for_uncond(positive, negative)
    out = dict(latent)
    shapes = None
    if is_nested(latent["samples"]):  # audio-video: the streams step as one flat tensor, the adapter splits them
        model, latent, noise, shapes = _pack_joint(model, latent, noise, seed)
    streams = stream_cfg_for(stream_cfg, shapes)
    raw = latent["samples"]
    sigmas = torch.as_tensor(sigmas, dtype=torch.float32).flatten()
    if len(sigmas) < 2:
        return out, out
    if noise is not None:
        if tuple(noise.shape) != tuple(raw.shape):
            raise ValidationError(f"`noise` is shaped {tuple(noise.shape)} but the latent is {tuple(raw.shape)}")
        noise = noise.float()
    else:
        noise = prepare_noise(raw, seed, latent.get("batch_index"))
    if not add_noise:
        noise = torch.zeros_like(raw)  # the stochastic steps still draw from the seed
    dtype = accelerator_dtype(manager) if model.adapter is not None else None
    unet = manager.prepare(model.unet, dtype=dtype) if manager is not None else model.unet
    prepare_controls([positive, negative or [], dual.middle if dual else []], manager)
    dev = next(unet.parameters()).device
    lat = model.to_model_space(raw).to(dev)
    noise, sigmas = noise.to(dev), sigmas.to(dev)
    hw = (raw.shape[-2] * 8, raw.shape[-1] * 8)
    mask = None
    if latent.get("noise_mask") is not None:
        mask = latent["noise_mask"].to(dev) if shapes else _latent_mask(latent["noise_mask"], lat)
    concat = _inpaint_channels(model, lat, mask, compute_param(unet).dtype, dict(positive[0][1]))
    if model.extra.get("video_mask") and mask is not None:
        concat = mask  # handed to the family adapter, which gives each token its own time
    if negative:
        fn = _guided(model, unet, _entries(positive, raw.shape[0], hw), _entries(negative, raw.shape[0], hw, uncond=True), cfg,
                     concat, raw.shape[0], need_uncond=sampler_name in CFG_PP,
                     dual=(dual, _entries(dual.middle, raw.shape[0], hw)) if dual else None, streams=streams)
    else:
        fn = _guided(model, unet, _entries(positive, raw.shape[0], hw), [], 1.0, concat, raw.shape[0])
    if predict is not None:
        fn = _Denoiser(lambda x_, s_: (predict(x_, s_), None))
    raw_start = getattr(walk, "raw_start", False)  # VOIDSampler: unscaled noise, no latent, no mask
    if mask is not None and not raw_start:
        fn = _masked(fn, mask, lat, noise, model, sigmas)
    s0 = float(sigmas[0])
    max_denoise = math.isclose(s0, model.sampling.sigma_max, rel_tol=1e-5) or s0 > model.sampling.sigma_max
    x = noise.clone() if raw_start else noise_scaling(model.sampling, sigmas[0], noise, lat, max_denoise)
    total = len(sigmas) - 1
    last: list[torch.Tensor] = []

    def step_cb(i: int, _x: torch.Tensor, den: torch.Tensor) -> None:
        last[:] = [den]
        if callback is not None:
            callback(i + 1, total, den)

    draw = brownian_noise(seed, x, sigmas, on_cpu=not sampler_name.endswith("_gpu")) if sampler_name in BROWNIAN \
        else step_noise(seed)
    if scale_of_noise(model.sampling) != 1.0:  # ModelNoiseScale: the steps' fresh noise at the model's scale too
        draw = _scaled_draw(draw, scale_of_noise(model.sampling))
    own_walk = walk is not None  # a walk given with a built-in name (EulerCFG++'s alternative) stays as given
    walk = walk or SAMPLERS[sampler_name]
    if getattr(model.sampling, "is_flow", False) and sampler_name in SAMPLERS and not own_walk:
        walk = flow_sampler(sampler_name, model.sampling) or walk
    prepare_run = getattr(model.adapter, "prepare_run", None)  # EasyCache: empty cache, σ range on this schedule
    if prepare_run is not None:
        prepare_run(model.sampling)
    with torch.no_grad(), lora_active(unet, model.loras, part="unet"), _attn_patches(model, unet):
        x = walk(fn, x, sigmas, draw, step_cb, **(sampler_options or {}))
    if mask is not None and not raw_start:
        x = x * mask + lat * (1 - mask)
    if getattr(model.sampling, "is_flow", False) and float(sigmas[-1]) < 1.0 and not raw_start:
        x = x / (1.0 - sigmas[-1])  # ComfyUI's inverse noise scaling (identity when the run ends at 0)
    out["samples"] = _unpacked(model.from_model_space(x.float().cpu()), shapes)
    denoised = out
    if last:
        denoised = dict(out)
        denoised["samples"] = _unpacked(model.from_model_space(last[0].float().cpu()), shapes)
    return out, denoised


def _scaled_draw(draw: Callable[..., torch.Tensor], scale: float) -> Callable[..., torch.Tensor]:
    def scaled(*args: Any) -> torch.Tensor:
        return draw(*args) * scale

    return scaled


def _pack_joint(model: DiffusionModel, latent: dict[str, Any], noise: Any,
                seed: int) -> tuple[DiffusionModel, dict[str, Any], torch.Tensor, list[torch.Size]]:
    """A joint audio-video LATENT as the samplers step it: samples, noise and noise mask packed
    ``[B, 1, N]``, and the MODEL's adapter told the streams' shapes.

    Raises:
        ValidationError: a model whose family takes no joint latent, noise that does not fit.
    """
    if model.adapter is None or not model.extra.get("joint_latent"):
        raise ValidationError(f"the latent holds video and audio streams (LTXVConcatAVLatent), which the "
                              f"{model.family} model cannot denoise; use an LTX-2 audio-video model, or "
                              "LTXVSeparateAVLatent to sample the video alone")
    streams = list(latent["samples"].unbind())
    flat, shapes = pack(streams)
    if noise is None:
        noise_streams = nested_noise(streams, seed)
    elif is_nested(noise):
        noise_streams = list(noise.unbind())
    else:
        raise ValidationError("`noise` for a joint audio-video latent must hold one tensor per stream")
    if [tuple(n.shape) for n in noise_streams] != [tuple(s) for s in shapes]:
        raise ValidationError(f"`noise` is shaped {[tuple(n.shape) for n in noise_streams]} but the latent's "
                              f"streams are {[tuple(s) for s in shapes]}")
    packed = {"samples": flat}
    mask = latent.get("noise_mask")
    if mask is not None:
        masks = list(mask.unbind()) if is_nested(mask) else [mask] + [None] * (len(shapes) - 1)
        packed["noise_mask"] = pack_mask(masks, shapes)
    adapter = model.adapter

    def joint_adapter(module: Any, x: torch.Tensor, sigma: torch.Tensor, group: ModelCall, **kw: Any) -> torch.Tensor:
        return adapter(module, x, sigma, group, shapes=shapes, **kw)

    return model.clone(adapter=joint_adapter), packed, pack(noise_streams)[0], shapes


def _unpacked(x: torch.Tensor, shapes: list[torch.Size] | None) -> Any:
    return x if shapes is None else NestedLatent(tuple(t.contiguous() for t in unpack(x, shapes)))
