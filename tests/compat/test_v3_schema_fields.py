"""Schema fields of newer ComfyUI, as a pack declares them: ``accept_all_inputs`` (undeclared
constants reach ``execute``), ``has_intermediate_output`` (cached UI resent without making the
node a root), ``price_badge`` (listed in ``/object_info``), the ``comfy_usage_source`` hidden
value, and ``loop_boundary`` (starts and ends paired at validation, as ComfyUI does)."""

from __future__ import annotations

from typing import Any

import pytest

from nodeloom.engine import Engine
from nodeloom.errors import ValidationError

FIELDS_PACK = r'''
from comfy_api.latest import ComfyExtension, io


class Rows(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="FieldRows", category="fieldtest", accept_all_inputs=True,
                         inputs=[io.Float.Input("base", default=0.0)], outputs=[io.Float.Output("total")])

    @classmethod
    def execute(cls, base, **rows):
        return io.NodeOutput(base + sum(float(v) for k, v in sorted(rows.items()) if k.startswith("row_")))


class Strict(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="FieldStrict", category="fieldtest",
                         inputs=[io.Float.Input("base", default=0.0)], outputs=[io.Float.Output("total")])

    @classmethod
    def execute(cls, base, **rows):
        return io.NodeOutput(base + len(rows))


class Crop(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="FieldCrop", category="fieldtest", has_intermediate_output=True,
                         inputs=[io.Float.Input("value", default=1.0)], outputs=[io.Float.Output("cropped")])

    @classmethod
    def execute(cls, value):
        return io.NodeOutput(value, ui={"text": [f"crop {value}"]})


class Show(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="FieldShow", category="fieldtest", is_output_node=True,
                         inputs=[io.Float.Input("value", force_input=True)], outputs=[])

    @classmethod
    def execute(cls, value):
        return io.NodeOutput(ui={"text": [str(value)]})


class Paid(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FieldPaid", category="fieldtest", is_api_node=True, is_output_node=True,
            inputs=[io.Int.Input("seconds", default=5), io.Combo.Input("size", options=["small", "large"])],
            outputs=[],
            price_badge=io.PriceBadge(
                expr="{'type':'usd','usd': widgets.seconds * 0.1}",
                depends_on=io.PriceBadgeDepends(widgets=["seconds", "size"])),
        )

    @classmethod
    def execute(cls, seconds, size):
        return io.NodeOutput(ui={"text": [str(cls.hidden.comfy_usage_source)]})


class LoopStart(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="FieldLoopStart", category="fieldtest", loop_boundary="start",
                         inputs=[io.Int.Input("count", default=2)], outputs=[io.Int.Output("index")])

    @classmethod
    def execute(cls, count):
        return io.NodeOutput(0)


class LoopEnd(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="FieldLoopEnd", category="fieldtest", loop_boundary="end",
                         inputs=[io.Int.Input("value", force_input=True)], outputs=[io.Float.Output("result")])

    @classmethod
    def execute(cls, value):
        return io.NodeOutput(float(value) + 0.5)


class Widgets(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        voices = io.RemoteComboOptions(route="/proxy/voices", item_schema=io.RemoteItemSchema(
            value_field="id", label_field="{name} ({labels.accent})", preview_url_field="preview",
            preview_type="audio", search_fields=["name", "labels.accent"]), auto_select="first", refresh=0)
        return io.Schema(
            node_id="FieldWidgets", category="fieldtest", is_output_node=True,
            inputs=[io.Int.Input("steps", default=4, min=1, advanced=True),
                    io.Float.Input("amount", default=0.5, gradient_stops=[{"offset": 0, "color": "#000"}],
                                   extra_dict={"unit": "px"}),
                    io.String.Input("text", default="", advanced=False, raw_link=None),
                    io.Boolean.Input("flag", default=True, advanced=True),
                    io.Combo.Input("voice", remote_combo=voices),
                    io.MultiCombo.Input("tags", options=["a", "b", "c"], placeholder="pick", chip=True),
                    io.AnyType.Input("source", optional=True, raw_link=True)],
            outputs=[])

    @classmethod
    def execute(cls, steps, amount, text, flag, voice, tags, source=None):
        return io.NodeOutput(ui={"text": [f"{steps} {amount} {voice} {tags} {source}"]})


class Ext(ComfyExtension):
    async def get_node_list(self):
        return [Rows, Strict, Crop, Show, Paid, LoopStart, LoopEnd, Widgets]


async def comfy_entrypoint():
    return Ext()
'''


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = tmp_path_factory.mktemp("v3fields")
    (root / "custom_nodes").mkdir()
    (root / "custom_nodes" / "fields_pack.py").write_text(FIELDS_PACK)
    engine = Engine(base_dir=root / "base", custom_nodes_dirs=[root / "custom_nodes"])
    yield engine
    engine.close()


