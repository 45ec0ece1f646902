"""Text generation helpers: stop strings, held-back streaming, prompt formatting, the loop's limits."""

from __future__ import annotations

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.text.decode import DecodeLoop
from nodeloom.text.generate import GenerationSettings, _held_back, format_prompt, generate_text, parse_stop_strings
from nodeloom.text.sampling import SamplingSettings


def test_parse_stop_strings():
    assert parse_stop_strings("###\n\\n\\n\n\n###") == ("###", "\n\n")


def test_held_back_suffix_is_a_stop_prefix():
    assert _held_back("hello wor", ["world"]) == 3
    assert _held_back("hello", ["world"]) == 0
    assert _held_back("a #", ["##", "#!x"]) == 1


def test_format_prompt_with_and_without_template(tiny_llms):
    llm = tiny_llms["llama"]
    chat = format_prompt(llm, "hi", "be brief")
    assert chat == "<|system|>be brief<|end|><|user|>hi<|end|><|assistant|>"
    assert format_prompt(llm, "hi", "be brief", use_chat_template=False) == "be brief\n\nhi"
    assert format_prompt(llm, "hi", use_chat_template=False) == "hi"


def test_streamed_text_never_shows_a_partial_stop(tiny_llms):
    llm = tiny_llms["gpt2"]
    settings = GenerationSettings(max_new_tokens=30, stop_at_eos=False)
    full = generate_text(llm, "a photo", settings, use_chat_template=False).text
    stop = full[10:14]
    updates = []
    cut = generate_text(llm, "a photo", GenerationSettings(max_new_tokens=30, stop_at_eos=False, stop_strings=(stop,)),
                        use_chat_template=False, on_update=updates.append)
    assert cut.stop_reason == "stop_string" and cut.text == full[: full.find(stop)]
    assert all(stop not in u.text for u in updates)
    assert updates[-1].text == cut.text


def test_eos_ends_generation(tiny_llms):
    llm = tiny_llms["llama"]
    eos = llm.tokenizer.eos_token_id
    ids = torch.tensor([[5, 6, 7]])
    free = list(DecodeLoop(llm.model, ids, max_new_tokens=10))
    stopped = list(DecodeLoop(llm.model, ids, max_new_tokens=10, eos_ids=[free[2]]))
    assert stopped == free[: free.index(free[2]) + 1]
    assert eos is not None


def test_loop_limits_are_validated(tiny_llms):
    model = tiny_llms["llama"].model
    with pytest.raises(ValidationError, match="`max_new_tokens` must be ≥ 1"):
        DecodeLoop(model, torch.tensor([[1]]), max_new_tokens=0)
    with pytest.raises(ValidationError, match=r"\[1, P\] tensor"):
        DecodeLoop(model, torch.zeros((1, 0), dtype=torch.long), max_new_tokens=2)


def test_unfinished_characters_are_held_back(tiny_llms):
    llm = tiny_llms["llama"]
    updates = []
    settings = GenerationSettings(max_new_tokens=60, stop_at_eos=False, sampling=SamplingSettings(temperature=1.5), seed=1)
    result = generate_text(llm, "ünïcödé 🦊", settings, on_update=updates.append)
    partial = [llm.tokenizer.decode(result.token_ids[:n]) for n in range(1, len(result.token_ids) + 1)]
    assert any(p.endswith("\ufffd") for p in partial), "the sample should cut a multi-byte character"
    assert all("\ufffd" not in u.text[-1:] for u in updates)
    assert all(b.text.startswith(a.text) for a, b in zip(updates, updates[1:]))
