"""Custom sampling nodes: the sampler, sigmas, noise and guider as separate values (ComfyUI's
``SamplerCustom`` family, with its node ids, input names, defaults and categories).

Values passed between them: SAMPLER (:class:`SamplerChoice`), SIGMAS (a 1-D float tensor,
descending, usually ending at 0), NOISE (:class:`NoiseSource`) and GUIDER (:class:`Guider`).
Sampling itself is :func:`nodeloom.diffusion.sampling.sample_sigmas`, the loop KSampler uses.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from nodeloom.diffusion.dual_cfg import DualCfg
from nodeloom.diffusion.flow import noise_scaling
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.samplers import SAMPLER_NAMES, void_ddim
from nodeloom.diffusion.av_latent import NestedLatent, is_nested
from nodeloom.diffusion.sampling import prepare_noise, sample_sigmas
from nodeloom.diffusion.schedules import (
    SCHEDULER_NAMES,
    beta_sigmas,
    calculate_sigmas,
    exponential_sigmas,
    karras_sigmas,
    laplace_sigmas,
    polyexponential_sigmas,
    vp_sigmas,
)
from nodeloom.errors import ValidationError
from nodeloom.node_api import (
    IO,
    Boolean,
    Combo,
    Conditioning,
    Custom,
    Float,
    Int,
    Latent,
    Model,
    Node,
    Output,
    Schema,
)
from nodeloom.nodes.diffusion._common import device_guard, step_progress
from nodeloom.nodes.diffusion.sampling import check_sampler_names

__all__ = [
    "AddNoise", "BasicGuider", "BasicScheduler", "BetaSamplingScheduler", "CFGGuider", "DisableNoise",
    "ExponentialScheduler", "FlipSigmas", "Guider", "KSamplerSelect", "KarrasScheduler", "LaplaceScheduler",
    "NoiseSource", "PolyexponentialScheduler", "RandomNoise", "SDTurboScheduler", "SamplerChoice", "SamplerCustom",
    "SamplerCustomAdvanced", "SamplerDPMPP_2M_SDE", "SamplerDPMPP_2S_Ancestral", "SamplerDPMPP_3M_SDE",
    "SamplerDPMPP_SDE", "SamplerEulerAncestral", "SamplerEulerAncestralCFGPP", "SamplerLMS", "SamplingPercentToSigma",
    "SetFirstSigma", "ExtendIntermediateSigmas", "SplitSigmas", "SplitSigmasDenoise", "VOIDSampler", "VOIDWarpedNoiseSource",
    "VPScheduler",
]

SAMPLER, SIGMAS, NOISE, GUIDER = "SAMPLER", "SIGMAS", "NOISE", "GUIDER"
_SEED_MAX = 0xFFFFFFFFFFFFFFFF
_CATEGORY = "sampling/custom_sampling"
# ComfyUI's defaults for its custom Karras/exponential schedulers: SD 1.x's sigma range
_SIGMA_MAX, _SIGMA_MIN = 14.614642, 0.0291675


@dataclass(frozen=True)
class SamplerChoice:
    """A SAMPLER value: one of the KSampler's algorithms by its ComfyUI name, with keyword options."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()
    #: a sampler function a custom pack supplied (``comfy.samplers.KSAMPLER``), in the signature of
    #: :mod:`nodeloom.diffusion.samplers`; None: the algorithm named ``name``
    walk: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class NoiseSource:
    """A NOISE value: the seed of the initial noise (and of stochastic steps), or none at all."""

    seed: int = 0
    enabled: bool = True
    #: a given noise tensor used instead of the seeded draw (VOIDWarpedNoiseSource); None: drawn
    samples: torch.Tensor | None = field(default=None, compare=False, repr=False)

    def generate(self, latent: dict[str, Any]) -> torch.Tensor:
        """The initial noise for ``latent`` (zeros when disabled), as ComfyUI draws it."""
        if self.samples is not None:
            return self.samples.clone().cpu()
        if not self.enabled:
            samples = latent["samples"]
            if is_nested(samples):  # a joint audio-video latent: zeros per stream
                return NestedLatent(tuple(torch.zeros_like(t, dtype=torch.float32) for t in samples.unbind()))
            return torch.zeros_like(samples, dtype=torch.float32)
        return prepare_noise(latent["samples"], self.seed, latent.get("batch_index"))

    def generate_noise(self, input_latent: dict[str, Any]) -> torch.Tensor:
        """ComfyUI's name for :meth:`generate` (custom-node packs call it on NOISE values)."""
        return self.generate(input_latent)


