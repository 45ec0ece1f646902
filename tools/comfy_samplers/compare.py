"""Compare nodeloom's samplers and schedulers with ComfyUI's, name by name, on analytic denoisers.

Run it with the Python of a ComfyUI installation (it imports ComfyUI's ``comfy`` package and
nodeloom's sources from this checkout)::

    /path/to/ComfyUI/venv/bin/python tools/comfy_samplers/compare.py /path/to/ComfyUI [--f64]

Both sides sample the same start from the same sigmas with the same denoiser: the exact posterior
mean of Gaussian data and of a two-component Gaussian mixture, guided (cfg 2) by a second mixture
as the "negative prompt" so the CFG++ samplers see a real unguided estimate. Stochastic samplers run
twice: first on one shared Gaussian stream (ComfyUI's ``noise_sampler`` argument), then each side
with its own noise from the same seed — ComfyUI's default noise samplers (a seeded generator, or a
torchsde Brownian tree for the SDE samplers) against nodeloom's ``step_noise``/``brownian_noise``.
Schedulers are compared on ComfyUI's SD 1.x model sampling. Samplers with options (as the option
nodes pass them) are run too. ``--flow`` runs everything on a flow-matching model instead
(ComfyUI's ``ModelSamplingDiscreteFlow`` + ``CONST`` at shift 3, multiplier 1, against nodeloom's
``FlowSampling``): the denoisers are the exact posterior means under ``x = (1 − σ)·x0 + σ·noise``,
the start is pure noise at σ = 1, and nodeloom picks each sampler's flow form as KSampler does. Prints one line per run and exits 1 when any differs by more than the
tolerance (1e-4 relative in float32, 1e-6 in float64; the few explained exceptions are listed in
``known``) or is missing.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEED = 1234


def _draws_noise(sampler) -> bool:
    """Whether a sampler asks for noise on a short schedule."""
    import torch

    asked = []
    sigmas = torch.tensor([14.6, 3.0, 0.5, 0.0])
    sampler(lambda x, s: x * 0.5, torch.zeros(1, 1, 2, 2), sigmas,
            lambda like, *_: asked.append(1) or torch.zeros_like(like), lambda *_: None)
    return bool(asked)


def _model_samplings(cms_mod, ours_schedules, flow: bool):
    """ComfyUI's and nodeloom's model sampling: SD 1.x's discrete schedule, or a shift-3 flow."""
    class _Config:
        sampling_settings: dict = {}

    if flow:
        from nodeloom.diffusion.flow import FlowSampling

        class ComfyFlow(cms_mod.ModelSamplingDiscreteFlow, cms_mod.CONST):
            pass

        comfy_ms = ComfyFlow(_Config())
        comfy_ms.set_parameters(shift=3.0, multiplier=1.0)
        return comfy_ms, FlowSampling(shift=3.0, multiplier=1.0)

    class SD1Sampling(cms_mod.ModelSamplingDiscrete, cms_mod.EPS):
        pass

    return SD1Sampling(_Config()), ours_schedules.ModelSampling()


