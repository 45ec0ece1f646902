"""Sampler nodes of ComfyUI's custom-sampling family beyond the basic ones: ER-SDE, SA-Solver,
SEEDS-2, Euler CFG++, adaptive DPM-Solver and LCM with upscaling, with their solver options
(ComfyUI's node ids, inputs and defaults).

Each node picks an algorithm of :mod:`nodeloom.diffusion.samplers` and its keyword options into
a SAMPLER value (LCM-upscale's walk, which resizes latents between steps, lives here); sampling
itself runs in SamplerCustom(Advanced).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.samplers import ER_SDE_SOLVERS, euler_cfg_pp_alternative
from nodeloom.node_api import Boolean, Combo, Float, Int, Model, Node, Output, Schema, ValidationError
from nodeloom.nodes.diffusion.custom_sampling import SAMPLER, SamplerChoice
from nodeloom.nodes.diffusion.latent import upscale_latent

__all__ = ["SamplerDPMAdaptative", "SamplerER_SDE", "SamplerEulerCFGpp", "SamplerLCMUpscale", "SamplerSASolver",
           "SamplerSEEDS2", "lcm_upscale"]

_CATEGORY = "sampling/custom_sampling/samplers"


def _float(name: str, default: float, low: float, high: float, tooltip: str, step: float = 0.01) -> Float:
    return Float(name, default, min=low, max=high, step=step, round=False, tooltip=tooltip)


class SamplerER_SDE(Node):  # noqa: N801 - ComfyUI's node id
    """ER-SDE-Solver (Cui et al. 2023): extended reverse-time SDE, its reverse-time SDE or its ODE form."""

    SCHEMA = Schema(
        "SamplerER_SDE", display_name="SamplerER_SDE", category=_CATEGORY,
        inputs=[
            Combo("solver_type", list(ER_SDE_SOLVERS), tooltip="ER-SDE's own noise scale, a reverse-time SDE, or the "
                                                               "deterministic ODE."),
            Int("max_stage", 3, min=1, max=3, tooltip="Highest solver stage (order) used."),
            _float("eta", 1.0, 0.0, 100.0, "How much fresh noise each step adds (0: a deterministic ODE walk); the ER-SDE"
                                           " solver type ignores it."),
            _float("s_noise", 1.0, 0.0, 100.0, "Scale of the injected noise."),
        ],
        outputs=[Output(SAMPLER, "SAMPLER")],
    )

    @classmethod
    def execute(cls, solver_type: str, max_stage: int, eta: float, s_noise: float) -> tuple[Any, ...]:
        options = (("max_stage", max_stage), ("solver_type", solver_type), ("eta", eta), ("s_noise", s_noise))
        return (SamplerChoice("er_sde", options),)


class SamplerSASolver(Node):
    """SA-Solver (Xue et al. 2023): stochastic Adams predictor and corrector, noisy between two
    points of the model's schedule."""

    SCHEMA = Schema(
        "SamplerSASolver", display_name="SamplerSASolver", category=_CATEGORY,
        inputs=[
            Model("model", tooltip="The model whose schedule places the stochastic interval."),
            _float("eta", 1.0, 0.0, 10.0, "Noise strength τ inside the stochastic interval."),
            _float("sde_start_percent", 0.2, 0.0, 1.0, "Where the stochastic interval starts (share of the schedule).",
                   step=0.001),
            _float("sde_end_percent", 0.8, 0.0, 1.0, "Where the stochastic interval ends (share of the schedule).",
                   step=0.001),
            _float("s_noise", 1.0, 0.0, 100.0, "Scale of the injected noise."),
            Int("predictor_order", 3, min=1, max=6, tooltip="Past estimates the predictor uses."),
            Int("corrector_order", 4, min=0, max=6, tooltip="Past estimates the corrector uses (0: no corrector)."),
            Boolean("use_pece", tooltip="Evaluate the model again on each corrected state (one more call per step)."),
            Boolean("simple_order_2", tooltip="Use the paper's simplified coefficients for two-point steps."),
        ],
        outputs=[Output(SAMPLER, "SAMPLER")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, eta: float, sde_start_percent: float, sde_end_percent: float,
                s_noise: float, predictor_order: int, corrector_order: int, use_pece: bool,
                simple_order_2: bool) -> tuple[Any, ...]:
        high = float(model.sampling.percent_to_sigma(sde_start_percent))
        low = float(model.sampling.percent_to_sigma(sde_end_percent))
        options = (("eta", eta), ("sde_sigmas", (high, low)), ("s_noise", s_noise),
                   ("predictor_order", predictor_order), ("corrector_order", corrector_order),
                   ("simple_order_2", simple_order_2))
        return (SamplerChoice("sa_solver_pece" if use_pece else "sa_solver", options),)


class SamplerSEEDS2(Node):
    """SEEDS-2 (Gonzalez et al. 2023), a two-stage stochastic exponential solver. Presets:
    seeds_2 = the defaults; exp_heun_2_x0 = phi_2, r 1.0, eta 0.0; exp_heun_2_x0_sde = phi_2,
    r 1.0, eta 1.0, s_noise 1.0."""

    SCHEMA = Schema(
        "SamplerSEEDS2", display_name="SamplerSEEDS2", category=_CATEGORY,
        inputs=[
            Combo("solver_type", ["phi_1", "phi_2"], tooltip="How the two stages' estimates are combined."),
            _float("eta", 1.0, 0.0, 100.0, "Stochastic strength."),
            _float("s_noise", 1.0, 0.0, 100.0, "SDE noise multiplier."),
            _float("r", 0.5, 0.01, 1.0, "Relative step size for the intermediate stage (c2 node)."),
        ],
        outputs=[Output(SAMPLER, "SAMPLER")],
    )

    @classmethod
    def execute(cls, solver_type: str, eta: float, s_noise: float, r: float) -> tuple[Any, ...]:
        options = (("solver_type", solver_type), ("eta", eta), ("s_noise", s_noise), ("r", r))
        return (SamplerChoice("seeds_2", options),)


class SamplerEulerCFGpp(Node):
    """Euler CFG++: "regular" renoises with the unguided estimate; "alternative" steps along
    x − 2·guided + unguided."""

    SCHEMA = Schema(
        "SamplerEulerCFGpp", display_name="SamplerEulerCFG++", category="_for_testing", experimental=True,
        inputs=[Combo("version", ["regular", "alternative"], tooltip="Which form of the CFG++ Euler step.")],
        outputs=[Output(SAMPLER, "SAMPLER")],
    )

    @classmethod
    def execute(cls, version: str) -> tuple[Any, ...]:
        if version == "alternative":
            return (SamplerChoice("euler_cfg_pp", walk=euler_cfg_pp_alternative),)
        return (SamplerChoice("euler_cfg_pp"),)


class SamplerDPMAdaptative(Node):
    """DPM-Solver-12/23 with adaptive step size: the error of each step against its embedded
    lower-order estimate steers a PID step-size controller; ``eta`` > 0 adds ancestral noise."""

    SCHEMA = Schema(
        "SamplerDPMAdaptative", display_name="SamplerDPMAdaptative", category=_CATEGORY,
        inputs=[
            Int("order", 3, min=2, max=3, tooltip="Solver order: 2 (DPM-Solver-12) or 3 (DPM-Solver-23)."),
            _float("rtol", 0.05, 0.0, 100.0, "Relative error tolerance of a step."),
            _float("atol", 0.0078, 0.0, 100.0, "Absolute error tolerance of a step."),
            _float("h_init", 0.05, 0.0, 100.0, "First step size, in log-sigma."),
            _float("pcoeff", 0.0, 0.0, 100.0, "Proportional coefficient of the step-size controller."),
            _float("icoeff", 1.0, 0.0, 100.0, "Integral coefficient of the step-size controller."),
            _float("dcoeff", 0.0, 0.0, 100.0, "Derivative coefficient of the step-size controller."),
            _float("accept_safety", 0.81, 0.0, 100.0, "Smallest step-size factor at which a step is accepted."),
            _float("eta", 0.0, 0.0, 100.0, "Ancestral noise strength (0: deterministic)."),
            _float("s_noise", 1.0, 0.0, 100.0, "Scale of the injected noise."),
        ],
        outputs=[Output(SAMPLER, "SAMPLER")],
    )

    @classmethod
    def execute(cls, order: int, rtol: float, atol: float, h_init: float, pcoeff: float, icoeff: float,
                dcoeff: float, accept_safety: float, eta: float, s_noise: float) -> tuple[Any, ...]:
        if order not in (2, 3):
            raise ValidationError(f"`order` must be 2 or 3, got {order}")
        options = (("order", order), ("rtol", rtol), ("atol", atol), ("h_init", h_init), ("pcoeff", pcoeff),
                   ("icoeff", icoeff), ("dcoeff", dcoeff), ("accept_safety", accept_safety), ("eta", eta),
                   ("s_noise", s_noise))
        return (SamplerChoice("dpm_adaptive", options),)


#: SamplerLCMUpscale's resize methods (ComfyUI's order)
LCM_UPSCALE_METHODS = ["bislerp", "nearest-exact", "bilinear", "area", "bicubic"]


def lcm_upscale(denoise: Any, x: torch.Tensor, sigmas: torch.Tensor, noise: Any, callback: Any,
                total_upscale: float = 2.0, upscale_method: str = "bislerp",
                upscale_steps: int | None = None) -> torch.Tensor:
    """LCM whose clean estimate is resized a little after each of the first steps, growing the
    latent to ``total_upscale`` times its size (in ``upscale_steps`` equal factors; None: about
    half the steps), then re-noised to the next sigma as ``x0 + σ·n``."""
    if upscale_steps is None:
        upscale_steps = max(len(sigmas) // 2 + 1, 2)
    else:
        upscale_steps = min(upscale_steps + 1, len(sigmas) + 1)
    factors = np.linspace(1.0, total_upscale, upscale_steps)[1:]
    height, width = x.shape[-2], x.shape[-1]
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        x = den
        if i < len(factors):
            x = upscale_latent(x, round(width * factors[i]), round(height * factors[i]), upscale_method, "disabled")
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise(x, sigmas[i], sigmas[i + 1])
        callback(i, x, den)
    return x


class SamplerLCMUpscale(Node):
    """LCM sampling that upscales the latent between its first steps (``scale_steps`` of them; -1:
    about half the steps) up to ``scale_ratio`` times its size."""

    SCHEMA = Schema(
        "SamplerLCMUpscale", display_name="SamplerLCMUpscale", category=_CATEGORY,
        inputs=[
            Float("scale_ratio", 1.0, min=0.1, max=20.0, step=0.01, tooltip="Final size over the input size."),
            Int("scale_steps", -1, min=-1, max=1000, step=1, tooltip="Steps the upscaling is spread over "
                                                                    "(-1: about half the steps)."),
            Combo("upscale_method", LCM_UPSCALE_METHODS, tooltip="How the latent is resized."),
        ],
        outputs=[Output(SAMPLER, "SAMPLER")],
    )

    @classmethod
    def execute(cls, scale_ratio: float, scale_steps: int, upscale_method: str) -> tuple[Any, ...]:
        if upscale_method not in LCM_UPSCALE_METHODS:
            raise ValidationError(f"`upscale_method` must be one of {LCM_UPSCALE_METHODS}, got {upscale_method!r}")
        options = (("total_upscale", scale_ratio), ("upscale_steps", None if scale_steps < 0 else scale_steps),
                   ("upscale_method", upscale_method))
        return (SamplerChoice("lcm", options, walk=lcm_upscale),)
