"""KVCacheReport: measure a model's speed, per-token latency and cache memory per cache mode."""

from __future__ import annotations

import json

import numpy as np
import torch

from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Int, Node, NodeOutput, Output, Schema, String, services
from nodeloom.nodes.text._common import llm_input
from nodeloom.text.kv_bench import format_report, kv_report, plot_latency
from nodeloom.text.kv_cache import CACHE_MODES
from nodeloom.text.llm import LLM

__all__ = ["KVCacheReport"]


class KVCacheReport(Node):
    """Compare KV-cache modes on a language model: tokens/s, per-token latency against length,
    and the memory each cache holds, checked against 2 × layers × kv heads × head dim ×
    bytes per element × tokens. Outputs a text table, the full report as JSON and a plot
    of latency against sequence position (flat with a cache, growing without).
    """

    SCHEMA = Schema(
        node_id="KVCacheReport",
        display_name="KV Cache Report",
        category="text/llm",
        output_node=True,
        inputs=[
            llm_input(),
            String("modes", "none, dynamic, static", tooltip=f"Comma-separated cache modes from: {', '.join(CACHE_MODES)}."),
            Int("prompt_tokens", 32, min=1, max=8192, tooltip="Length of the random prompt."),
            Int("new_tokens", 128, min=2, max=8192, tooltip="Tokens generated per mode (greedy, end token ignored)."),
            Int("sliding_window", 64, min=2, max=1 << 20, tooltip="Window of the `sliding` mode."),
            Int("repeats", 1, min=1, max=10, tooltip="Runs per mode; the fastest is kept."),
        ],
        outputs=[
            Output(IO.STRING, "report", tooltip="A table: tokens/s, speed-up, latency slope, cache bytes vs formula."),
            Output(IO.STRING, "json", tooltip="The full report as JSON (per-token latencies included)."),
            Output(IO.IMAGE, "plot", tooltip="Per-token latency (ms) against sequence position, one line per mode."),
        ],
    )

    @classmethod
    def execute(cls, llm: LLM, modes: str, prompt_tokens: int, new_tokens: int, sliding_window: int = 64,
                repeats: int = 1) -> NodeOutput:
        chosen = tuple(m.strip() for m in modes.split(",") if m.strip())
        bad = [m for m in chosen if m not in CACHE_MODES]
        if bad or not chosen:
            raise ValidationError(f"`modes` must list cache modes from {list(CACHE_MODES)}, got {modes!r}")
        with services().models.device_lock:
            report = kv_report(llm.model, prompt_tokens=prompt_tokens, new_tokens=new_tokens, modes=chosen,
                               window=sliding_window, repeats=repeats)
        table = format_report(report)
        image = np.asarray(plot_latency(report).convert("RGB"), dtype=np.float32) / 255.0
        plot = torch.from_numpy(image).unsqueeze(0)
        return NodeOutput(table, json.dumps(report), plot, ui={"text": [table]})
