"""Tiny random LMs loaded once for the text library tests."""

from __future__ import annotations

import pytest
import torch

from nodeloom.testing.tiny_lm import build_tiny_lm
from nodeloom.text.llm import load_llm


@pytest.fixture(scope="session")
def tiny_llms(tmp_path_factory):
    """``{kind: LLM}`` for gpt2, llama (GQA: 4 heads, 2 kv heads) and mistral (window 16)."""
    root = tmp_path_factory.mktemp("tiny_llms")
    out = {}
    for kind, seed in (("gpt2", 11), ("llama", 12), ("mistral", 13)):
        path = build_tiny_lm(root / kind, kind, seed=seed, sliding_window=16)
        out[kind] = load_llm(path, device=torch.device("cpu"), dtype=torch.float32)
    return out
