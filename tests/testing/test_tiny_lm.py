"""The tiny random LM builder used by the text tests and benchmarks."""

from __future__ import annotations

import json

import pytest

from nodeloom.testing.tiny_lm import build_tiny_lm, build_tiny_tokenizer


def test_tokenizer_round_trips_any_text():
    tok = build_tiny_tokenizer()
    text = "a fox, ünïcödé and 123!"
    assert tok.decode(tok(text).input_ids) == text
    assert tok.eos_token == "<|endoftext|>" and tok.chat_template


def test_builder_writes_a_loadable_folder(tmp_path):
    path = build_tiny_lm(tmp_path / "m", "mistral", sliding_window=8, num_heads=4, num_kv_heads=1)
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "mistral" and config["sliding_window"] == 8
    assert config["num_key_value_heads"] == 1
    assert (path / "tokenizer.json").is_file()


def test_builder_validates_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="`kind` must be one of"):
        build_tiny_lm(tmp_path, "bert")
    with pytest.raises(ValueError, match="divisible by `num_kv_heads`"):
        build_tiny_lm(tmp_path, "llama", num_heads=4, num_kv_heads=3)
    with pytest.raises(ValueError, match="`vocab_size` must be ≥"):
        build_tiny_tokenizer(vocab_size=10)
