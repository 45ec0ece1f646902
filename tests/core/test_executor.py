"""Executor semantics with the stub pack: lazy, cache, lists, blockers, expansion, concurrency."""

from __future__ import annotations

import threading
import time

import pytest

from nodeloom import Engine, GraphBuilder
from nodeloom.core.registry import PackInfo
from tests.fixtures import stub_pack


def _graph():
    return GraphBuilder(prefix="")


def test_chain_runs_and_reports_outputs(engine):
    g = _graph()
    c = g.node("Const", value=2)
    a = g.node("Add", a=c.out(0), b=3)
    out = g.node("Output", value=a.out(0))
    result = engine.run(g.finalize())
    assert result.status == "success"
    assert result.outputs[out.id] == {"values": [5]}
    assert result.value(a.id) == 5
    assert sorted(result.ran()) == sorted([c.id, a.id, out.id])


def test_lazy_branch_never_runs(engine, calls):
    g = _graph()
    c = g.node("Const", value=1)
    bad = g.node("Fail", a=c.out(0))
    sw = g.node("LazySwitch", switch=True, on_true=c.out(0), on_false=bad.out(0))
    g.node("Output", value=sw.out(0))
    result = engine.run(g.finalize())
    assert result.status == "success"
    assert bad.id not in result.node_runs
    assert result.value(sw.id) == 1


def test_lazy_branch_runs_when_requested(engine):
    g = _graph()
    one = g.node("Const", value=1)
    two = g.node("Const", value=2)
    sw = g.node("LazySwitch", switch=False, on_true=one.out(0), on_false=two.out(0))
    g.node("Output", value=sw.out(0))
    result = engine.run(g.finalize())
    assert result.value(sw.id) == 2
    assert one.id not in result.node_runs


def test_full_cache_runs_nothing_on_resubmit(engine, calls):
    g = _graph()
    c = g.node("Const", value=2)
    a = g.node("Add", a=c.out(0), b=3)
    g.node("Output", value=a.out(0))
    prompt = g.finalize()
    engine.run(prompt)
    before = dict(calls)
    events = []
    second = engine.run(prompt, on_event=lambda e: events.append(e))
    assert calls == before
    assert second.ran() == []
    cached = next(e for e in events if e.type == "execution_cached")
    assert set(cached.data["nodes"]) == set(prompt)
    assert not [e for e in events if e.type == "executing" and e.data["node"] is not None]
    executed = [e for e in events if e.type == "executed"]
    assert executed and executed[0].data["output"] == {"values": [5]}


def test_partial_cache_reruns_only_descendants(engine):
    g = _graph()
    c = g.node("Const", value=2)
    a = g.node("Add", a=c.out(0), b=3)
    other = g.node("Const", value=7)
    b = g.node("Add", a=other.out(0), b=1)
    out = g.node("Output", value=a.out(0))
    out2 = g.node("Output", value=b.out(0))
    prompt = g.finalize()
    engine.run(prompt)
    prompt[a.id]["inputs"]["b"] = 10
    second = engine.run(prompt)
    assert sorted(second.ran()) == sorted([a.id, out.id])
    assert set(second.cached()) >= {c.id, other.id, b.id, out2.id}
    assert second.outputs[out.id] == {"values": [12]}


def test_identical_subgraphs_share_results(engine, calls):
    g = _graph()
    x = g.node("Const", value=4)
    y = g.node("Const", value=4)
    g.node("Output", value=x.out(0))
    g.node("Output", value=y.out(0))
    engine.run(g.finalize())
    assert calls["Const"] == 1


def test_is_changed_nan_always_reruns(engine, calls):
    g = _graph()
    c = g.node("Const", value=1)
    cnt = g.node("Counter", value=c.out(0))
    g.node("Output", value=cnt.out(0))
    prompt = g.finalize()
    engine.run(prompt)
    engine.run(prompt)
    assert calls["Counter"] == 2
    assert calls["Const"] == 1


def test_list_mapping_and_output_is_list(engine):
    g = _graph()
    lst = g.node("MakeList", n=4)
    add = g.node("Add", a=lst.out(0), b=10)
    total = g.node("SumList", values=add.out(0))
    g.node("Output", value=total.out(0))
    result = engine.run(g.finalize())
    assert result.value(lst.id) == [0, 1, 2, 3]
    assert result.value(add.id) == [10, 11, 12, 13]
    assert result.value(total.id) == 46


def test_shorter_list_repeats_last_item(engine):
    g = _graph()
    lst = g.node("MakeList", n=3)
    short = g.node("MakeList", n=1)
    add = g.node("Add", a=lst.out(0), b=short.out(0))
    g.node("Output", value=add.out(0))
    assert engine.run(g.finalize()).value(add.id) == [0, 1, 2]


