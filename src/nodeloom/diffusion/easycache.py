"""EasyCache: a step cache for flow transformers that skips model calls while the model's output
is predicted to change little, reusing the last computed output-minus-input difference.

:class:`EasyCache` wraps a family adapter. Per step, the first conditioning group's call decides:
the change of its input since the last computed step (mean absolute difference on a subsampled
grid) times the last measured ratio of output change to input change, over the last output's mean
magnitude, is added to a running sum; below ``reuse_threshold`` the step is skipped for every
group (output = input + the group's cached difference), otherwise the sum restarts and the model
runs. Only steps with σ between ``start_percent`` and ``end_percent`` of the run may be skipped.
A run is told from the next by its conditioning entries (each sampling run makes its own) or by σ
rising again; each run starts with an empty cache, as ComfyUI's per-run copy does.
Model code: imports no node class, engine or adapter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["EasyCache", "EasyCacheState"]

log = logging.getLogger(__name__)

#: every 8th latent pixel on each of the last two axes enters the change measures (ComfyUI's factor)
SUBSAMPLE = 8


@dataclass
class EasyCacheState:
    """What one sampling run has learned; a new run (σ rising again) starts a fresh one."""

    first_key: Any = None
    step_sigma: float | None = None
    skip_step: bool = False
    rate: float | None = None  # output change / input change, last measured
    accumulated: float = 0.0
    x_prev: torch.Tensor | None = None
    out_prev: torch.Tensor | None = None
    out_prev_norm: float | None = None
    diffs: dict[Any, torch.Tensor] = field(default_factory=dict)
    #: the conditioning entries this run's calls carried (held, so their ids stay theirs)
    entries: dict[int, Any] = field(default_factory=dict)
    shape: tuple[Any, ...] | None = None
    calls: int = 0
    skipped_calls: int = 0
    skipped_steps: int = 0
    steps: int = 0


class EasyCache:
    """A family adapter with EasyCache in front of it (see the module docstring).

    Args:
        adapter: the family adapter ``adapter(module, x, sigma, group, **kw)`` → model output.
        reuse_threshold: the running sum of predicted relative change below which steps are skipped.
        start_percent / end_percent: skipping is allowed while ``σ(end) < σ <= σ(start)``; at or
            below σ(end) every call runs and the cache is left as it is. The sigmas are read off the
            schedule the run samples with (:meth:`prepare_run`), else off ``sampling``.
        sampling: the model's schedule when the patch was made.
        verbose: log each decision.
    """

    def __init__(self, adapter: Any, reuse_threshold: float, start_percent: float, end_percent: float,
                 sampling: Any, verbose: bool = False) -> None:
        self.adapter = adapter
        self.reuse_threshold = float(reuse_threshold)
        self.start_percent, self.end_percent = float(start_percent), float(end_percent)
        self.verbose = verbose
        self.state = EasyCacheState()
        self.last_run: EasyCacheState | None = None
        self._range(sampling)

    def _range(self, sampling: Any) -> None:
        self.sigma_start = float(sampling.percent_to_sigma(self.start_percent))
        self.sigma_end = float(sampling.percent_to_sigma(self.end_percent))

    def prepare_run(self, sampling: Any) -> None:
        """A sampling run begins on ``sampling`` (the MODEL's schedule then, e.g. after ModelSamplingSD3,
        as the templates place it): the cache empties and the σ range is read off that schedule."""
        if self.state.calls:
            self._finish()
        self._range(sampling)
        log.info("EasyCache enabled - threshold %s, start_percent %s, end_percent %s", self.reuse_threshold,
                 self.start_percent, self.end_percent)

    @staticmethod
    def _sub(x: torch.Tensor) -> torch.Tensor:
        return x[..., ::SUBSAMPLE, ::SUBSAMPLE]

    def _begin_step(self, sigma: float, entries: list[Any]) -> EasyCacheState:
        st = self.state
        # a new run: a step opened by prompts this run has not seen, or σ rising (when no prepare_run told us)
        fresh = st.entries and sigma != st.step_sigma and not any(id(e) in st.entries for e in entries)
        if fresh or (st.step_sigma is not None and sigma > st.step_sigma):
            self._finish()
            st = self.state
        st.entries.update((id(e), e) for e in entries)
        if st.step_sigma != sigma:
            st.step_sigma, st.skip_step = sigma, False
            st.steps += 1
        return st

    def _finish(self) -> None:
        st = self.state
        if st.calls:
            log.info("EasyCache - skipped %d/%d steps", st.skipped_steps, st.steps)
        self.last_run, self.state = st, EasyCacheState()

    def _reuse(self, st: EasyCacheState, key: Any, x: torch.Tensor) -> torch.Tensor:
        st.skipped_calls += 1
        return x + st.diffs[key].to(x.device, x.dtype)

    def __call__(self, module: Any, x: torch.Tensor, sigma: Any, group: Any, **kw: Any) -> torch.Tensor:
        s = float(torch.as_tensor(sigma).reshape(-1)[0])
        st = self._begin_step(s, list(group.entries))
        st.calls += 1
        if s <= self.sigma_end:  # past the end: plain calls, the cache kept as it was
            return self.adapter(module, x, sigma, group, **kw)
        key = tuple(id(e) for e in group.entries)
        meta = (x.device, x.dtype, tuple(x.shape))
        if st.shape is not None and st.shape != meta:  # another shape: nothing cached fits
            log.warning("EasyCache - the input's shape, dtype or device changed; the cache restarts")
            self.state = st = EasyCacheState(step_sigma=s, steps=st.steps, calls=st.calls, entries=st.entries)
        st.shape = meta
        change = None
        if s <= self.sigma_start:
            if st.skip_step and key in st.diffs:
                return self._reuse(st, key, x)
            if st.first_key is None:
                st.first_key = key
            if key == st.first_key and st.x_prev is not None:
                change = float((self._sub(x) - st.x_prev).abs().mean())
                if st.out_prev_norm and st.rate is not None:
                    st.accumulated += st.rate * change / st.out_prev_norm
                    if st.accumulated < self.reuse_threshold and key in st.diffs:
                        if self.verbose:
                            log.info("EasyCache - skipping σ %.4f (accumulated change %.4f)", s, st.accumulated)
                        st.skip_step = True
                        st.skipped_steps += 1
                        return self._reuse(st, key, x)
                    st.accumulated = 0.0
        out = self.adapter(module, x, sigma, group, **kw)
        if key == st.first_key and st.out_prev is not None and change:
            st.rate = float((self._sub(out) - st.out_prev).abs().mean()) / change
        st.diffs[key] = (out - x).detach()
        if key == st.first_key:
            st.x_prev, st.out_prev = self._sub(x).clone(), self._sub(out).clone()
            st.out_prev_norm = float(out.abs().mean())
        return out
