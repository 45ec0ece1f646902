"""Two equivalent custom-node packs, as source text written into a ``custom_nodes/`` folder by
the tests: one declared with ComfyUI's V3 API (async ``comfy_entrypoint``), one with V1 classes.

Each V3 node has a V1 twin (``V3X`` / ``V1X``) that must give the same results: scale (a
float with a range and ``validate_inputs``), a lazy switch over ``MatchType`` inputs, a sum
over ``AutogrowDynamic`` inputs, an expansion into a chain of scale nodes, list output and
list input, a gate that blocks, a combo, an always-changing node (``fingerprint_inputs``), and
output nodes showing text (hidden ``unique_id`` / ``prompt``, async ``execute``, progress) and
previewing images.
"""

from __future__ import annotations

from pathlib import Path

V3_PACK = r'''
import torch
from comfy_api.latest import ComfyAPI, ComfyExtension, io, ui
from comfy_execution.graph_utils import GraphBuilder

api = ComfyAPI()
LOADED = []
T = io.MatchType.Template("T")


class Scale(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Scale", display_name="Scale (V3)", category="v3test",
            description="Multiply an image by a factor.",
            inputs=[io.Image.Input("image", tooltip="The image."),
                    io.Float.Input("factor", default=1.0, min=-4.0, max=4.0, step=0.25, tooltip="The factor.")],
            outputs=[io.Image.Output(display_name="scaled", tooltip="The scaled image.")],
        )

    @classmethod
    def validate_inputs(cls, factor):
        return True if factor != 0 else "factor must not be 0"

    @classmethod
    def execute(cls, image, factor):
        return io.NodeOutput(image * factor)


class LazySwitch(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3LazySwitch", category="v3test",
            inputs=[io.Boolean.Input("use_a", default=True),
                    io.MatchType.Input("a", T, lazy=True), io.MatchType.Input("b", T, lazy=True)],
            outputs=[io.MatchType.Output("out", T)],
        )

    @classmethod
    def check_lazy_status(cls, use_a, a=None, b=None):
        wanted = "a" if use_a else "b"
        return [wanted] if (a if use_a else b) is None else []

    @classmethod
    def execute(cls, use_a, a=None, b=None):
        return io.NodeOutput(a if use_a else b)


class Sum(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Sum", category="v3test", is_experimental=True,
            inputs=[io.AutogrowDynamic.Input("values", io.Float.Input("value"), min=2, max=4)],
            outputs=[io.Float.Output()],
        )

    @classmethod
    def execute(cls, **values):
        return io.NodeOutput(float(sum(values.values())))


class Repeat(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Repeat", category="v3test", enable_expand=True,
            inputs=[io.Image.Input("image"), io.Int.Input("times", default=2, min=1, max=8)],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def execute(cls, image, times):
        g = GraphBuilder()
        current = None
        for _ in range(times):
            current = g.node("V3Scale", image=image if current is None else current.out(0), factor=2.0)
        return io.NodeOutput(current.out(0), expand=g.finalize())


class Split(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Split", category="v3test", inputs=[io.Image.Input("images")],
                         outputs=[io.Image.Output(is_output_list=True)])

    @classmethod
    def execute(cls, images):
        return io.NodeOutput([images[i:i + 1] for i in range(images.shape[0])])


class Count(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Count", category="v3test", is_input_list=True,
                         inputs=[io.Image.Input("images")], outputs=[io.Int.Output()])

    @classmethod
    def execute(cls, images):
        return io.NodeOutput(len(images))


class Gate(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Gate", category="v3test", is_deprecated=True,
                         inputs=[io.AnyType.Input("value"), io.Boolean.Input("open", default=True)],
                         outputs=[io.AnyType.Output()])

    @classmethod
    def execute(cls, value, open):
        return io.NodeOutput(value) if open else io.NodeOutput(block_execution="the gate is closed")


class Pick(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Pick", category="v3test",
                         inputs=[io.Combo.Input("mode", options=["add", "mul"]),
                                 io.Float.Input("x", default=1.0), io.Float.Input("y", default=1.0)],
                         outputs=[io.Float.Output()])

    @classmethod
    def execute(cls, mode, x, y):
        return io.NodeOutput(x + y if mode == "add" else x * y)


class Clock(io.ComfyNode):
    calls = 0

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Clock", category="v3test", inputs=[io.Float.Input("x", default=0.0)],
                         outputs=[io.Float.Output()], not_idempotent=True)

    @classmethod
    def fingerprint_inputs(cls, x):
        return float("nan")

    @classmethod
    def execute(cls, x):
        Clock.calls += 1
        return io.NodeOutput(x + Clock.calls)


class Show(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Show", category="v3test", is_output_node=True,
                         inputs=[io.AnyType.Input("value")], hidden=[io.Hidden.unique_id])

    @classmethod
    async def execute(cls, value):
        await api.execution.set_progress(1, 2)
        text = f"{cls.hidden.unique_id}|{len(cls.hidden.prompt)}|{value}"
        return io.NodeOutput(ui=ui.PreviewText(text))


class Preview(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Preview", category="v3test", is_output_node=True,
                         inputs=[io.Image.Input("images")])

    @classmethod
    def execute(cls, images):
        return io.NodeOutput(ui=ui.PreviewImage(images, cls=cls))


class Extension(ComfyExtension):
    async def on_load(self):
        LOADED.append(True)

    async def get_node_list(self):
        return [Scale, LazySwitch, Sum, Repeat, Split, Count, Gate, Pick, Clock, Show, Preview]


async def comfy_entrypoint():
    return Extension()
'''