def test_execution_blocker_blocks_only_its_items(engine):
    g = _graph()
    lst = g.node("MakeList", n=4)
    blk = g.node("BlockOdd", value=lst.out(0))
    add = g.node("Add", a=blk.out(0), b=100)
    out = g.node("Output", value=add.out(0))
    result = engine.run(g.finalize())
    assert result.status == "success"
    values = result.value(add.id)
    assert [v for v in values if isinstance(v, int)] == [100, 102]
    assert result.outputs[out.id] == {"values": [100, 102]}


def test_expansion_loop_with_deterministic_ids(engine):
    def run():
        g = _graph()
        c = g.node("Const", value=1)
        rep = g.node("Repeat", value=c.out(0), step=5, times=4)
        g.node("Output", value=rep.out(0))
        return engine.run(g.finalize()), rep.id

    result, rep_id = run()
    assert result.value(rep_id) == 21
    expanded = sorted(n for n in result.node_runs if n.startswith(rep_id + "."))
    assert expanded == [f"{rep_id}.0.0.{i}" for i in range(1, 5)]
    engine.free()
    again, _ = run()
    assert sorted(n for n in again.node_runs if n.startswith(rep_id + ".")) == expanded


def test_failing_branch_is_isolated(engine):
    g = _graph()
    c = g.node("Const", value=1)
    bad = g.node("Fail", a=c.out(0))
    g.node("Output", value=bad.out(0))
    good = g.node("Add", a=c.out(0), b=1)
    ok_out = g.node("Output", value=good.out(0))
    events = []
    result = engine.run(g.finalize(), on_event=events.append)
    assert result.status == "error"
    assert result.outputs[ok_out.id] == {"values": [2]}
    assert len(result.errors) == 1
    err = result.errors[0]
    assert err["node_id"] == bad.id and err["node_type"] == "Fail"
    assert "boom" in err["exception_message"] and err["exception_type"] == "RuntimeError"
    assert err["current_inputs"] == {"a": [1]}
    assert [e.type for e in events].count("execution_error") == 1
    assert "execution_success" not in [e.type for e in events]


def test_async_nodes_overlap(engine):
    g = _graph()
    c = g.node("Const", value=1)
    for _ in range(3):
        s = g.node("AsyncSleep", value=c.out(0), seconds=0.5)
        g.node("Output", value=s.out(0))
    t0 = time.perf_counter()
    assert engine.run(g.finalize()).status == "success"
    assert time.perf_counter() - t0 < 1.3


def test_sync_branches_overlap_and_sequential_switch(tmp_path):
    def build():
        g = _graph()
        c = g.node("Const", value=1)
        for i in range(2):
            s = g.node("Sleep", value=c.out(0), seconds=0.6 + i * 0.01)
            g.node("Output", value=s.out(0))
        return g.finalize()

    timings = {}
    for sequential in (False, True):
        eng = Engine(base_dir=tmp_path, builtin_packs=False, sequential=sequential, cache="none")
        eng.registry.register_pack(PackInfo("stub", "stub"), stub_pack.NODE_CLASS_MAPPINGS)
        t0 = time.perf_counter()
        assert eng.run(build()).status == "success"
        timings[sequential] = time.perf_counter() - t0
        eng.close()
    assert timings[False] < 1.0 <= timings[True]


def test_interrupt_stops_the_run(engine):
    g = _graph()
    c = g.node("Const", value=1)
    w = g.node("Wait", value=c.out(0))
    after = g.node("Add", a=w.out(0), b=1)
    g.node("Output", value=after.out(0))
    events = []
    threading.Timer(0.3, engine.interrupt).start()
    t0 = time.perf_counter()
    result = engine.run(g.finalize(), on_event=events.append)
    assert time.perf_counter() - t0 < 3
    assert result.status == "interrupted"
    assert after.id not in result.node_runs
    interrupted = [e for e in events if e.type == "execution_interrupted"]
    assert interrupted and interrupted[0].data["node_id"] == w.id


def test_events_carry_client_and_progress(engine):
    g = _graph()
    c = g.node("Const", value=1)
    w = g.node("Wait", value=c.out(0))
    g.node("Output", value=w.out(0))
    events = []

    def stop_early(ev):
        events.append(ev)
        if ev.type == "progress" and ev.data["value"] >= 3:
            engine.interrupt()

    engine.run(g.finalize(), client_id="abc", on_event=stop_early)
    progress = [e for e in events if e.type == "progress"]
    assert progress and progress[0].data == {"value": 1.0, "max": 100.0, "prompt_id": progress[0].prompt_id, "node": w.id}
    assert all(e.client_id == "abc" for e in events)
    states = [e for e in events if e.type == "progress_state"]
    assert states and w.id in states[-1].data["nodes"]