def _show(node: str, **inputs: Any) -> dict[str, Any]:
    return {"1": {"class_type": node, "inputs": inputs}, "2": {"class_type": "FieldShow", "inputs": {"value": ["1", 0]}}}


def test_accept_all_inputs_passes_undeclared_constants(engine: Engine) -> None:
    result = engine.run(_show("FieldRows", base=1.0, row_1=2.0, row_2=4.5))
    assert result.status == "success", result.errors
    assert result.value("1") == 7.5
    assert engine.registry.get("FieldRows").ACCEPT_ALL_INPUTS is True


def test_without_accept_all_inputs_undeclared_constants_are_dropped(engine: Engine) -> None:
    result = engine.run(_show("FieldStrict", base=1.0, row_1=2.0, row_2=4.5))
    assert result.status == "success", result.errors
    assert result.value("1") == 1.0
    assert engine.registry.get("FieldStrict").ACCEPT_ALL_INPUTS is False


def test_intermediate_output_is_no_root_but_its_cached_ui_is_resent(engine: Engine) -> None:
    info = engine.object_info("FieldCrop")["FieldCrop"]
    assert info["has_intermediate_output"] is True and info["output_node"] is False
    assert "has_intermediate_output" not in engine.object_info("FieldShow")["FieldShow"]
    with pytest.raises(ValidationError) as caught:
        engine.run({"1": {"class_type": "FieldCrop", "inputs": {"value": 3.0}}})
    assert caught.value.to_dict()["type"] == "prompt_no_outputs"

    first = engine.run(_show("FieldCrop", value=3.0))
    assert first.status == "success", first.errors
    assert first.outputs["1"] == {"text": ["crop 3.0"]}
    # the next prompt still holds the crop node, but its output node reads something else
    events: list[Any] = []
    second = {"1": {"class_type": "FieldCrop", "inputs": {"value": 3.0}},
              "3": {"class_type": "FieldRows", "inputs": {"base": 2.0}},
              "2": {"class_type": "FieldShow", "inputs": {"value": ["3", 0]}}}
    result = engine.run(second, on_event=events.append)
    assert result.status == "success", result.errors
    assert result.node_runs["1"]["cached"]  # found in the cache, never executed
    assert result.outputs["1"] == {"text": ["crop 3.0"]}
    executed = [e.data for e in events if e.type == "executed"]
    assert [d["node"] for d in executed] == ["2", "1"]
    assert executed[1]["output"] == {"text": ["crop 3.0"]}
    # a changed crop node has no cached result: nothing to resend
    second["1"]["inputs"]["value"] = 5.0
    assert "1" not in engine.run(second).outputs


def test_price_badge_lists_widget_types(engine: Engine) -> None:
    info = engine.object_info("FieldPaid")["FieldPaid"]
    assert info["price_badge"] == {
        "engine": "jsonata", "expr": "{'type':'usd','usd': widgets.seconds * 0.1}",
        "depends_on": {"widgets": [{"name": "seconds", "type": "INT"}, {"name": "size", "type": "COMBO"}],
                       "inputs": [], "input_groups": []},
    }
    assert info["api_node"] is True
    assert list(info["input"]["hidden"]) == ["auth_token_comfy_org", "api_key_comfy_org", "comfy_usage_source",
                                             "prompt", "extra_pnginfo"]
    assert "price_badge" not in engine.object_info("FieldShow")["FieldShow"]


def test_usage_source_comes_from_extra_data(engine: Engine) -> None:
    prompt = {"1": {"class_type": "FieldPaid", "inputs": {"seconds": 5, "size": "small"}}}
    result = engine.run(prompt, extra_data={"comfy_usage_source": "comfy-cli"})
    assert result.status == "success", result.errors
    assert result.outputs["1"] == {"text": ["comfy-cli"]}


def test_bad_price_badge_and_loop_boundary_are_refused() -> None:
    from nodeloom.compat.comfy.api.latest import io

    with pytest.raises(ValueError, match="`PriceBadge.engine` must be 'jsonata'"):
        io.PriceBadge(expr="1", engine="js").validate()
    with pytest.raises(ValueError, match="non-empty"):
        io.PriceBadge(expr=" ").validate()
    with pytest.raises(ValueError, match="list of strings"):
        io.PriceBadge(expr="1", depends_on=io.PriceBadgeDepends(widgets="seconds")).validate()
    badge = io.PriceBadge(expr="1", depends_on=io.PriceBadgeDepends(widgets=["steps"]))
    with pytest.raises(ValueError, match="names `steps`, which is not an input"):
        badge.as_dict([io.Int.Input("seconds")])
    with pytest.raises(ValueError, match="`loop_boundary` must be 'start', 'end' or None"):
        io.Schema(node_id="X", loop_boundary="middle").validate()