V1_PACK = r'''
from comfy_execution.graph import ExecutionBlocker
from comfy_execution.graph_utils import GraphBuilder
import comfy.utils
import folder_paths
import nodes

ANY = type("AnyType", (str,), {"__ne__": lambda self, other: False})("*")


class Scale:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "factor": ("FLOAT", {"default": 1.0, "min": -4.0, "max": 4.0})}}
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def VALIDATE_INPUTS(cls, factor):
        return True if factor != 0 else "factor must not be 0"

    def run(self, image, factor):
        return (image * factor,)


class LazySwitch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"use_a": ("BOOLEAN", {"default": True}), "a": (ANY, {"lazy": True}),
                             "b": (ANY, {"lazy": True})}}
    RETURN_TYPES = (ANY,)
    FUNCTION = "run"

    def check_lazy_status(self, use_a, a=None, b=None):
        wanted = "a" if use_a else "b"
        return [wanted] if (a if use_a else b) is None else []

    def run(self, use_a, a=None, b=None):
        return (a if use_a else b,)


class Sum:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value1": ("FLOAT", {"forceInput": True}), "value2": ("FLOAT", {"forceInput": True})},
                "optional": {"value3": ("FLOAT", {"forceInput": True}), "value4": ("FLOAT", {"forceInput": True})}}
    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "run"

    def run(self, **values):
        return (float(sum(values.values())),)


class Repeat:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "times": ("INT", {"default": 2, "min": 1, "max": 8})}}
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    def run(self, image, times):
        g = GraphBuilder()
        current = None
        for _ in range(times):
            current = g.node("V1Scale", image=image if current is None else current.out(0), factor=2.0)
        return {"result": (current.out(0),), "expand": g.finalize()}


class Split:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}}
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    def run(self, images):
        return ([images[i:i + 1] for i in range(images.shape[0])],)


class Count:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}}
    RETURN_TYPES = ("INT",)
    INPUT_IS_LIST = True
    FUNCTION = "run"

    def run(self, images):
        return (len(images),)


class Gate:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY,), "open": ("BOOLEAN", {"default": True})}}
    RETURN_TYPES = (ANY,)
    FUNCTION = "run"

    def run(self, value, open):
        return (value,) if open else (ExecutionBlocker("the gate is closed"),)


class Pick:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mode": (["add", "mul"],), "x": ("FLOAT", {"default": 1.0}),
                             "y": ("FLOAT", {"default": 1.0})}}
    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "run"

    def run(self, mode, x, y):
        return (x + y if mode == "add" else x * y,)


class Show:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY,)}, "hidden": {"unique_id": "UNIQUE_ID", "prompt": "PROMPT"}}
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"

    def run(self, value, unique_id, prompt):
        comfy.utils.ProgressBar(2).update(1)
        return {"ui": {"text": (f"{unique_id}|{len(prompt)}|{value}",)}}


NODE_CLASS_MAPPINGS = {"V1" + c.__name__: c for c in (Scale, LazySwitch, Sum, Repeat, Split, Count, Gate, Pick, Show)}
'''


def write_packs(custom_nodes: Path) -> Path:
    """Write both packs under ``custom_nodes`` (``v3_pack/``, ``v1_pack/``); returns the folder."""
    for name, source in (("v3_pack", V3_PACK), ("v1_pack", V1_PACK)):
        (custom_nodes / name).mkdir(parents=True, exist_ok=True)
        (custom_nodes / name / "__init__.py").write_text(source)
    return custom_nodes