def test_dynamic_cycle_is_reported_on_generator(engine):
    class MakeCycle:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT",)}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        def run(self, value):
            g = GraphBuilder()
            a = g.node("Add", id="a", a=value, b=0)
            b = g.node("Add", id="b", a=a.out(0), b=0)
            a.set_input("b", b.out(0))
            return {"result": (b.out(0),), "expand": g.finalize()}

    engine.registry.register_pack(PackInfo("cyc", "cyc"), {"MakeCycle": MakeCycle})
    g = _graph()
    c = g.node("Const", value=1)
    mk = g.node("MakeCycle", value=c.out(0))
    g.node("Output", value=mk.out(0))
    result = engine.run(g.finalize())
    assert result.status == "error"
    assert result.errors[0]["node_id"] == mk.id
    assert result.errors[0]["exception_type"] == "graph.DependencyCycleError"


def test_hidden_inputs_are_injected(engine):
    class Hidden:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}, "hidden": {"uid": "UNIQUE_ID", "prompt": "PROMPT", "info": "EXTRA_PNGINFO"}}

        RETURN_TYPES = ()
        FUNCTION = "run"
        OUTPUT_NODE = True

        def run(self, uid, prompt, info):
            return {"ui": {"seen": [uid, sorted(prompt), info]}}

    engine.registry.register_pack(PackInfo("h", "h"), {"Hidden": Hidden})
    prompt = {"7": {"class_type": "Hidden", "inputs": {}}}
    result = engine.run(prompt, extra_data={"extra_pnginfo": {"workflow": 1}})
    assert result.outputs["7"] == {"seen": ["7", ["7"], {"workflow": 1}]}


def test_undeclared_linked_input_is_passed(engine):
    class Variadic:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        def run(self, **kwargs):
            return (sum(kwargs.values()),)

    engine.registry.register_pack(PackInfo("v", "v"), {"Variadic": Variadic})
    g = _graph()
    c = g.node("Const", value=3)
    v = g.node("Variadic", x=c.out(0), y=c.out(0), z=100)
    g.node("Output", value=v.out(0))
    assert engine.run(g.finalize()).value(v.id) == 6


def test_node_instance_reused_across_prompts(engine):
    seen = []

    class Stateful:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT",)}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        def run(self, value):
            seen.append(id(self))
            return (value,)

    engine.registry.register_pack(PackInfo("s", "s"), {"Stateful": Stateful})
    for v in (1, 2):
        engine.run({"1": {"class_type": "Stateful", "inputs": {"value": v}}, "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}})
    assert len(seen) == 2 and seen[0] == seen[1]


@pytest.mark.parametrize("mode", ["classic", "lru", "none"])
def test_cache_modes(tmp_path, mode, calls):
    eng = Engine(base_dir=tmp_path, builtin_packs=False, cache=mode)
    eng.registry.register_pack(PackInfo("stub", "stub"), stub_pack.NODE_CLASS_MAPPINGS)
    stub_pack.CALLS.clear()
    p1 = {"1": {"class_type": "Const", "inputs": {"value": 1}}, "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    p2 = {"1": {"class_type": "Const", "inputs": {"value": 2}}, "2": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    for p in (p1, p1, p2, p1):
        eng.run(p)
    eng.close()
    # classic forgets p1 after p2 ran; lru keeps both; none caches nothing
    assert calls["Const"] == {"classic": 3, "lru": 2, "none": 4}[mode]


def test_engine_overrides_leave_the_callers_config_alone(tmp_path):
    from nodeloom.engine import EngineConfig

    config = EngineConfig(base_dir=tmp_path, builtin_packs=False, load_custom_nodes=False)
    with Engine(config, sequential=True, cache="none") as engine:
        assert engine.config.sequential and engine.config.cache == "none"
    assert config.sequential is False and config.cache == "classic"
    with pytest.raises(TypeError, match="unknown option `sequentail`"):
        Engine(config, sequentail=True)


def test_node_api_services_has_an_optional_form(tmp_path):
    from nodeloom.core.context import activate_services
    from nodeloom.errors import NodeloomError
    from nodeloom.node_api import Services, services

    assert services(required=False) is None
    with pytest.raises(NodeloomError, match="no nodeloom engine is active"):
        services()
    with Engine(base_dir=tmp_path, builtin_packs=False, load_custom_nodes=False) as engine:
        with activate_services(engine.services):
            assert isinstance(services(), Services) and services(required=False) is engine.services