def _denoisers(torch, flow: bool) -> dict:
    """(guided, negative) exact posterior means: Gaussian data (variance 1 or 1/2) and a two-component
    mixture ±m (variance v); ``x = x0 + σ·noise``, or ``(1 − σ)·x0 + σ·noise`` for flow models."""
    def a(s):
        return 1 - s if flow else torch.ones_like(s)

    def gauss(var: float):
        return lambda x, s: a(s) * var * x / (a(s) ** 2 * var + s ** 2)

    def mixture(m: float, v: float = 0.05):
        def den(x, s):
            total = a(s) ** 2 * v + s ** 2
            w = torch.sigmoid(2 * x * a(s) * m / total)
            mean = m * (2 * w - 1)
            return mean + a(s) * v / total * (x - a(s) * mean)
        return den

    return {"gauss": (gauss(1.0), gauss(0.5)), "mixture": (mixture(1.2), mixture(0.8))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comfyui", type=Path, help="a ComfyUI checkout")
    parser.add_argument("--f64", action="store_true", help="compare in float64 (isolates rounding)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--flow", action="store_true", help="compare on a flow-matching (CONST) model")
    args = parser.parse_args()
    sys.path[:0] = [str(REPO / "src"), str(args.comfyui.resolve())]
    sys.argv = [sys.argv[0], "--cpu"]  # ComfyUI reads its own command line on import

    import comfy.options

    comfy.options.enable_args_parsing()
    import comfy.model_sampling as cms_mod
    import comfy.samplers as comfy_samplers
    import torch

    from nodeloom.diffusion import samplers as ours_samplers
    from nodeloom.diffusion import sampling
    from nodeloom.diffusion import schedules as ours_schedules

    dtype = torch.float64 if args.f64 else torch.float32
    tol = 1e-6 if args.f64 else 1e-4
    # known, explained gaps: name -> (tolerance, why)
    known = {
        "deis": (1e-4, "ComfyUI integrates DEIS's coefficients with a 10,000-point Riemann sum, nodeloom with Gauss-Legendre"),
    }
    if not args.f64:
        known["dpm_adaptive"] = (2e-3, "float32 rounding moves the adaptive step sizes slightly")

    comfy_ms, ours_ms = _model_samplings(cms_mod, ours_schedules, args.flow)
    from nodeloom.diffusion.flow_samplers import FLOW_UNSUPPORTED, flow_sampler
    failures = 0

    print("== schedulers")
    for name in comfy_samplers.SCHEDULER_NAMES:
        if name not in ours_schedules.SCHEDULER_NAMES:
            print(f"{name:32s} MISSING")
            failures += 1
            continue
        worst = 0.0
        for steps in (1, 2, 7, 20):
            a = comfy_samplers.calculate_sigmas(comfy_ms, name, steps).float()
            b = ours_schedules.calculate_sigmas(ours_ms, name, steps)
            worst = max(worst, float("inf") if a.shape != b.shape else float(((a - b).abs() / a.abs().clamp(min=1e-6)).max()))
        failures += worst > 1e-4
        print(f"{name:32s} rel {worst:.2e}" + ("   <-- DIFF" if worst > 1e-4 else ""))

    cases = _denoisers(torch, args.flow)
    cfg = 2.0
    # stochastic samplers run twice: on one shared noise stream, then each side with its own
    # seeded noise (ComfyUI's default noise samplers against nodeloom's step/Brownian noise)
    stochastic = [n for n in comfy_samplers.SAMPLER_NAMES if n in ours_samplers.SAMPLERS and _draws_noise(ours_samplers.SAMPLERS[n])]
    # the option nodes' samplers (SamplerEulerAncestral, SamplerDPMPP_2M_SDE, ...) with non-default
    # options: (name, ComfyUI's options, ours)
    optioned = [
        ("euler_ancestral", {"eta": 0.6, "s_noise": 0.8}, {"eta": 0.6, "s_noise": 0.8}),
        ("euler_ancestral_cfg_pp", {"eta": 0.5, "s_noise": 1.3}, {"eta": 0.5, "s_noise": 1.3}),
        ("dpmpp_2s_ancestral", {"eta": 0.7, "s_noise": 0.9}, {"eta": 0.7, "s_noise": 0.9}),
        ("dpmpp_sde", {"eta": 0.8, "s_noise": 1.1, "r": 0.3}, {"eta": 0.8, "s_noise": 1.1, "r": 0.3}),
        ("dpmpp_2m_sde", {"eta": 0.5, "s_noise": 0.9, "solver_type": "heun"}, {"eta": 0.5, "s_noise": 0.9, "solver": "heun"}),
        ("dpmpp_3m_sde", {"eta": 0.4, "s_noise": 1.2}, {"eta": 0.4, "s_noise": 1.2}),
        ("lms", {"order": 2}, {"order": 2}),
        ("dpm_adaptive", {"order": 2, "rtol": 0.02, "h_init": 0.1}, {"order": 2, "rtol": 0.02, "h_init": 0.1}),
        ("dpm_adaptive", {"pcoeff": 0.3, "icoeff": 0.9, "dcoeff": 0.2, "accept_safety": 0.9},
         {"pcoeff": 0.3, "icoeff": 0.9, "dcoeff": 0.2, "accept_safety": 0.9}),
        ("dpm_adaptive", {"eta": 0.7, "s_noise": 0.9}, {"eta": 0.7, "s_noise": 0.9}),
    ]
    runs = ([(n, False, {}, {}) for n in comfy_samplers.SAMPLER_NAMES] + [(n, True, {}, {}) for n in stochastic]
            + [(n, False, theirs, ours) for n, theirs, ours in optioned])
    print("== samplers")
    for case, (cond, neg) in cases.items():
        def guided(x, s, cond=cond, neg=neg):
            c, u = cond(x, s), neg(x, s)
            return u + (c - u) * cfg, u

        class ComfyModel:
            """What ComfyUI's samplers call: the guided model, with post-CFG hooks (CFG++)."""

            def __call__(self, x, sigma, model_options=None, **_):
                s = sigma.reshape(-1)[0]
                out, u = guided(x, s)
                for hook in (model_options or {}).get("sampler_post_cfg_function", []):
                    out = hook({"denoised": out, "uncond_denoised": u, "cond_denoised": cond(x, s), "sigma": s,
                                "input": x, "model": None, "model_options": model_options})
                return out

        model = ComfyModel()
        model.inner_model = ComfyModel()
        model.inner_model.inner_model = ComfyModel()
        model.inner_model.inner_model.model_sampling = comfy_ms
        model.inner_model.model_patcher = type("Patcher", (), {"get_model_object": lambda self, _: comfy_ms})()

        class OursDenoiser:
            uncond = None

            def __call__(self, x, s):
                out, self.uncond = guided(x, s)
                return out

        for name, own_noise, theirs_opts, ours_opts in runs:
            label = f"{name}{' (own noise)' if own_noise else ''}{' ' + str(theirs_opts) if theirs_opts else ''}"
            if args.flow and name in FLOW_UNSUPPORTED:
                print(f"{case:8s} {label:32s} not available on flow models in nodeloom")
                continue
            if name not in ours_samplers.SAMPLERS:
                print(f"{case:8s} {label:32s} MISSING")
                failures += 1
                continue
            sigmas = comfy_samplers.calculate_sigmas(comfy_ms, "simple" if args.flow else "karras", args.steps).to(dtype)
            if name in ours_samplers.DISCARD_PENULTIMATE:
                sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
            x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3), dtype=dtype) * sigmas[0]
            gen_c, gen_o = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
            fn = (comfy_samplers.ksampler(name, theirs_opts) if theirs_opts else comfy_samplers.sampler_object(name)).sampler_function
            extra = {}
            extra_args = {"model_options": {}}
            ours_noise = lambda like, s, sn: torch.randn(like.shape, generator=gen_o, dtype=dtype)  # noqa: E731
            if own_noise:  # each side draws from the seed its own way (ComfyUI: its defaults)
                extra_args["seed"] = SEED
                ours_noise = (sampling.brownian_noise(SEED, x0, sigmas, on_cpu=not name.endswith("_gpu"))
                              if name in ours_samplers.BROWNIAN else sampling.step_noise(SEED))
            elif "noise_sampler" in inspect.signature(fn).parameters or theirs_opts.get("eta"):
                extra["noise_sampler"] = lambda s, sn: torch.randn(x0.shape, generator=gen_c, dtype=dtype)
            try:
                if name in ("dpm_fast", "dpm_adaptive"):  # wrappers taking (model, noise, sigmas, extra_args, callback, disable)
                    a = fn(model, x0.clone(), sigmas.clone(), {}, None, True, **extra, **theirs_opts)
                else:
                    a = fn(model, x0.clone(), sigmas.clone(), extra_args=extra_args, disable=True, **extra, **theirs_opts)
            except Exception as exc:  # e.g. ComfyUI's UniPC mixes float32 constants into float64 inputs
                print(f"{case:8s} {label:32s} not compared: ComfyUI raised {type(exc).__name__}: {exc}")
                continue
            walk = (flow_sampler(name, ours_ms) if args.flow else None) or ours_samplers.SAMPLERS[name]
            b = walk(OursDenoiser(), x0.clone(), sigmas.clone(), ours_noise, lambda *_: None, **ours_opts)
            if bool(a.isnan().any()) and bool(b.isnan().any()):  # e.g. CFG++ ancestral at σ = 1 on flow: α = 0
                print(f"{case:8s} {label:32s} NaN on both sides")
                continue
            err = float((a - b).abs().max() / a.abs().max())
            limit, why = known.get(name, (tol, ""))
            failures += err > limit
            note = "   <-- DIFF" if err > limit else (f"   (within {limit:g}: {why})" if err > tol else "")
            print(f"{case:8s} {label:32s} rel {err:.2e}{note}")
    failures += _compare_lcm_upscale(torch, cases, cfg, comfy_samplers, comfy_ms, dtype, tol, args)
    print(f"{failures} difference(s)")
    return 1 if failures else 0


