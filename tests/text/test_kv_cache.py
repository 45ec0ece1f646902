"""KV caches: the memory each mode holds matches 2 × layers × kv heads × head dim × bytes."""

from __future__ import annotations

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.text.decode import DecodeLoop
from nodeloom.text.kv_cache import CacheSpec, cache_bytes, expected_cache_bytes, expected_held_tokens, kv_shape

PROMPT = 10
NEW = 30


def _run(llm, spec, dtype_bytes):
    ids = torch.arange(3, 3 + PROMPT).unsqueeze(0)
    loop = DecodeLoop(llm.model, ids, max_new_tokens=NEW, cache=spec)
    tokens = list(loop)
    held = expected_held_tokens(spec, llm.model.config, PROMPT + NEW - 1, PROMPT + NEW)
    return tokens, cache_bytes(loop.cache), expected_cache_bytes(kv_shape(llm.model.config), held, dtype_bytes)


def test_kv_shape_reads_gqa_configs(tiny_llms):
    assert kv_shape(tiny_llms["llama"].model.config) == kv_shape(tiny_llms["mistral"].model.config)
    llama = kv_shape(tiny_llms["llama"].model.config)
    assert (llama.layers, llama.kv_heads, llama.head_dim) == (2, 2, 8)
    gpt2 = kv_shape(tiny_llms["gpt2"].model.config)
    assert (gpt2.layers, gpt2.kv_heads, gpt2.head_dim) == (2, 4, 8)
    assert gpt2.bytes_per_token(4) == 2 * 2 * 4 * 8 * 4


@pytest.mark.parametrize("kind", ["gpt2", "llama", "mistral"])
@pytest.mark.parametrize("spec", [CacheSpec("dynamic"), CacheSpec("static"), CacheSpec("sliding", window=12)],
                         ids=["dynamic", "static", "sliding"])
def test_measured_cache_memory_matches_the_formula(tiny_llms, kind, spec):
    _, measured, expected = _run(tiny_llms[kind], spec, 4)
    assert expected > 0
    assert abs(measured - expected) <= 0.10 * expected, (measured, expected)


def test_fp8_cache_holds_a_quarter_of_float32(tiny_llms):
    _, fp32, _ = _run(tiny_llms["llama"], CacheSpec("dynamic"), 4)
    _, measured, expected = _run(tiny_llms["llama"], CacheSpec("quantized-fp8"), 1)
    assert abs(measured - expected) <= 0.10 * expected
    assert measured < fp32 / 3


def test_held_tokens_per_mode(tiny_llms):
    config = tiny_llms["llama"].model.config
    assert expected_held_tokens(CacheSpec("none"), config, 50, 60) == 0
    assert expected_held_tokens(CacheSpec("dynamic"), config, 50, 60) == 50
    assert expected_held_tokens(CacheSpec("static"), config, 50, 60) == 60
    assert expected_held_tokens(CacheSpec("sliding", window=8), config, 50, 60) == 7
    windowed = tiny_llms["mistral"].model.config
    assert expected_held_tokens(CacheSpec("dynamic"), windowed, 50, 60) == 15


def test_small_sliding_window_still_decodes(tiny_llms):
    tokens, measured, expected = _run(tiny_llms["llama"], CacheSpec("sliding", window=4), 4)
    assert len(tokens) == NEW and measured == expected


def test_cache_spec_validates():
    with pytest.raises(ValidationError, match="`sliding_window` must be ≥ 2"):
        CacheSpec("sliding", window=1)
    with pytest.raises(ValidationError, match="`cache_mode` must be one of"):
        CacheSpec("paged")
    assert CacheSpec("quantized-hqq").quant_backend == "hqq"
