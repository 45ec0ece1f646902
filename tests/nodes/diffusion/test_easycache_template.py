"""EasyCache as the HunyuanVideo 1.5 720p text-to-video template wires it (UNETLoader → EasyCache
(0.2, 0.15, 0.95) → ModelSamplingSD3 7 → CFGGuider 6, BasicScheduler on EasyCache's MODEL), on
tiny HunyuanVideo 1.5 files through the Engine: the run succeeds, skips model calls and stays
close to the run without the cache."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom.testing.tiny_hunyuan_video15 import HV15_T2V_WORKFLOW, build_tiny_hunyuan_video15
from tests.nodes.diffusion.family_helpers import engine_for, run_ok


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    build_tiny_hunyuan_video15(root)
    return root


def _prompt(cached: bool) -> dict:
    prompt = copy.deepcopy(HV15_T2V_WORKFLOW)
    prompt["128"]["inputs"]["steps"] = 12
    if cached:
        prompt["105"] = {"class_type": "EasyCache", "inputs": {"model": ["12", 0], "reuse_threshold": 0.2,
                                                               "start_percent": 0.15, "end_percent": 0.95,
                                                               "verbose": False}}
        prompt["132"]["inputs"]["model"] = ["105", 0]
        prompt["128"]["inputs"]["model"] = ["105", 0]
    return prompt


def test_hunyuan_video15_template_with_easycache_skips_steps_and_stays_close(tmp_path, models):
    with engine_for(tmp_path, models) as engine:
        plain = run_ok(engine, _prompt(False)).value("127")["samples"]
        result = run_ok(engine, _prompt(True))
        cached = result.value("127")["samples"]
        cache = result.value("105").adapter
    run = cache.last_run if cache.state.calls == 0 else cache.state
    assert run.steps == 12 and run.skipped_steps > 0
    # the negative and positive prompts have different lengths here: two calls a step, both skipped together
    assert run.calls == 24 and run.skipped_calls == 2 * run.skipped_steps
    relative = float((cached - plain).norm() / plain.norm())
    assert 0 < relative < 0.15, relative  # 5 of 12 steps skipped, 6 % here
