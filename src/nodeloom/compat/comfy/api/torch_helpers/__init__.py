"""``comfy_api.torch_helpers``: ComfyUI's torch helpers for packs — ``set_torch_compile_wrapper``."""

from nodeloom.compat.comfy.api.torch_helpers.torch_compile import set_torch_compile_wrapper

__all__ = ["set_torch_compile_wrapper"]
