"""The ComfyUI module shims: import hook, comfy.utils, folder_paths, model_management, comfy_api, server."""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from nodeloom.compat import hook
from nodeloom.core.context import InterruptFlag, NodeContext, activate_services, node_context
from nodeloom.core.graph_builder import ExecutionBlocker, GraphBuilder
from nodeloom.core.types import ANY, types_match
from nodeloom.errors import Interrupted, ModelNotFoundError, NodeloomError, ValidationError
from nodeloom.paths import FolderPaths
from nodeloom.services import Services


@pytest.fixture(autouse=True)
def _hook() -> None:
    hook.install()


@pytest.fixture
def services(tmp_path: Path) -> Services:
    paths = FolderPaths(tmp_path)
    paths.ensure()
    return Services(paths)


def _ctx(services: Services, events: list[Any], node_id: str = "7") -> NodeContext:
    def sink(nid: str, value: float, total: float, preview: Any) -> None:
        events.append((nid, value, total, preview))

    return NodeContext(node_id=node_id, prompt_id="p", interrupt=InterruptFlag(), services=services, progress_sink=sink)


def test_install_is_idempotent_and_maps_names() -> None:
    first = hook.install()
    assert hook.install() is first
    assert sum(isinstance(f, hook.ComfyShimFinder) for f in sys.meta_path) == 1
    utils = importlib.import_module("comfy.utils")
    assert utils is importlib.import_module("nodeloom.compat.comfy.utils")
    assert utils.__spec__.name == "nodeloom.compat.comfy.utils"
    graph_utils = importlib.import_module("comfy_execution.graph_utils")
    assert graph_utils.GraphBuilder is GraphBuilder
    assert importlib.import_module("comfy_execution.graph").ExecutionBlocker is ExecutionBlocker
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("comfy.ldm.wan.model")  # model internals are not mapped
    hook.uninstall()
    try:
        assert not hook.installed() and "comfy.utils" not in sys.modules
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("folder_paths")
    finally:
        hook.install()
    assert importlib.import_module("folder_paths").__name__ == "nodeloom.compat.comfy.folder_paths"


def test_io_types_match_like_comfyui() -> None:
    from comfy.comfy_types import IO, CheckLazyMixin, ComfyNodeABC
    from comfy.comfy_types.node_typing import InputTypeOptions

    assert IO.ANY is ANY and IO("IMAGE") is IO.IMAGE and IO.IMAGE.value == "IMAGE"
    assert not (IO.NUMBER != "INT") and not ("FLOAT" != IO.NUMBER)
    assert IO.IMAGE != "MASK" and IO.IMAGE == "IMAGE"
    assert types_match("INT", IO.NUMBER) and types_match("IMAGE", IO.ANY) and not types_match("MASK", IO.IMAGE)
    assert "STRING" in list(IO)
    assert CheckLazyMixin().check_lazy_status(a=None, b=1) == ["a"]
    assert "min" in InputTypeOptions.__annotations__
    with pytest.raises(TypeError):
        ComfyNodeABC()  # abstract: INPUT_TYPES must be defined


def test_progress_bar_reports_to_the_running_node(services: Services) -> None:
    from comfy.utils import ProgressBar, set_progress_bar_global_hook

    events: list[Any] = []
    hooked: list[Any] = []
    set_progress_bar_global_hook(lambda v, t, p, node_id=None: hooked.append((v, t)))
    try:
        with node_context(_ctx(services, events)):
            bar = ProgressBar(4)
            bar.update(1)
            bar.update_absolute(3, preview=("JPEG", "img", 512))
            ProgressBar(2, node_id="9").update(2)
    finally:
        set_progress_bar_global_hook(None)
    assert events == [("7", 1.0, 4.0, None), ("7", 3.0, 4.0, "img"), ("9", 2.0, 2.0, None)]
    assert hooked == [(1, 4), (3, 4), (2, 2)]


def test_binary_preview_events_become_the_node_preview(services: Services) -> None:
    from server import BinaryEventTypes, PromptServer  # Comfyroll's import

    from protocol import BinaryEventTypes as same

    assert same is BinaryEventTypes
    events: list[Any] = []
    with node_context(_ctx(services, events)):
        PromptServer.instance.send_sync(BinaryEventTypes.UNENCODED_PREVIEW_IMAGE, ["PNG", "pil-image", None])
        with pytest.raises(ValueError, match="binary event type 3"):
            PromptServer.instance.send_sync(BinaryEventTypes.TEXT, b"text")
    assert events == [("7", 1.0, 1.0, "pil-image")]


def test_progress_bar_stops_an_interrupted_run(services: Services) -> None:
    import comfy.model_management as mm
    from comfy.utils import ProgressBar

    ctx = _ctx(services, [])
    with node_context(ctx):
        assert not mm.processing_interrupted()
        mm.interrupt_current_processing()
        assert mm.processing_interrupted()
        with pytest.raises(mm.InterruptProcessingException):
            mm.throw_exception_if_processing_interrupted()
        with pytest.raises(Interrupted):
            ProgressBar(2).update(1)
    mm.throw_exception_if_processing_interrupted()  # outside a node: nothing to interrupt