@dataclass(frozen=True)
class Guider:
    """A GUIDER value: the model and the conditioning it is steered by (``negative`` None: no guidance)."""

    model: DiffusionModel
    positive: list[Any]
    negative: list[Any] | None = None
    cfg: float = 1.0
    dual: DualCfg | None = None  # DualCFGGuider's second conditioning
    #: a guider that forms the guided estimate itself (DualModelGuider): ``predictor(manager)`` is a
    #: context manager giving ``predict(x, sigma)`` for the run; None: CFG over the conditionings
    predictor: Any = field(default=None, compare=False)
    #: LTXVDualCFGGuider's scale per stream of a joint audio-video latent (video, audio); None, or a
    #: latent that is not a joint one: ``cfg`` everywhere
    stream_cfg: tuple[float, ...] | None = None


def _sigmas_input(name: str = "sigmas", **kw: Any) -> Custom:
    kw.setdefault("tooltip", "The noise levels to walk, highest first.")
    return Custom(SIGMAS, name, **kw)


def _range_inputs() -> list[Any]:
    """``steps, sigma_max, sigma_min`` as ComfyUI's Karras/exponential schedulers declare them."""
    return [
        Int("steps", 20, min=1, max=10000, tooltip="Number of steps."),
        Float("sigma_max", _SIGMA_MAX, min=0.0, max=5000.0, step=0.01, round=False, tooltip="The first (highest) sigma."),
        Float("sigma_min", _SIGMA_MIN, min=0.0, max=5000.0, step=0.01, round=False, tooltip="The last sigma before 0."),
    ]


def _check_range(node: str, sigma_min: float, sigma_max: float) -> None:
    if sigma_min <= 0 or sigma_max < sigma_min:
        raise ValidationError(f"{node} needs 0 < sigma_min <= sigma_max; got sigma_min={sigma_min}, sigma_max={sigma_max}")


