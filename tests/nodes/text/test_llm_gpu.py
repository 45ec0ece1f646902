"""The text pack on a CUDA device (skipped without one)."""

from __future__ import annotations

import pytest
import torch

from nodeloom.nodes.text import NODE_CLASS_MAPPINGS

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

GREEDY = dict(temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=0, sliding_window=4096,
              max_new_tokens=24, stop="", use_chat_template=True)


def test_cache_modes_agree_on_cuda(svc):
    llm = NODE_CLASS_MAPPINGS["LLMLoader"].execute(model_name="llama", dtype="float32", device="cuda")[0]
    assert llm.device.type == "cuda"
    texts = {mode: NODE_CLASS_MAPPINGS["TextGenerate"].execute(llm=llm, prompt="a fox", cache_mode=mode, **GREEDY).values[0]
             for mode in ("none", "dynamic", "static", "sliding")}
    assert len(set(texts.values())) == 1, texts


def test_auto_dtype_is_half_precision_on_cuda(svc):
    llm = NODE_CLASS_MAPPINGS["LLMLoader"].execute(model_name="llama", dtype="auto", device="cuda")[0]
    assert llm.dtype in (torch.bfloat16, torch.float16)
    text = NODE_CLASS_MAPPINGS["TextGenerate"].execute(llm=llm, prompt="a fox", cache_mode="static", **GREEDY).values[0]
    assert isinstance(text, str)