def _compare_lcm_upscale(torch, cases, cfg, comfy_samplers, comfy_ms, dtype, tol, args) -> int:
    """SamplerLCMUpscale's walk against ComfyUI's ``sample_lcm_upscale``: it draws its noise with
    ``torch.randn_like`` from the global generator, so that generator is seeded and nodeloom's side
    draws the same stream from its own generator."""
    from comfy_extras.nodes_advanced_samplers import sample_lcm_upscale

    from nodeloom.nodes.diffusion.extra_samplers import lcm_upscale

    print("== SamplerLCMUpscale")
    failures = 0
    options = [(2.0, "bislerp", None), (1.5, "bicubic", 2), (3.0, "nearest-exact", 100), (0.5, "area", 1)]
    for case, (cond, neg) in cases.items():
        def guided(x, sigma, cond=cond, neg=neg, **_):
            s = sigma.reshape(-1)[0]
            c, u = cond(x, s), neg(x, s)
            return u + (c - u) * cfg

        for ratio, method, steps in options:
            sigmas = comfy_samplers.calculate_sigmas(comfy_ms, "karras", args.steps).to(dtype)
            x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3), dtype=dtype) * sigmas[0]
            torch.manual_seed(SEED)
            a = sample_lcm_upscale(guided, x0.clone(), sigmas.clone(), disable=True, total_upscale=ratio,
                                   upscale_method=method, upscale_steps=steps)
            gen = torch.Generator().manual_seed(SEED)
            b = lcm_upscale(guided, x0.clone(), sigmas.clone(),
                            lambda like, *_: torch.randn(like.shape, generator=gen, dtype=like.dtype),
                            lambda *_: None, total_upscale=ratio, upscale_method=method, upscale_steps=steps)
            label = f"ratio {ratio} {method} steps {steps}"
            if a.shape != b.shape:
                print(f"{case:8s} {label:32s} shape {tuple(a.shape)} vs {tuple(b.shape)}   <-- DIFF")
                failures += 1
                continue
            err = float((a - b).abs().max() / a.abs().max())
            failures += err > tol
            print(f"{case:8s} {label:32s} rel {err:.2e}" + ("   <-- DIFF" if err > tol else ""))
    return failures


if __name__ == "__main__":
    sys.exit(main())
