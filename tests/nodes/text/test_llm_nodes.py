"""LLMLoader and TextGenerate on tiny random GPT-2, Llama and Mistral models."""

from __future__ import annotations

import importlib.util

import pytest

from nodeloom.core.context import InterruptFlag, NodeContext, node_context
from nodeloom.errors import Interrupted, MissingDependencyError, ModelNotFoundError, ValidationError
from nodeloom.nodes.text import NODE_CLASS_MAPPINGS
from nodeloom.nodes.text._common import BINARY_PROGRESS_TEXT, STREAM_EVENT

LLMLoader = NODE_CLASS_MAPPINGS["LLMLoader"]
TextGenerate = NODE_CLASS_MAPPINGS["TextGenerate"]

KINDS = ("gpt2", "llama", "mistral")
GREEDY = dict(temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=0, sliding_window=4096)


def _load(kind: str):
    return LLMLoader.execute(model_name=kind, dtype="float32", device="cpu")[0]


def _generate(llm, prompt="a red fox in the snow", **overrides):
    kwargs = dict(GREEDY, max_new_tokens=24, cache_mode="dynamic", stop="", use_chat_template=True)
    kwargs.update(overrides)
    out = TextGenerate.execute(llm=llm, prompt=prompt, **kwargs)
    return out.values[0]


def test_loader_lists_loads_and_caches_models(svc):
    names = LLMLoader.INPUT_TYPES()["required"]["model_name"][0]
    assert set(KINDS) <= set(names)
    first, second = _load("llama"), _load("llama")
    assert first is second
    assert first.model.training is False
    assert first.has_chat_template and first.device.type == "cpu"
    assert len(svc.models.loaded()) >= 1


def test_loader_missing_model_names_the_folder(svc):
    with pytest.raises(ModelNotFoundError, match="`nope` was not found in the `llm` model folder"):
        LLMLoader.execute(model_name="nope", dtype="auto", device="cpu")


def test_loader_rejects_a_bad_dtype(svc):
    with pytest.raises(ValidationError, match="`dtype` must be one of"):
        LLMLoader.execute(model_name="llama", dtype="int3", device="cpu")


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_text_is_identical_across_cache_modes(svc, kind):
    llm = _load(kind)
    texts = {mode: _generate(llm, cache_mode=mode) for mode in ("none", "dynamic", "static", "sliding")}
    assert texts["none"], "the random model should produce some text"
    assert len(set(texts.values())) == 1, texts


def test_seed_makes_sampling_deterministic(svc):
    llm = _load("llama")
    sampled = dict(temperature=1.0, top_k=0, top_p=1.0)
    a = _generate(llm, seed=7, **sampled)
    b = _generate(llm, seed=7, **sampled)
    others = {_generate(llm, seed=s, **sampled) for s in (8, 9, 10)}
    assert a == b
    assert others - {a}, "different seeds should give a different text"


def test_stop_string_cuts_before_its_first_occurrence(svc):
    llm = _load("gpt2")
    full = _generate(llm, max_new_tokens=40)
    stop = full[6:9]
    assert len(stop) == 3
    cut = _generate(llm, max_new_tokens=40, stop=f"never-seen-stop\n{stop}")
    assert cut == full[: full.find(stop)]


def test_tokens_stream_as_events_and_progress(svc):
    llm = _load("llama")
    ticks: list[tuple[float, float]] = []
    ctx = NodeContext(node_id="7", prompt_id="p1", interrupt=InterruptFlag(),
                      progress_sink=lambda node, value, total, preview: ticks.append((value, total)))
    with node_context(ctx):
        text = _generate(llm, max_new_tokens=12)
    stream = [data for kind, data in svc.events if kind == STREAM_EVENT]
    steps, final = stream[:-1], stream[-1]
    assert final["done"] is True and final["text"] == text and final["node"] == "7" and final["prompt_id"] == "p1"
    assert [s["index"] for s in steps] == list(range(1, len(steps) + 1))
    assert all(text.startswith(s["text"]) for s in steps)
    assert "".join(s["delta"] for s in steps) == steps[-1]["text"]
    assert ticks[: len(steps)] == [(float(i), 12.0) for i in range(1, len(steps) + 1)]
    frames = [data for kind, data in svc.events if kind == BINARY_PROGRESS_TEXT]
    shown = [s["text"] for s in steps if s["delta"]][-1]
    assert frames and frames[-1] == b"\x00\x00\x00\x017" + shown.encode("utf-8")


def test_interrupt_stops_between_tokens(svc):
    llm = _load("llama")
    flag = InterruptFlag()
    ticks: list[float] = []

    def sink(node, value, total, preview):
        ticks.append(value)
        if value >= 3:
            flag.set()

    with node_context(NodeContext(node_id="1", prompt_id="p", interrupt=flag, progress_sink=sink)):
        with pytest.raises(Interrupted):
            _generate(llm, max_new_tokens=50)
    assert ticks == [1.0, 2.0, 3.0]


def test_chat_template_and_system_prompt_change_the_input(svc):
    llm = _load("llama")
    plain = _generate(llm, use_chat_template=False)
    chat = _generate(llm, use_chat_template=True)
    with_system = TextGenerate.execute(llm=llm, prompt="a red fox in the snow", system_prompt="Be brief.",
                                       **dict(GREEDY, max_new_tokens=24, cache_mode="dynamic")).values[0]
    assert len({plain, chat, with_system}) == 3


def test_model_without_chat_template_uses_the_raw_prompt(svc):
    llm = _load("plain")
    assert not llm.has_chat_template
    assert _generate(llm, use_chat_template=True) == _generate(llm, use_chat_template=False)


def test_quantized_fp8_cache_generates(svc):
    text = _generate(_load("llama"), cache_mode="quantized-fp8")
    assert isinstance(text, str) and text


@pytest.mark.skipif(importlib.util.find_spec("optimum") is not None, reason="optimum-quanto is installed")
def test_missing_quantized_backend_names_what_to_install(svc):
    with pytest.raises(MissingDependencyError, match="pip install 'optimum-quanto"):
        _generate(_load("llama"), cache_mode="quantized-quanto")


def test_quantized_cache_refuses_sliding_window_models(svc):
    with pytest.raises(ValidationError, match="sliding window"):
        _generate(_load("mistral"), cache_mode="quantized-fp8")


def test_bad_settings_are_named(svc):
    llm = _load("llama")
    with pytest.raises(ValidationError, match="`temperature` must be ≥ 0"):
        _generate(llm, temperature=-1.0)
    with pytest.raises(ValidationError, match="`cache_mode` must be one of"):
        _generate(llm, cache_mode="paged")
    with pytest.raises(ValidationError, match="exceeds the model's 512 positions"):
        _generate(llm, max_new_tokens=600)


def test_sliding_mode_at_the_models_window_matches_full_recompute(svc):
    llm = _load("mistral")
    window = llm.model.config.sliding_window
    full = _generate(llm, cache_mode="none", max_new_tokens=40)
    assert _generate(llm, cache_mode="sliding", sliding_window=window, max_new_tokens=40) == full


def test_quanto_cache_generates_when_installed(svc):
    pytest.importorskip("optimum.quanto")
    text = _generate(_load("llama"), cache_mode="quantized-quanto", max_new_tokens=8)
    assert isinstance(text, str)
