"""Property-based tests: executor vs a naive sequential reference; malformed JSON never crashes."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodeloom import Engine
from nodeloom.core.registry import PackInfo
from tests.fixtures import stub_pack

_ENGINE: dict[str, Engine] = {}


def _engine(tmp_path_factory) -> Engine:
    if "e" not in _ENGINE:
        eng = Engine(base_dir=tmp_path_factory.mktemp("prop"), builtin_packs=False, cache="lru")
        eng.registry.register_pack(PackInfo("stub", "stub"), stub_pack.NODE_CLASS_MAPPINGS)
        _ENGINE["e"] = eng
    return _ENGINE["e"]


@st.composite
def random_dags(draw):
    """A random DAG of Const/Add/MakeList/SumList nodes with some Output roots."""
    n = draw(st.integers(min_value=1, max_value=25))
    prompt = {}
    kinds = {}
    for i in range(n):
        nid = str(i)
        if i == 0 or draw(st.booleans()) and i < 3:
            prompt[nid] = {"class_type": "Const", "inputs": {"value": draw(st.integers(-50, 50))}}
            kinds[nid] = "scalar"
            continue
        kind = draw(st.sampled_from(["add", "add", "list", "sum"]))
        src = str(draw(st.integers(0, i - 1)))
        if kind == "add":
            other = draw(st.one_of(st.integers(-5, 5), st.integers(0, i - 1).map(lambda j: [str(j), 0])))
            prompt[nid] = {"class_type": "Add", "inputs": {"a": [src, 0], "b": other}}
            kinds[nid] = "list" if kinds[src] == "list" or (isinstance(other, list) and kinds[other[0]] == "list") else "scalar"
        elif kind == "list":
            prompt[nid] = {"class_type": "MakeList", "inputs": {"n": draw(st.integers(1, 4))}}
            kinds[nid] = "list"
        else:
            prompt[nid] = {"class_type": "SumList", "inputs": {"values": [src, 0]}}
            kinds[nid] = "scalar"
    roots = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4, unique=True))
    for r in roots:
        prompt[f"out{r}"] = {"class_type": "Output", "inputs": {"value": [str(r), 0]}}
    return prompt


def reference(prompt):
    """Evaluate sequentially in id order with ComfyUI list semantics."""
    values = {}
    for nid, node in prompt.items():
        if nid.startswith("out"):
            continue
        ins = {k: (values[v[0]] if isinstance(v, list) else [v]) for k, v in node["inputs"].items()}
        ct = node["class_type"]
        if ct == "Const":
            values[nid] = ins["value"]
        elif ct == "MakeList":
            values[nid] = list(range(ins["n"][0]))
        elif ct == "SumList":
            values[nid] = [sum(ins["values"])]
        else:
            a, b = ins["a"], ins["b"]
            m = max(len(a), len(b))
            values[nid] = [a[min(i, len(a) - 1)] + b[min(i, len(b) - 1)] for i in range(m)]
    return {f"out{k}": {"values": values[k]} for k in values if f"out{k}" in prompt}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(random_dags())
def test_executor_matches_sequential_reference(tmp_path_factory, prompt):
    eng = _engine(tmp_path_factory)
    result = eng.run(copy.deepcopy(prompt))
    assert result.status == "success"
    assert result.outputs == reference(prompt)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values)
def test_random_json_is_rejected_cleanly(tmp_path_factory, value):
    result = _engine(tmp_path_factory).validate(value)
    assert not result.ok
    assert result.error is not None and result.error["type"] and result.error["message"]


@st.composite
def mutated_prompts(draw):
    prompt = {
        "1": {"class_type": "Const", "inputs": {"value": 3}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 4}},
        "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}},
    }
    for _ in range(draw(st.integers(1, 3))):
        nid = draw(st.sampled_from(sorted(prompt)))
        where = draw(st.sampled_from(["class_type", "inputs", "input", "node"]))
        junk = draw(json_values)
        if where == "node":
            prompt[nid] = junk
        elif where == "input" and isinstance(prompt[nid], dict) and isinstance(prompt[nid].get("inputs"), dict):
            name = draw(st.sampled_from(["a", "b", "value", "zz"]))
            prompt[nid]["inputs"][name] = junk
        elif isinstance(prompt[nid], dict):
            prompt[nid][where] = junk
    return prompt


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated_prompts())
def test_mutated_prompts_never_crash(tmp_path_factory, prompt):
    eng = _engine(tmp_path_factory)
    result = eng.validate(prompt)
    if not result.ok:
        assert result.error is not None
        return
    run = eng.run(prompt, validated=result)
    assert run.status in ("success", "error")
