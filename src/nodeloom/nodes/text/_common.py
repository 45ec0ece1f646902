"""Inputs and helpers shared by the text pack's generating nodes.

The sampling/cache widgets (so TextGenerate and PromptExpand declare them once), the
conversion of their values into :class:`GenerationSettings`, and the stream reporter that
turns each generated token into a progress tick (which also checks for interruption), a
``nodeloom.text_stream`` event and ComfyUI's binary progress-text frame (shown on the node).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from nodeloom.errors import NodeloomError
from nodeloom.node_api import IO, Combo, Custom, Float, Input, Int, ProgressBar, context, services
from nodeloom.text.generate import GenerationSettings, StreamUpdate, parse_stop_strings
from nodeloom.text.kv_cache import CACHE_MODES, CacheSpec
from nodeloom.text.sampling import SamplingSettings

__all__ = ["BINARY_PROGRESS_TEXT", "STREAM_EVENT", "llm_input", "progress_text_frame", "sampling_inputs", "settings_from", "stream_reporter"]

#: the custom event each generated token sends (data: node, prompt_id, text, delta, index, total, done)
STREAM_EVENT = "nodeloom.text_stream"

SEED_MAX = 0xFFFF_FFFF_FFFF_FFFF

#: ComfyUI's binary event type for a node's progress text (the frontend shows it on the node)
BINARY_PROGRESS_TEXT = 3


def progress_text_frame(node_id: str, text: str) -> bytes:
    """The payload of a progress-text frame: uint32 node id length, node id, UTF-8 text."""
    node = str(node_id).encode("utf-8")
    return struct.pack(">I", len(node)) + node + text.encode("utf-8")


def llm_input() -> Input:
    return Custom(IO.LLM, "llm", tooltip="The language model from an LLM Loader node.")


def sampling_inputs(max_new_tokens: int = 128, temperature: float = 0.7) -> list[Input]:
    """The widgets deciding how tokens are chosen and cached, in display order."""
    return [
        Int("max_new_tokens", max_new_tokens, min=1, max=8192, tooltip="The most tokens to generate."),
        Float("temperature", temperature, min=0.0, max=2.0, step=0.05,
              tooltip="0 picks the most likely token every time (greedy); higher is more varied."),
        Int("top_k", 50, min=0, max=1000, tooltip="Sample only among the k most likely tokens (0 = no limit)."),
        Float("top_p", 0.95, min=0.01, max=1.0, step=0.01,
              tooltip="Sample only among the most likely tokens whose probabilities add up to p (1 = no limit)."),
        Float("repetition_penalty", 1.1, min=0.5, max=2.0, step=0.01,
              tooltip="Above 1 discourages repeating tokens already in the text (1 = off)."),
        Int("seed", 0, min=0, max=SEED_MAX, control_after_generate=True,
            tooltip="Seed of the sampler: the same seed and settings give the same text."),
        Combo("cache_mode", list(CACHE_MODES), default="dynamic",
              tooltip="KV cache: none recomputes everything each token (slow, for comparison); dynamic grows "
                      "as needed; static pre-allocates prompt + max_new_tokens; sliding keeps only the last "
                      "`sliding_window` tokens; quantized-* store keys/values in 8 or 4 bits."),
        Int("sliding_window", 256, min=2, max=1 << 20,
            tooltip="Tokens the model attends to in `sliding` cache mode (ignored by other modes)."),
    ]


def settings_from(
    *,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    repetition_penalty: float,
    seed: int,
    cache_mode: str,
    sliding_window: int,
    stop: str = "",
) -> GenerationSettings:
    """Build :class:`GenerationSettings` from the widget values (validating them)."""
    return GenerationSettings(
        max_new_tokens=int(max_new_tokens),
        sampling=SamplingSettings(float(temperature), int(top_k), float(top_p), float(repetition_penalty)),
        seed=int(seed),
        cache=CacheSpec(cache_mode, window=int(sliding_window)),
        stop_strings=parse_stop_strings(stop),
    )


def _node_ids() -> dict[str, Any]:
    try:
        ctx = context()
    except NodeloomError:
        return {"node": None, "display_node": None, "prompt_id": None}
    return {"node": ctx.node_id, "display_node": ctx.display_node_id or ctx.node_id, "prompt_id": ctx.prompt_id}


def stream_reporter(total: int, label: str = "") -> tuple[Callable[[StreamUpdate], None], Callable[[str, int], None]]:
    """A per-token callback and a ``finish(text, tokens)`` that sends the final event.

    Each update ticks a :class:`ProgressBar` (which raises ``Interrupted`` when the run is
    interrupted) and sends :data:`STREAM_EVENT` with the text so far.
    """
    pbar = ProgressBar(total)
    ids = _node_ids()
    svc = services()

    def on_update(update: StreamUpdate) -> None:
        pbar.update_absolute(update.index, update.total)
        svc.send_event(STREAM_EVENT, {
            **ids, "label": label, "text": update.text, "delta": update.delta,
            "index": update.index, "total": update.total, "done": False,
        })
        if ids["display_node"] is not None and update.delta:
            # integer event types travel as binary WebSocket frames
            svc.send_event(BINARY_PROGRESS_TEXT, progress_text_frame(ids["display_node"], update.text))

    def finish(text: str, tokens: int) -> None:
        pbar.update_absolute(pbar.total, pbar.total)
        svc.send_event(STREAM_EVENT, {
            **ids, "label": label, "text": text, "delta": "", "index": tokens, "total": total, "done": True,
        })

    return on_update, finish