def test_model_management_devices(services: Services) -> None:
    import comfy.model_management as mm

    with activate_services(Services(services.paths, settings={})):
        assert mm.get_torch_device().type in ("cpu", "cuda")
    assert mm.intermediate_device() == torch.device("cpu")
    assert mm.is_device_cpu("cpu") and not mm.is_device_mps("cpu")
    assert mm.get_total_memory(torch.device("cpu")) > 0 and mm.get_free_memory(torch.device("cpu")) > 0
    mm.soft_empty_cache()
    mm.unload_all_models()


def test_common_upscale_and_load_torch_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    import comfy.utils

    samples = torch.rand(2, 3, 8, 12)
    assert comfy.utils.common_upscale(samples, 6, 4, "bilinear", "disabled").shape == (2, 3, 4, 6)
    assert comfy.utils.common_upscale(samples, 4, 4, "lanczos", "center").shape == (2, 3, 4, 4)
    weights = {"a.weight": torch.arange(4.0)}
    save_file(weights, str(tmp_path / "w.safetensors"), metadata={"k": "v"})
    state, meta = comfy.utils.load_torch_file(tmp_path / "w.safetensors", return_metadata=True)
    assert torch.equal(state["a.weight"], weights["a.weight"]) and meta == {"k": "v"}
    torch.save({"state_dict": weights}, tmp_path / "w.ckpt")
    assert torch.equal(comfy.utils.load_torch_file(str(tmp_path / "w.ckpt"))["a.weight"], weights["a.weight"])

    class Evil:
        def __reduce__(self) -> Any:
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(Exception, match="weights_only|Unsupported|global"):
        comfy.utils.load_torch_file(str(tmp_path / "evil.ckpt"))
    with pytest.raises(FileNotFoundError):
        comfy.utils.load_torch_file(str(tmp_path / "none.safetensors"))
    renamed = comfy.utils.state_dict_prefix_replace({"model.x": 1, "y": 2}, {"model.": "m."})
    assert renamed == {"y": 2, "m.x": 1}


def test_folder_paths_reads_the_active_engine(services: Services, tmp_path: Path) -> None:
    import folder_paths

    with pytest.raises(NodeloomError, match="no nodeloom engine"):
        folder_paths.get_output_directory()
    (tmp_path / "models" / "loras").mkdir(parents=True)
    (tmp_path / "models" / "loras" / "a.safetensors").write_bytes(b"x")
    (tmp_path / "input" / "cat.png").write_bytes(b"x")
    with activate_services(services):
        assert folder_paths.get_output_directory() == str(tmp_path / "output")
        assert folder_paths.models_dir == str(tmp_path / "models")
        assert folder_paths.get_filename_list("loras") == ["a.safetensors"]
        assert folder_paths.get_full_path("loras", "a.safetensors") == str(tmp_path / "models" / "loras" / "a.safetensors")
        assert folder_paths.get_full_path("loras", "b.safetensors") is None
        with pytest.raises(ModelNotFoundError):
            folder_paths.get_full_path_or_raise("loras", "b.safetensors")
        extra = tmp_path / "more_instantid"
        folder_paths.add_model_folder_path("instantid", str(extra))
        assert folder_paths.get_folder_paths("instantid") == [str(extra)]
        folder_paths.folder_names_and_paths["clip_seg"] = ([str(extra)], {".bin"})
        assert folder_paths.folder_names_and_paths["clip_seg"] == ([str(extra)], {".bin"})
        assert "loras" in folder_paths.folder_names_and_paths
        assert folder_paths.get_annotated_filepath("cat.png") == str(tmp_path / "input" / "cat.png")
        assert folder_paths.get_annotated_filepath("x.png [output]") == str(tmp_path / "output" / "x.png")
        assert folder_paths.exists_annotated_filepath("cat.png")
        assert not folder_paths.exists_annotated_filepath("../secret.png")
        folder, name, counter, sub, _ = folder_paths.get_save_image_path("sub/pic", folder_paths.get_temp_directory(), 8, 8)
        assert (folder, name, counter, sub) == (str(tmp_path / "temp" / "sub"), "pic", 1, "sub")
        with pytest.raises(ValidationError, match="output_dir"):
            folder_paths.get_save_image_path("x", str(tmp_path / "elsewhere"))
        assert folder_paths.filter_files_content_types(["a.png", "b.txt", "c.webm"], ["image"]) == ["a.png"]
        assert folder_paths.filter_files_extensions(["a.PT", "b.txt"], [".pt"]) == ["a.PT"]