def _run(guider: Guider, noise: NoiseSource, sampler: SamplerChoice, sigmas: torch.Tensor,
         latent: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    steps = max(len(sigmas) - 1, 0)
    with device_guard() as mgr, \
            (guider.predictor(mgr) if guider.predictor is not None else contextlib.nullcontext()) as predict:
        return sample_sigmas(guider.model, latent, sigmas, seed=noise.seed, cfg=guider.cfg, sampler_name=sampler.name,
                             positive=guider.positive, negative=guider.negative, add_noise=noise.enabled, manager=mgr,
                             noise=_given_noise(noise, latent),
                             callback=step_progress(steps, guider.model) if steps else None,
                             sampler_options=dict(sampler.options), dual=guider.dual, walk=sampler.walk,
                             predict=predict, stream_cfg=guider.stream_cfg)


def _given_noise(noise: NoiseSource, latent: dict[str, Any]) -> torch.Tensor | None:
    """A NOISE value's own tensor fitted to the latent, or None for seeded noise. A one-item noise
    serves every item of a larger batch (ComfyUI adds it to the latent by broadcasting)."""
    if noise.samples is None:
        return None
    given, raw = noise.generate(latent), latent["samples"]
    if is_nested(raw) or not isinstance(raw, torch.Tensor):
        raise ValidationError("a NOISE made from a LATENT cannot noise a joint audio-video latent")
    if given.ndim == raw.ndim and given.shape[0] == 1 and given.shape[1:] == raw.shape[1:]:
        given = given.expand_as(raw)
    if tuple(given.shape) != tuple(raw.shape):
        raise ValidationError(f"`noise` holds a latent shaped {tuple(given.shape)} but `latent_image` is "
                              f"{tuple(raw.shape)}: the noise must match it (or have one item for the batch)")
    return given


class KSamplerSelect(Node):
    """Pick a sampling algorithm by name for the custom sampler nodes."""

    SCHEMA = Schema(
        "KSamplerSelect", display_name="KSamplerSelect", category=f"{_CATEGORY}/samplers",
        inputs=[Combo("sampler_name", SAMPLER_NAMES, tooltip="The algorithm used when sampling.")],
        outputs=[Output(SAMPLER, "SAMPLER")],
    )

    @classmethod
    def validate_inputs(cls, sampler_name: Any = None) -> bool | str:
        return check_sampler_names(sampler_name)

    @classmethod
    def execute(cls, sampler_name: str) -> tuple[Any, ...]:
        return (SamplerChoice(sampler_name),)


class BasicScheduler(Node):
    """The model's sigmas for a named scheduler; denoise < 1 keeps the tail of a longer schedule."""

    SCHEMA = Schema(
        "BasicScheduler", display_name="BasicScheduler", category=f"{_CATEGORY}/schedulers",
        inputs=[
            Model("model", tooltip="Whose noise schedule to use."),
            Combo("scheduler", SCHEDULER_NAMES, tooltip="How the noise levels are spaced."),
            Int("steps", 20, min=1, max=10000, tooltip="Number of steps."),
            Float("denoise", 1.0, min=0.0, max=1.0, step=0.01, tooltip="Share of the schedule to run (img2img)."),
        ],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def validate_inputs(cls, scheduler: Any = None) -> bool | str:
        return check_sampler_names(scheduler=scheduler)

    @classmethod
    def execute(cls, model: DiffusionModel, scheduler: str, steps: int, denoise: float) -> tuple[Any, ...]:
        total = steps
        if denoise < 1.0:
            if denoise <= 0.0:
                return (torch.zeros(0),)
            total = int(steps / denoise)
        return (calculate_sigmas(model.sampling, scheduler, total)[-(steps + 1):],)


class KarrasScheduler(Node):
    """Karras et al. sigmas between given bounds (evenly spaced in σ^(1/ρ)), ending at 0."""

    SCHEMA = Schema(
        "KarrasScheduler", display_name="KarrasScheduler", category=f"{_CATEGORY}/schedulers",
        inputs=[
            *_range_inputs(),
            Float("rho", 7.0, min=0.0, max=100.0, step=0.01, round=False,
                  tooltip="Larger values spend more steps at low noise."),
        ],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, steps: int, sigma_max: float, sigma_min: float, rho: float) -> tuple[Any, ...]:
        _check_range("KarrasScheduler", sigma_min, sigma_max)
        if rho <= 0:
            raise ValidationError(f"KarrasScheduler needs rho > 0; got rho={rho}")
        return (karras_sigmas(steps, sigma_min, sigma_max, rho),)


class ExponentialScheduler(Node):
    """Sigmas evenly spaced in log σ between given bounds, ending at 0."""

    SCHEMA = Schema(
        "ExponentialScheduler", display_name="ExponentialScheduler", category=f"{_CATEGORY}/schedulers",
        inputs=_range_inputs(),
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, steps: int, sigma_max: float, sigma_min: float) -> tuple[Any, ...]:
        _check_range("ExponentialScheduler", sigma_min, sigma_max)
        return (exponential_sigmas(steps, sigma_min, sigma_max),)


def _strength(name: str, default: float, high: float, tooltip: str) -> Float:
    return Float(name, default, min=0.0, max=high, step=0.01, round=False, tooltip=tooltip)


def _eta(high: float = 100.0) -> Float:
    return _strength("eta", 1.0, high, "Share of each step's noise that is fresh (0 = deterministic).")


def _s_noise(high: float = 100.0) -> Float:
    return _strength("s_noise", 1.0, high, "Scale of the fresh noise.")


_NOISE_DEVICE = Combo("noise_device", ["gpu", "cpu"], tooltip="Where the Brownian noise path is drawn.")


def _sampler_schema(node_id: str, *inputs: Any, display_name: str | None = None) -> Schema:
    return Schema(node_id, display_name=display_name or node_id, category=f"{_CATEGORY}/samplers", inputs=list(inputs),
                  outputs=[Output(SAMPLER, "SAMPLER")])


def _sde_name(base: str, noise_device: str) -> str:
    """ComfyUI's SDE samplers keep their Brownian path on the CPU, their ``_gpu`` names on the device."""
    return base if noise_device == "cpu" else f"{base}_gpu"


class SamplerEulerAncestral(Node):
    """Euler ancestral with its noise share and scale."""

    SCHEMA = _sampler_schema("SamplerEulerAncestral", _eta(), _s_noise())

    @classmethod
    def execute(cls, eta: float, s_noise: float) -> tuple[Any, ...]:
        return (SamplerChoice("euler_ancestral", (("eta", eta), ("s_noise", s_noise))),)


class SamplerEulerAncestralCFGPP(Node):
    """Euler ancestral CFG++ with its noise share and scale."""

    SCHEMA = _sampler_schema("SamplerEulerAncestralCFGPP", _eta(1.0), _s_noise(10.0),
                             display_name="SamplerEulerAncestralCFG++")

    @classmethod
    def execute(cls, eta: float, s_noise: float) -> tuple[Any, ...]:
        return (SamplerChoice("euler_ancestral_cfg_pp", (("eta", eta), ("s_noise", s_noise))),)


class SamplerDPMPP_2S_Ancestral(Node):
    """DPM-Solver++(2S) ancestral with its noise share and scale."""

    SCHEMA = _sampler_schema("SamplerDPMPP_2S_Ancestral", _eta(), _s_noise())

    @classmethod
    def execute(cls, eta: float, s_noise: float) -> tuple[Any, ...]:
        return (SamplerChoice("dpmpp_2s_ancestral", (("eta", eta), ("s_noise", s_noise))),)


class SamplerDPMPP_SDE(Node):
    """DPM-Solver++ SDE with its noise share and scale, midpoint ratio and noise device."""

    SCHEMA = _sampler_schema("SamplerDPMPP_SDE", _eta(), _s_noise(),
                             _strength("r", 0.5, 100.0, "Where the intermediate point sits within each step."),
                             _NOISE_DEVICE)

    @classmethod
    def execute(cls, eta: float, s_noise: float, r: float, noise_device: str) -> tuple[Any, ...]:
        return (SamplerChoice(_sde_name("dpmpp_sde", noise_device), (("eta", eta), ("s_noise", s_noise), ("r", r))),)


class SamplerDPMPP_2M_SDE(Node):
    """DPM-Solver++(2M) SDE with its solver, noise share and scale, and noise device."""

    SCHEMA = _sampler_schema("SamplerDPMPP_2M_SDE",
                             Combo("solver_type", ["midpoint", "heun"], tooltip="The second-order correction used."),
                             _eta(), _s_noise(), _NOISE_DEVICE)

    @classmethod
    def execute(cls, solver_type: str, eta: float, s_noise: float, noise_device: str) -> tuple[Any, ...]:
        return (SamplerChoice(_sde_name("dpmpp_2m_sde", noise_device),
                              (("eta", eta), ("s_noise", s_noise), ("solver", solver_type))),)


class SamplerDPMPP_3M_SDE(Node):
    """DPM-Solver++(3M) SDE with its noise share and scale, and noise device."""

    SCHEMA = _sampler_schema("SamplerDPMPP_3M_SDE", _eta(), _s_noise(), _NOISE_DEVICE)

    @classmethod
    def execute(cls, eta: float, s_noise: float, noise_device: str) -> tuple[Any, ...]:
        return (SamplerChoice(_sde_name("dpmpp_3m_sde", noise_device), (("eta", eta), ("s_noise", s_noise))),)


class SamplerLMS(Node):
    """Linear multistep with its order (how many past slopes it uses)."""

    SCHEMA = _sampler_schema("SamplerLMS", Int("order", 4, min=1, max=100, tooltip="How many past slopes to use."))

    @classmethod
    def execute(cls, order: int) -> tuple[Any, ...]:
        return (SamplerChoice("lms", (("order", int(order)),)),)


class PolyexponentialScheduler(Node):
    """Sigmas whose log is a polynomial of degree ``rho`` in the step fraction, ending at 0."""

    SCHEMA = Schema(
        "PolyexponentialScheduler", display_name="PolyexponentialScheduler", category=f"{_CATEGORY}/schedulers",
        inputs=[*_range_inputs(), Float("rho", 1.0, min=0.0, max=100.0, step=0.01, round=False,
                                        tooltip="Degree of the polynomial (1 = exponential).")],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, steps: int, sigma_max: float, sigma_min: float, rho: float) -> tuple[Any, ...]:
        _check_range("PolyexponentialScheduler", sigma_min, sigma_max)
        return (polyexponential_sigmas(steps, sigma_min, sigma_max, rho),)


class LaplaceScheduler(Node):
    """Log sigmas at Laplace quantiles (more steps near e^mu), clamped to the bounds; no final 0."""

    SCHEMA = Schema(
        "LaplaceScheduler", display_name="LaplaceScheduler", category=f"{_CATEGORY}/schedulers",
        inputs=[*_range_inputs(),
                Float("mu", 0.0, min=-10.0, max=10.0, step=0.1, round=False, tooltip="Log sigma the steps gather around."),
                Float("beta", 0.5, min=0.0, max=10.0, step=0.1, round=False, tooltip="Spread of the steps in log sigma.")],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, steps: int, sigma_max: float, sigma_min: float, mu: float, beta: float) -> tuple[Any, ...]:
        _check_range("LaplaceScheduler", sigma_min, sigma_max)
        return (laplace_sigmas(steps, sigma_min, sigma_max, mu, beta),)


class SDTurboScheduler(Node):
    """SD-Turbo's schedule: timesteps 999, 899, … (one per tenth of the run), from where denoise starts."""

    SCHEMA = Schema(
        "SDTurboScheduler", display_name="SDTurboScheduler", category=f"{_CATEGORY}/schedulers",
        inputs=[Model("model", tooltip="Whose noise schedule to use."),
                Int("steps", 1, min=1, max=10, tooltip="Number of steps."),
                Float("denoise", 1.0, min=0, max=1.0, step=0.01, tooltip="Share of the run (img2img below 1).")],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, steps: int, denoise: float) -> tuple[Any, ...]:
        start = 10 - int(10 * denoise)
        timesteps = torch.flip(torch.arange(1, 11) * 100 - 1, (0,))[start:start + steps]
        return (torch.cat([model.sampling.sigma(timesteps.float()), torch.zeros(1)]),)


class BetaSamplingScheduler(Node):
    """The "beta" scheduler with its two shape parameters exposed."""

    SCHEMA = Schema(
        "BetaSamplingScheduler", display_name="BetaSamplingScheduler", category=f"{_CATEGORY}/schedulers",
        inputs=[Model("model", tooltip="Whose noise schedule to use."),
                Int("steps", 20, min=1, max=10000, tooltip="Number of steps."),
                Float("alpha", 0.6, min=0.0, max=50.0, step=0.01, round=False, tooltip="Beta distribution α."),
                Float("beta", 0.6, min=0.0, max=50.0, step=0.01, round=False, tooltip="Beta distribution β.")],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, steps: int, alpha: float, beta: float) -> tuple[Any, ...]:
        if alpha <= 0 or beta <= 0:
            raise ValidationError(f"BetaSamplingScheduler needs alpha > 0 and beta > 0; got {alpha}, {beta}")
        return (beta_sigmas(model.sampling, steps, alpha, beta),)


class VPScheduler(Node):
    """The continuous variance-preserving schedule σ(t) = √(exp(β_d t²/2 + β_min t) − 1), ending at 0."""

    SCHEMA = Schema(
        "VPScheduler", display_name="VPScheduler", category=f"{_CATEGORY}/schedulers",
        inputs=[Int("steps", 20, min=1, max=10000, tooltip="Number of steps."),
                Float("beta_d", 19.9, min=0.0, max=5000.0, step=0.01, round=False, tooltip="β_d of the VP SDE."),
                Float("beta_min", 0.1, min=0.0, max=5000.0, step=0.01, round=False, tooltip="β_min of the VP SDE."),
                Float("eps_s", 0.001, min=0.0, max=1.0, step=0.0001, round=False, tooltip="The last time t (> 0).")],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, steps: int, beta_d: float, beta_min: float, eps_s: float) -> tuple[Any, ...]:
        return (vp_sigmas(steps, beta_d, beta_min, eps_s),)


class SplitSigmas(Node):
    """Cut a schedule at a step: the first part ends where the second begins."""

    SCHEMA = Schema(
        "SplitSigmas", display_name="SplitSigmas", category=f"{_CATEGORY}/sigmas",
        inputs=[_sigmas_input(), Int("step", 0, min=0, max=10000, tooltip="Index of the sigma both parts share.")],
        outputs=[Output(SIGMAS, "high_sigmas"), Output(SIGMAS, "low_sigmas")],
    )

    @classmethod
    def execute(cls, sigmas: torch.Tensor, step: int) -> tuple[Any, ...]:
        return (sigmas[: step + 1], sigmas[step:])


class SplitSigmasDenoise(Node):
    """Cut a schedule so the second part holds the last ``denoise`` share of its steps."""

    SCHEMA = Schema(
        "SplitSigmasDenoise", display_name="SplitSigmasDenoise", category=f"{_CATEGORY}/sigmas",
        inputs=[_sigmas_input(), Float("denoise", 1.0, min=0.0, max=1.0, step=0.01,
                                      tooltip="Share of the steps that go to the second (low) part.")],
        outputs=[Output(SIGMAS, "high_sigmas"), Output(SIGMAS, "low_sigmas")],
    )

    @classmethod
    def execute(cls, sigmas: torch.Tensor, denoise: float) -> tuple[Any, ...]:
        steps = max(sigmas.shape[-1] - 1, 0)
        tail = round(steps * denoise)
        # as ComfyUI: with no tail steps the high part is empty and the low part is the last sigma
        return (sigmas[:-tail] if tail else sigmas[:0], sigmas[-(tail + 1):])


class FlipSigmas(Node):
    """Reverse a schedule (noise → image becomes image → noise); a leading 0 becomes 0.0001."""

    SCHEMA = Schema(
        "FlipSigmas", display_name="FlipSigmas", category=f"{_CATEGORY}/sigmas",
        inputs=[_sigmas_input()],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, sigmas: torch.Tensor) -> tuple[Any, ...]:
        if len(sigmas) == 0:
            return (sigmas,)
        flipped = sigmas.flip(0).clone()
        if flipped[0] == 0:
            flipped[0] = 0.0001
        return (flipped,)


class SetFirstSigma(Node):
    """Replace the first sigma of a schedule (e.g. to start above the model's maximum)."""

    SCHEMA = Schema(
        "SetFirstSigma", display_name="SetFirstSigma", category=f"{_CATEGORY}/sigmas",
        inputs=[_sigmas_input(), Float("sigma", 136.0, min=0.0, max=20000.0, step=0.001, round=False,
                                       tooltip="The new first sigma.")],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, sigmas: torch.Tensor, sigma: float) -> tuple[Any, ...]:
        if len(sigmas) == 0:
            raise ValidationError("SetFirstSigma: `sigmas` is empty")
        out = sigmas.clone()
        out[0] = sigma
        return (out,)


#: how the inserted sigmas are spread across a step (x from 0 to 1 within the step)
_SPACINGS = {
    "linear": lambda x: x,
    "cosine": lambda x: torch.sin(x * math.pi / 2),
    "sine": lambda x: 1 - torch.cos(x * math.pi / 2),
}


class ExtendIntermediateSigmas(Node):
    """Split each step whose sigma lies in a range into ``steps`` smaller ones."""

    SCHEMA = Schema(
        "ExtendIntermediateSigmas", display_name="ExtendIntermediateSigmas", category=f"{_CATEGORY}/sigmas",
        inputs=[_sigmas_input(),
                Int("steps", 2, min=1, max=100, tooltip="Into how many steps each chosen step is split."),
                Float("start_at_sigma", -1.0, min=-1.0, max=20000.0, step=0.01, round=False,
                      tooltip="Split steps starting at or below this sigma (−1: no upper bound)."),
                Float("end_at_sigma", 12.0, min=0.0, max=20000.0, step=0.01, round=False,
                      tooltip="Split steps starting at or above this sigma."),
                Combo("spacing", list(_SPACINGS), tooltip="How the new sigmas are spread within a step.")],
        outputs=[Output(SIGMAS, "SIGMAS")],
    )

    @classmethod
    def execute(cls, sigmas: torch.Tensor, steps: int, start_at_sigma: float, end_at_sigma: float,
                spacing: str) -> tuple[Any, ...]:
        upper = math.inf if start_at_sigma < 0 else start_at_sigma
        fractions = _SPACINGS[spacing](torch.linspace(0, 1, steps + 1)[1:-1])
        out: list[float] = []
        for i in range(len(sigmas) - 1):
            current, following = float(sigmas[i]), float(sigmas[i + 1])
            out.append(current)
            if end_at_sigma <= current <= upper:
                out.extend((fractions * (following - current) + current).tolist())
        if len(sigmas) > 0:
            out.append(float(sigmas[-1]))
        return (torch.tensor(out, dtype=torch.float32),)


class SamplingPercentToSigma(Node):
    """The sigma at a point of the run (0 = start, 1 = end), as start/end percents are read."""

    SCHEMA = Schema(
        "SamplingPercentToSigma", display_name="SamplingPercentToSigma", category=f"{_CATEGORY}/sigmas",
        inputs=[Model("model", tooltip="Whose noise schedule to use."),
                Float("sampling_percent", 0.0, min=0.0, max=1.0, step=0.0001, tooltip="The point of the run."),
                Boolean("return_actual_sigma", False,
                        tooltip="Give the schedule's exact σ rather than the one used to test ranges (they differ only"
                                " at 0.0 and 1.0).")],
        outputs=[Output(IO.FLOAT, "sigma_value")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, sampling_percent: float, return_actual_sigma: bool) -> tuple[Any, ...]:
        value = model.sampling.percent_to_sigma(sampling_percent)
        if return_actual_sigma:
            if sampling_percent == 0.0:
                value = model.sampling.sigma_max
            elif sampling_percent == 1.0:
                value = model.sampling.sigma_min
        return (float(value),)


class RandomNoise(Node):
    """Seeded initial noise (the seed also drives the noise of stochastic samplers)."""

    SCHEMA = Schema(
        "RandomNoise", display_name="RandomNoise", category=f"{_CATEGORY}/noise",
        inputs=[Int("noise_seed", 0, min=0, max=_SEED_MAX, control_after_generate=True, tooltip="The random seed of the noise.")],
        outputs=[Output(NOISE, "NOISE")],
    )

    @classmethod
    def execute(cls, noise_seed: int) -> tuple[Any, ...]:
        return (NoiseSource(int(noise_seed)),)


class DisableNoise(Node):
    """No initial noise: sample the latent as it is (e.g. the second half of a split schedule)."""

    SCHEMA = Schema(
        "DisableNoise", display_name="DisableNoise", category=f"{_CATEGORY}/noise",
        inputs=[],
        outputs=[Output(NOISE, "NOISE")],
    )

    @classmethod
    def execute(cls) -> tuple[Any, ...]:
        return (NoiseSource(0, enabled=False),)


class VOIDSampler(Node):
    """The DDIM walk VOID's video inpainting models were trained with, for SamplerCustom and
    SamplerCustomAdvanced: it starts from the noise as drawn (not scaled by the first σ, the latent
    not mixed in, a noise mask not applied, as ComfyUI's does) and steps in α = 1 / (1 + σ²)."""

    SCHEMA = Schema(
        "VOIDSampler", display_name="VOIDSampler", category="sampling/samplers",
        inputs=[],
        outputs=[Output(SAMPLER, "SAMPLER", tooltip="VOID's DDIM sampler.")],
    )

    @classmethod
    def execute(cls) -> tuple[Any, ...]:
        return (SamplerChoice("void_ddim", walk=void_ddim),)


class VOIDWarpedNoiseSource(Node):
    """Uses a LATENT's samples as the initial noise (e.g. VOID's flow-warped noise) for SamplerCustomAdvanced."""

    SCHEMA = Schema(
        "VOIDWarpedNoiseSource", display_name="VOIDWarpedNoiseSource", category="sampling/noise",
        inputs=[Latent("warped_noise", tooltip="The latent whose samples become the noise (VOIDWarpedNoise's output).")],
        outputs=[Output(NOISE, "NOISE")],
    )

    @classmethod
    def execute(cls, warped_noise: Any) -> tuple[Any, ...]:
        samples = warped_noise.get("samples") if isinstance(warped_noise, dict) else None
        if not isinstance(samples, torch.Tensor) or is_nested(samples):
            raise ValidationError("`warped_noise` must be a LATENT holding a samples tensor")
        return (NoiseSource(0, samples=samples),)


class AddNoise(Node):
    """Noise a latent to the level a schedule starts from (|σ_first − σ_last|), without sampling."""

    SCHEMA = Schema(
        "AddNoise", display_name="AddNoise", category="_for_testing/custom_sampling/noise",
        inputs=[Model("model", tooltip="Whose latent scale to use."),
                Custom(NOISE, "noise", tooltip="The noise (RandomNoise or DisableNoise)."),
                _sigmas_input(tooltip="The schedule whose span sets the noise level."),
                Latent("latent_image", tooltip="The latent to noise.")],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, noise: NoiseSource, sigmas: torch.Tensor,
                latent_image: dict[str, Any]) -> tuple[Any, ...]:
        if len(sigmas) == 0:
            return (latent_image,)
        raw = latent_image["samples"]
        scale = (sigmas[0] - sigmas[-1]).abs() if len(sigmas) > 1 else sigmas[0]
        # an all-zero latent (EmptyLatentImage) is not shifted into the model's latent space
        lat = model.to_model_space(raw) if bool(raw.count_nonzero()) else raw.float()
        noisy = noise_scaling(model.sampling, scale, noise.generate(latent_image), lat)
        noisy = torch.nan_to_num(model.from_model_space(noisy), nan=0.0, posinf=0.0, neginf=0.0)
        out = dict(latent_image)
        out["samples"] = noisy
        return (out,)


class CFGGuider(Node):
    """Classifier-free guidance between a positive and a negative conditioning."""

    SCHEMA = Schema(
        "CFGGuider", display_name="CFGGuider", category=f"{_CATEGORY}/guiders",
        inputs=[
            Model("model", tooltip="The model used for denoising."),
            Conditioning("positive", tooltip="The conditioning describing what to include."),
            Conditioning("negative", tooltip="The conditioning describing what to exclude."),
            Float("cfg", 8.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="Classifier-free guidance scale."),
        ],
        outputs=[Output(GUIDER, "GUIDER")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, positive: list[Any], negative: list[Any], cfg: float) -> tuple[Any, ...]:
        if not negative:
            raise ValidationError("CFGGuider: `negative` must hold at least one conditioning")
        return (Guider(model, positive, negative, float(cfg)),)


class BasicGuider(Node):
    """The model steered by one conditioning, without classifier-free guidance."""

    SCHEMA = Schema(
        "BasicGuider", display_name="BasicGuider", category=f"{_CATEGORY}/guiders",
        inputs=[Model("model", tooltip="The model used for denoising."),
                Conditioning("conditioning", tooltip="The conditioning to follow.")],
        outputs=[Output(GUIDER, "GUIDER")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, conditioning: list[Any]) -> tuple[Any, ...]:
        return (Guider(model, conditioning, None, 1.0),)


class SamplerCustom(Node):
    """Sample a latent along given sigmas with a chosen sampler; also returns the last denoised estimate."""

    SCHEMA = Schema(
        "SamplerCustom", display_name="SamplerCustom", category=_CATEGORY,
        inputs=[
            Model("model", tooltip="The model used for denoising."),
            Boolean("add_noise", True, tooltip="Add seeded noise to the latent first."),
            Int("noise_seed", 0, min=0, max=_SEED_MAX, control_after_generate=True, tooltip="The random seed of the noise."),
            Float("cfg", 8.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="Classifier-free guidance scale."),
            Conditioning("positive", tooltip="The conditioning describing what to include."),
            Conditioning("negative", tooltip="The conditioning describing what to exclude."),
            Custom(SAMPLER, "sampler", tooltip="The sampling algorithm (KSamplerSelect)."),
            _sigmas_input(),
            Latent("latent_image", tooltip="The latent to denoise."),
        ],
        outputs=[Output(IO.LATENT, "output"), Output(IO.LATENT, "denoised_output")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, add_noise: bool, noise_seed: int, cfg: float, positive: list[Any],
                negative: list[Any], sampler: SamplerChoice, sigmas: torch.Tensor,
                latent_image: dict[str, Any]) -> tuple[Any, ...]:
        guider = Guider(model, positive, negative, float(cfg))
        return _run(guider, NoiseSource(int(noise_seed), enabled=bool(add_noise)), sampler, sigmas, latent_image)


class SamplerCustomAdvanced(Node):
    """Sample a latent from separate noise, guider, sampler and sigmas values."""

    SCHEMA = Schema(
        "SamplerCustomAdvanced", display_name="SamplerCustomAdvanced", category=_CATEGORY,
        inputs=[
            Custom(NOISE, "noise", tooltip="The initial noise (RandomNoise or DisableNoise)."),
            Custom(GUIDER, "guider", tooltip="The model and conditioning (CFGGuider or BasicGuider)."),
            Custom(SAMPLER, "sampler", tooltip="The sampling algorithm (KSamplerSelect)."),
            _sigmas_input(),
            Latent("latent_image", tooltip="The latent to denoise."),
        ],
        outputs=[Output(IO.LATENT, "output"), Output(IO.LATENT, "denoised_output")],
    )

    @classmethod
    def execute(cls, noise: NoiseSource, guider: Guider, sampler: SamplerChoice, sigmas: torch.Tensor,
                latent_image: dict[str, Any]) -> tuple[Any, ...]:
        if not isinstance(guider, Guider):
            return _run_pack_guider(guider, noise, sampler, sigmas, latent_image)
        return _run(guider, noise, sampler, sigmas, latent_image)


def _run_pack_guider(guider: Any, noise: NoiseSource, sampler: SamplerChoice, sigmas: torch.Tensor,
                     latent: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A GUIDER a custom pack made (a ``comfy.samplers.CFGGuider`` subclass) samples through its own
    ``sample`` method, as ComfyUI calls it; its last denoised estimate is not reported, so both
    outputs hold the result."""
    if not callable(getattr(guider, "sample", None)):
        raise ValidationError(f"SamplerCustomAdvanced: `guider` must be a GUIDER (CFGGuider, BasicGuider or a "
                              f"pack's guider with a `sample` method), got {type(guider).__name__}")
    raw = guider.sample(noise.generate(latent), latent["samples"], sampler, sigmas,
                        denoise_mask=latent.get("noise_mask"), seed=noise.seed)
    out = dict(latent)
    out["samples"] = raw
    return out, out