def test_loop_boundary_is_read_from_the_schema(engine: Engine) -> None:
    cls = engine.registry.get("FieldLoopStart")
    assert cls.GET_SCHEMA().loop_boundary == "start" and cls.LOOP_BOUNDARY == "start"
    assert engine.registry.get("FieldRows").LOOP_BOUNDARY is None


def test_loop_boundaries_are_paired_at_validation(engine: Engine) -> None:
    closed = {"1": {"class_type": "FieldLoopStart", "inputs": {"count": 2}},
              "2": {"class_type": "FieldLoopEnd", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "FieldShow", "inputs": {"value": ["2", 0]}}}
    assert engine.validate(closed).ok
    assert engine.run(closed).outputs["3"] == {"text": ["0.5"]}
    # a second output reads the loop body directly: ComfyUI's "Loop body is not closed"
    escaped = {**closed, "4": {"class_type": "FieldShow", "inputs": {"value": ["1", 0]}}}
    checked = engine.validate(escaped)
    assert not checked.ok
    error = checked.node_errors["1"]["errors"][-1]
    assert error["type"] == "custom_validation_failed" and error["message"] == "Loop body is not closed"
    assert error["extra_info"]["loop_error_type"] == "loop_escape"
    assert error["details"] == "Start Loop 1 reaches 4 without passing through End Loop 2"
    assert checked.node_errors["4"]["dependent_outputs"] == ["3", "4"]
    # an end without a start
    lone = {"2": {"class_type": "FieldLoopEnd", "inputs": {"value": ["5", 0]}},
            "5": {"class_type": "PrimitiveInt", "inputs": {"value": 3}},
            "3": {"class_type": "FieldShow", "inputs": {"value": ["2", 0]}}}
    checked = engine.validate(lone)
    assert not checked.ok and checked.error["type"] == "prompt_outputs_failed_validation"
    assert checked.node_errors["2"]["errors"][0]["extra_info"]["loop_error_type"] == "loop_end_without_start"


def test_newer_input_options_are_accepted_and_listed(engine: Engine) -> None:
    info = engine.object_info("FieldWidgets")["FieldWidgets"]["input"]
    required, optional = info["required"], info["optional"]
    assert required["steps"] == ["INT", {"default": 4, "min": 1, "advanced": True}]
    assert required["amount"][1] == {"default": 0.5, "gradient_stops": [{"offset": 0, "color": "#000"}], "unit": "px"}
    assert required["text"][1] == {"default": "", "advanced": False, "multiline": False}
    assert required["voice"][1]["remote_combo"] == {
        "route": "/proxy/voices", "refresh_button": True, "auto_select": "first", "refresh": 0,
        "item_schema": {"value_field": "id", "label_field": "{name} ({labels.accent})", "preview_url_field": "preview",
                        "preview_type": "audio", "search_fields": ["name", "labels.accent"]}}
    assert required["tags"][1]["multi_select"] == {"placeholder": "pick", "chip": True}
    assert required["tags"][1]["multiselect"] is True
    assert optional["source"] == ["*", {"rawLink": True}]
    # a remote combo's value is not checked against a list; a raw-link input receives the link itself
    prompt = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 3}},
              "2": {"class_type": "FieldWidgets", "inputs": {"steps": 2, "amount": 0.25, "text": "", "flag": True,
                                                             "voice": "v-17", "tags": {"__value__": ["a", "c"]},
                                                             "source": ["1", 0]}}}
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    assert result.outputs["2"] == {"text": ["2 0.25 v-17 ['a', 'c'] ['1', 0]"]}


def test_remote_combo_options_are_checked() -> None:
    from nodeloom.compat.comfy.api.latest import io

    schema = io.RemoteItemSchema("id", "name")
    with pytest.raises(ValueError, match="must be a path starting with '/'"):
        io.RemoteComboOptions("https://example.org/voices", schema)
    with pytest.raises(ValueError, match="`refresh` must be >= 128"):
        io.RemoteComboOptions("/voices", schema, refresh=50)
    with pytest.raises(ValueError, match="not templates"):
        io.RemoteItemSchema("id", "name", search_fields=["{name}"])
    with pytest.raises(ValueError, match="either `options` or `remote_combo`"):
        io.Combo.Input("voice", options=["a"], remote_combo=io.RemoteComboOptions("/voices", schema))