def test_comfy_api_set_progress_sync_and_async(services: Services) -> None:
    from comfy_api.v0_0_2 import ComfyAPI, ComfyAPISync

    events: list[Any] = []
    with node_context(_ctx(services, events)):
        ComfyAPISync().execution.set_progress(value=0.5, max_value=1.0)
        asyncio.run(ComfyAPI().execution.set_progress(2, 4, node_id="3", preview_image=("PNG", "im", None)))
    assert events == [("7", 0.5, 1.0, None), ("3", 2.0, 4.0, "im")]
    with pytest.raises(ValueError, match="running prompt"):
        ComfyAPISync().execution.set_progress(1, 2)


def test_server_shim_routes_and_send_sync(services: Services) -> None:
    import server
    from nodeloom.compat.comfy import server_shim

    sent: list[Any] = []
    services.event_sink = lambda t, d, c: sent.append((t, d, c))

    @server.PromptServer.instance.routes.get("/stub/hello")
    async def hello(request: Any) -> Any:  # pragma: no cover - only registered
        return None

    assert any(getattr(r, "path", None) == "/stub/hello" for r in server_shim.ROUTES)
    with activate_services(services):
        server.PromptServer.instance.send_sync("my.event", {"a": 1}, "client")
    server.PromptServer.instance.send_sync("dropped", {})  # no engine, nothing bound
    server_shim.bind_services(services)
    try:
        asyncio.run(server.PromptServer.instance.send_json("bound", {"b": 2}))
    finally:
        server_shim.bind_services(None)
    assert sent == [("my.event", {"a": 1}, "client"), ("bound", {"b": 2}, None)]


def test_nodes_and_cli_args_shims() -> None:
    import nodes
    from comfy.cli_args import args

    from nodeloom.nodes.core import NODE_CLASS_MAPPINGS

    assert nodes.MAX_RESOLUTION == 16384
    assert nodes.SaveImage is NODE_CLASS_MAPPINGS["SaveImage"]
    assert nodes.NODE_CLASS_MAPPINGS["LoadImage"] is NODE_CLASS_MAPPINGS["LoadImage"]
    assert len(nodes.NODE_CLASS_MAPPINGS) > len(NODE_CLASS_MAPPINGS)  # every built-in pack
    with pytest.raises(AttributeError):
        nodes.KSamplerThatDoesNotExist  # noqa: B018
    assert args.disable_metadata is False and args.some_unknown_flag is None


def test_dynamic_prompt_view() -> None:
    from comfy_execution.graph import DynamicPrompt, NodeNotFoundError

    dyn = DynamicPrompt({"1": {"class_type": "A", "inputs": {}}})
    dyn.add_ephemeral_node("1.0.0.1", {"class_type": "B", "inputs": {}}, parent_id="1", display_id="1")
    dyn.add_ephemeral_node("1.0.0.2", {"class_type": "C", "inputs": {}}, parent_id="1.0.0.1", display_id="1.0.0.1")
    assert dyn.get_node("1.0.0.2")["class_type"] == "C" and dyn.has_node("1")
    assert dyn.get_real_node_id("1.0.0.2") == "1" and dyn.get_display_node_id("1.0.0.2") == "1"
    assert dyn.get_parent_node_id("1.0.0.2") == "1.0.0.1" and dyn.all_node_ids() == {"1", "1.0.0.1", "1.0.0.2"}
    with pytest.raises(NodeNotFoundError):
        dyn.get_node("9")


def test_dynprompt_input_is_the_shim_class(tmp_path) -> None:
    """The hidden DYNPROMPT value is an instance of ``comfy_execution.graph.DynamicPrompt``
    and shows the nodes an expansion added under ComfyUI's attribute names."""
    from comfy_execution.graph import DynamicPrompt
    from comfy_execution.graph_utils import GraphBuilder

    from nodeloom import Engine
    from nodeloom.core.registry import PackInfo

    seen: list = []

    class Expand:
        RETURN_TYPES = ("INT",)
        FUNCTION = "run"
        CATEGORY = "test"
        OUTPUT_NODE = True

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}, "hidden": {"dyn": "DYNPROMPT", "uid": "UNIQUE_ID"}}

        def run(self, dyn, uid):
            seen.append(dyn)
            g = GraphBuilder()
            inner = g.node("Look")
            return {"result": (inner.out(0),), "expand": g.finalize()}

    class Look:
        RETURN_TYPES = ("INT",)
        FUNCTION = "run"
        CATEGORY = "test"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}, "hidden": {"dyn": "DYNPROMPT"}}

        def run(self, dyn):
            seen.append(sorted(c["class_type"] for c in dyn.ephemeral_prompt.values()))
            return (1,)

    with Engine(base_dir=tmp_path, builtin_packs=False, load_custom_nodes=False) as engine:
        engine.registry.register_pack(PackInfo("dyn", "dyn"), {"Expand": Expand, "Look": Look})
        prompt = {"1": {"class_type": "Expand", "inputs": {}}}
        assert engine.run(prompt).ok
    assert any(isinstance(s, DynamicPrompt) for s in seen) and ["Look"] in seen
