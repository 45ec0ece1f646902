"""Unit tests of the V3 declarations (``comfy_api.latest.io`` / ``ui``) without an engine run."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
import torch

from nodeloom.compat import hook
from nodeloom.core.context import activate_services
from nodeloom.core.registry import PackInfo
from nodeloom.core.types import types_match
from nodeloom.engine import Engine

hook.install()

from comfy_api.latest import Input, InputImpl, io, ui  # noqa: E402
from comfy_api.internal import first_real_override  # noqa: E402


def test_type_names_match_like_comfyui() -> None:
    image = io.Image.io_type
    assert types_match("IMAGE", image) and types_match(image, "IMAGE")
    assert not types_match("MASK", image)
    assert types_match("INT", io.AnyType.io_type) and types_match(io.AnyType.io_type, "LATENT")
    assert types_match("IMAGE", io.Custom("IMAGE,MASK").io_type)
    assert types_match("IMAGE,LATENT", io.Custom("IMAGE,MASK").io_type)  # unions match when they intersect
    assert not types_match("LATENT", io.Custom("IMAGE,MASK").io_type)
    assert types_match(["a", "b"], io.Combo.Input("c", options=["a"]).get_io_type())  # a combo output into a V3 combo


def test_matchtype_names_accept_the_allowed_types() -> None:
    template = io.MatchType.Template("T", [io.Image, io.Mask])
    name = io.MatchType.Input("x", template).get_io_type()
    assert name == "COMFY_MATCHTYPE_V3" and name.template_id == "T"
    assert types_match("IMAGE", name) and types_match("MASK", name) and not types_match("LATENT", name)
    assert template.as_dict() == {"template_id": "T", "allowed_types": "IMAGEMASK"}
    assert types_match("LATENT", io.MatchType.Output("y", io.MatchType.Template("U")).io_type)
    with pytest.raises(ValueError, match="needs a `template`"):
        io.MatchType.Output("y")


def test_multitype_and_autogrow_declarations() -> None:
    multi = io.MultiType.Input(io.Float.Input("v", default=0.5, optional=True), [io.Int, io.Image])
    assert (multi.id, multi.optional, multi.get_io_type()) == ("v", True, "FLOAT,INT,IMAGE")
    assert multi.as_dict() == {"default": 0.5, "widgetType": "FLOAT", "optional": True}
    grow = io.AutogrowDynamic.Input("xs", io.Int.Input("x", display_name="X"), min=1, max=3)
    copies = grow.get_dynamic()
    assert [(c.id, c.display_name, c.optional, c.force_input) for c in copies] == [
        ("x1_$xs_ag$", "X1", False, True), ("x2_$xs_ag$", "X2", True, True), ("x3_$xs_ag$", "X3", True, True)]
    with pytest.raises(ValueError, match="`min` must be ≥ 1, got 0"):
        io.AutogrowDynamic.Input("xs", io.Int.Input("x"), min=0)
    with pytest.raises(NotImplementedError, match="ComboDynamic"):
        io.ComboDynamic.Input("mode")


def test_schema_checks_and_defaults() -> None:
    schema = io.Schema(node_id="N", inputs=[io.Int.Input("a")], outputs=[io.Int.Output(), io.Float.Output("a")],
                       is_output_node=True)
    with pytest.raises(ValueError, match=r"ids must differ between inputs and outputs, but \['a'\]"):
        schema.validate()
    schema.finalize()
    assert schema.outputs[0].id == "_0_INT_"
    assert schema.hidden == [io.Hidden.prompt, io.Hidden.extra_pnginfo]


def test_optional_hooks_are_visible_only_when_overridden() -> None:
    class Plain(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Plain", inputs=[io.Int.Input("x", lazy=True)], outputs=[io.Int.Output()],
                             hidden=[io.Hidden.unique_id])

        @classmethod
        def execute(cls, x=None):
            return (x,)

    class Lazy(Plain):
        @classmethod
        def check_lazy_status(cls, x=None):
            return ["x"] if x is None and cls.hidden.unique_id == "5" else []

        @classmethod
        def validate_inputs(cls, x):
            return x != 3 or "no threes"

    assert first_real_override(Plain, "check_lazy_status") is None and not hasattr(Plain(), "check_lazy_status")
    assert Plain.check_lazy_status(x=None) == ["x"]  # ComfyUI's placeholder, on the class
    assert not hasattr(Plain, "VALIDATE_INPUTS") and not hasattr(Plain, "IS_CHANGED")
    assert Lazy().check_lazy_status(x=None, unique_id="5") == ["x"]  # hidden keywords go to cls.hidden
    assert Lazy.VALIDATE_INPUTS(x=3) == "no threes" and Lazy.VALIDATE_INPUTS(x=2) is True
    with pytest.raises(TypeError, match="does not define `define_schema`"):
        type("Broken", (io.ComfyNode,), {}).GET_SCHEMA()


def test_node_output_forms() -> None:
    out = io.NodeOutput.from_dict({"result": (1, 2), "ui": {"text": ["a"]}})
    assert (out.args, out.ui, out[1], out.result) == ((1, 2), {"text": ["a"]}, 2, (1, 2))
    assert io.NodeOutput().result is None
    assert io.HiddenHolder.from_dict({io.Hidden.unique_id: "7"}).unique_id == "7"
    assert io.HiddenHolder.from_dict(None).anything_else is None


def test_ui_helpers_write_files(tmp_path: Path) -> None:
    with Engine(base_dir=tmp_path, load_custom_nodes=False, builtin_packs=False) as engine, \
            activate_services(engine.services):
        mask = ui.PreviewMask(torch.zeros(2, 4, 6))
        assert [v["type"] for v in mask.as_dict()["images"]] == ["temp", "temp"]
        saved = ui.ImageSaveHelper.get_save_images_ui(torch.rand(1, 4, 4, 3), "v3/img", cls=None).as_dict()
        assert saved["images"][0]["subfolder"] == "v3" and (engine.paths.output_dir / "v3").is_dir()
        audio = ui.PreviewAudio({"waveform": torch.zeros(1, 2, 800), "sample_rate": 8000}).as_dict()["audio"][0]
        with wave.open(str(engine.paths.temp_dir / audio["subfolder"] / audio["filename"])) as wav:
            assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (2, 8000, 800)
        assert ui.PreviewText("hi").as_dict() == {"text": ("hi",)}
    assert Input.Image is torch.Tensor
    with pytest.raises(AttributeError, match="VideoFromList` is not provided"):
        InputImpl.VideoFromList  # noqa: B018 - a newer ComfyUI name


def test_an_input_named_like_a_hidden_value_stays_an_input(tmp_path: Path) -> None:
    class Save(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="SavePromptText", is_output_node=True, hidden=[io.Hidden.unique_id],
                             inputs=[io.String.Input("prompt")])

        @classmethod
        def execute(cls, prompt):
            return io.NodeOutput(ui=ui.PreviewText(f"{prompt}@{cls.hidden.unique_id}"))

    with Engine(base_dir=tmp_path, load_custom_nodes=False, builtin_packs=False) as engine:
        engine.registry.register_pack(PackInfo("inline", "inline"), {"SavePromptText": Save})
        result = engine.run({"4": {"class_type": "SavePromptText", "inputs": {"prompt": "a cat"}}})
        assert result.status == "success", result.errors
        assert result.outputs["4"] == {"text": ["a cat@4"]}
