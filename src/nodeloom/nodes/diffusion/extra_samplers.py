"""Sampler nodes of ComfyUI's custom-sampling family beyond the basic ones: ER-SDE, SA-Solver,
SEEDS-2 and Euler CFG++ with their solver options (ComfyUI's node ids, inputs and defaults).

Each node only picks an algorithm of :mod:`nodeloom.diffusion.samplers` and its keyword options
into a SAMPLER value; sampling itself runs in SamplerCustom(Advanced).
"""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.samplers import ER_SDE_SOLVERS, euler_cfg_pp_alternative
from nodeloom.node_api import Boolean, Combo, Float, Int, Model, Node, Output, Schema
from nodeloom.nodes.diffusion.custom_sampling import SAMPLER, SamplerChoice

__all__ = ["SamplerER_SDE", "SamplerEulerCFGpp", "SamplerSASolver", "SamplerSEEDS2"]

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
            _float("eta", 1.0, 0.0, 100.0, "Stochastic strength of reverse-time SDE.\nWhen eta=0, it reduces to "
                                           "deterministic ODE. This setting doesn't apply to ER-SDE solver type."),
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
