"""The text pack end to end through the Engine: loading, generation, lists, events, interrupt."""

from __future__ import annotations

import pytest

from nodeloom import Engine
from nodeloom.nodes.text._common import STREAM_EVENT

GREEDY = dict(temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=0,
              cache_mode="dynamic", sliding_window=256)


@pytest.fixture(scope="module")
def engine(llm_base):
    with Engine(base_dir=llm_base, device="cpu") as eng:
        yield eng


def _loader(kind="llama"):
    return {"class_type": "LLMLoader", "inputs": {"model_name": kind, "dtype": "float32", "device": "cpu"}}


def _generate(prompt="a castle on a hill", **overrides):
    inputs = dict(GREEDY, llm=["1", 0], prompt=prompt, max_new_tokens=16, stop="", use_chat_template=True)
    inputs.update(overrides)
    return {"class_type": "TextGenerate", "inputs": inputs}


def test_generate_runs_in_a_workflow_and_streams(engine):
    events = []
    unsubscribe = engine.subscribe(lambda e: events.append(e) if e.type == STREAM_EVENT else None)
    try:
        prompt = {"1": _loader(), "2": _generate(), "3": {"class_type": "TextPreview", "inputs": {"text": ["2", 0]}}}
        result = engine.run(prompt)
    finally:
        unsubscribe()
    assert result.status == "success", result.errors
    text = result.value("2")
    assert isinstance(text, str) and text
    assert result.outputs["3"] == {"text": [text]}
    assert events[-1].data["done"] and events[-1].data["text"] == text and events[-1].data["node"] == "2"
    assert all(e.prompt_id == result.prompt_id for e in events)


def test_cache_modes_agree_through_the_engine(engine):
    texts = set()
    for mode in ("none", "dynamic", "static", "sliding"):
        prompt = {"1": _loader("gpt2"), "2": _generate(cache_mode=mode),
                  "3": {"class_type": "TextPreview", "inputs": {"text": ["2", 0]}}}
        texts.add(engine.run(prompt).value("2"))
    assert len(texts) == 1


def test_prompt_list_feeds_prompt_expand(engine):
    prompt = {
        "1": _loader(),
        "2": {"class_type": "StringToPromptList", "inputs": {
            "text": "a red fox\n\na lighthouse at night\na bowl of fruit", "delimiter": "newline",
            "custom_delimiter": "", "strip": True, "skip_empty": True}},
        "3": {"class_type": "PromptExpand", "inputs": dict(
            GREEDY, llm=["1", 0], ideas=["2", 0], template="photographic", max_new_tokens=12)},
        "4": {"class_type": "TextPreview", "inputs": {"text": ["3", 0]}},
        "5": {"class_type": "TextPreview", "inputs": {"text": ["3", 1]}},
    }
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    prompts, negatives = result.value("3", 0), result.value("3", 1)
    assert len(prompts) == len(negatives) == 3
    assert all(p.strip() for p in prompts) and all(n.strip() for n in negatives)
    assert result.outputs["4"] == {"text": prompts}
    assert result.outputs["5"] == {"text": negatives}


def test_interrupt_during_generation(engine):
    def on_custom(event):
        if event.type == STREAM_EVENT and event.data["index"] >= 3:
            engine.interrupt()

    unsubscribe = engine.subscribe(on_custom)
    try:
        prompt = {"1": _loader(), "2": _generate(max_new_tokens=200, prompt="interrupt me"),
                  "3": {"class_type": "TextPreview", "inputs": {"text": ["2", 0]}}}
        result = engine.run(prompt)
    finally:
        unsubscribe()
    assert result.status == "interrupted"


def test_kv_report_node_in_a_workflow(engine):
    prompt = {"1": _loader(), "2": {"class_type": "KVCacheReport", "inputs": {
        "llm": ["1", 0], "modes": "none, dynamic, sliding", "prompt_tokens": 8, "new_tokens": 12,
        "sliding_window": 6, "repeats": 1}}}
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    table = result.value("2", 0)
    assert "dynamic" in table and "sliding" in table and " NO" not in table
    plot = result.value("2", 2)
    assert plot.shape[0] == 1 and plot.shape[-1] == 3 and 0.0 <= float(plot.min()) <= float(plot.max()) <= 1.0


def test_invalid_model_name_is_a_validation_error(engine):
    from nodeloom.errors import ValidationError

    prompt = {"1": _loader("missing-model"), "2": _generate(),
              "3": {"class_type": "TextPreview", "inputs": {"text": ["2", 0]}}}
    with pytest.raises(ValidationError) as info:
        engine.run(prompt)
    assert "1" in info.value.node_errors


def test_example_workflows_run(engine, llm_base):
    import json
    import shutil
    from pathlib import Path

    examples = Path(__file__).resolve().parents[3] / "examples" / "workflows"
    plain = json.loads((examples / "text_prompt_list.json").read_text())
    result = engine.run(plain)
    assert result.status == "success", result.errors
    assert result.outputs["4"]["text"] == [
        "a red fox in the snow, highly detailed, soft light",
        "a lighthouse under a full moon, highly detailed, soft light",
        "a bowl of fruit, highly detailed, soft light",
    ]
    with_llm = json.loads((examples / "text_prompt_expand_llm.json").read_text())
    name = with_llm["1"]["inputs"]["model_name"]
    target = llm_base / "models" / "llm" / name
    if not target.exists():
        shutil.copytree(llm_base / "models" / "llm" / "llama", target)  # a tiny stand-in under the example's name
    with_llm["3"]["inputs"]["max_new_tokens"] = 8
    with_llm["1"]["inputs"]["device"] = "cpu"
    result = engine.run(with_llm)
    assert result.status == "success", result.errors
    assert len(result.outputs["4"]["text"]) == len(result.outputs["5"]["text"]) == 2
