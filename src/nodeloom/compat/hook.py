"""The import hook that makes ComfyUI's module names resolve to nodeloom's shims.

Custom-node packs written for ComfyUI import ``comfy.utils``, ``folder_paths``,
``comfy_execution.graph_utils``... :func:`install` puts a finder first on ``sys.meta_path``
that answers those names (and only those) with the modules in ``nodeloom.compat.comfy``,
imported lazily on first use. Installing twice is harmless; it stays installed for the life
of the process, because pack code imports these modules again while it runs.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Sequence
from typing import Any

__all__ = ["EXTRAS", "MODULE_MAP", "ComfyShimFinder", "install", "installed", "uninstall"]

_SHIM = "nodeloom.compat.comfy"
#: ComfyUI's extra node modules: every ``comfy_extras.*`` name is answered (see ``compat.comfy.extras``).
EXTRAS = "comfy_extras"

#: ComfyUI module name -> the nodeloom module that stands in for it.
MODULE_MAP: dict[str, str] = {
    "comfy": _SHIM,
    "comfy.utils": f"{_SHIM}.utils",
    "comfy.model_management": f"{_SHIM}.model_management",
    "comfy.cli_args": f"{_SHIM}.cli_args",
    "comfy.comfy_types": f"{_SHIM}.comfy_types",
    "comfy.comfy_types.node_typing": f"{_SHIM}.comfy_types.node_typing",
    "comfy_execution": f"{_SHIM}.execution",
    "comfy_execution.graph": f"{_SHIM}.execution.graph",
    "comfy_execution.graph_utils": f"{_SHIM}.execution.graph_utils",
    "comfy_api": f"{_SHIM}.api",
    "comfy_api.v0_0_2": f"{_SHIM}.api.v0_0_2",
    "comfy_api.v0_0_1": f"{_SHIM}.api.v0_0_1",
    "comfy_api.latest": f"{_SHIM}.api.latest",
    "comfy_api.latest._io": f"{_SHIM}.api.latest._io",
    "comfy_api.latest._ui": f"{_SHIM}.api.latest._ui",
    "comfy_api.internal": f"{_SHIM}.api.internal",
    "comfy_api.latest._resources": f"{_SHIM}.api.latest._resources",
    "comfy_api.torch_helpers": f"{_SHIM}.api.torch_helpers",
    "comfy_api.torch_helpers.torch_compile": f"{_SHIM}.api.torch_helpers.torch_compile",
    **{name: f"{_SHIM}.api.media" for name in (
        "comfy_api.input", "comfy_api.input.basic_types", "comfy_api.input.video_types",
        "comfy_api.input_impl", "comfy_api.input_impl.video_types", "comfy_api.util", "comfy_api.util.video_types",
        "comfy_api.latest._input", "comfy_api.latest._input.basic_types", "comfy_api.latest._input.video_types",
        "comfy_api.latest._input_impl", "comfy_api.latest._input_impl.video_types",
        "comfy_api.latest._util", "comfy_api.latest._util.video_types")},
    "comfy.samplers": f"{_SHIM}.samplers",
    "comfy.sample": f"{_SHIM}.sample",
    "comfy.sampler_helpers": f"{_SHIM}.sampler_helpers",
    "comfy.sd": f"{_SHIM}.sd",
    "comfy.latent_formats": f"{_SHIM}.latent_formats",
    "comfy.k_diffusion": f"{_SHIM}.k_diffusion",
    "comfy.k_diffusion.utils": f"{_SHIM}.k_diffusion",
    "comfy.k_diffusion.sampling": f"{_SHIM}.k_diffusion_sampling",
    "comfy.model_patcher": f"{_SHIM}.model_patcher",
    "comfy.patcher_extension": f"{_SHIM}.patcher_extension",
    "comfy.ops": f"{_SHIM}.ops",
    "comfy.taesd": f"{_SHIM}.taesd",
    "comfy.taesd.taesd": f"{_SHIM}.taesd",
    "comfy.clip_vision": f"{_SHIM}.clip_vision",
    "comfy.controlnet": f"{_SHIM}.controlnet",
    **{name: f"{_SHIM}.ldm_attention" for name in ("comfy.ldm", "comfy.ldm.modules", "comfy.ldm.flux", "comfy.ldm.lumina", "comfy.ldm.modules.attention")},
    **{name: f"{_SHIM}.ldm_layers" for name in ("comfy.ldm.flux", "comfy.ldm.flux.math", "comfy.ldm.lumina",
                                               "comfy.ldm.lumina.model")},
    "comfy.diffusers_convert": f"{_SHIM}.diffusers_convert",
    "comfy.diffusers_load": f"{_SHIM}.diffusers_convert",
    "execution": f"{_SHIM}.execution_shim",
    "latent_preview": f"{_SHIM}.latent_preview",
    "node_helpers": f"{_SHIM}.node_helpers",
    "folder_paths": f"{_SHIM}.folder_paths",
    "nodes": f"{_SHIM}.nodes_shim",
    "server": f"{_SHIM}.server_shim",
    "protocol": f"{_SHIM}.server_shim",
}


#: Names imported as packages (their submodules are in the map too).
_PACKAGES = frozenset({"comfy", "comfy.comfy_types", "comfy.k_diffusion", "comfy.taesd", "comfy.ldm", "comfy.ldm.modules",
                       "comfy.ldm.flux", "comfy.ldm.lumina", "comfy_execution", "comfy_api", "comfy_api.latest",
                       "comfy_api.torch_helpers",
                       "comfy_api.input", "comfy_api.input_impl", "comfy_api.util", "comfy_api.latest._input",
                       "comfy_api.latest._input_impl", "comfy_api.latest._util"})


class _AliasLoader(importlib.abc.Loader):
    """Hands out an already-importable nodeloom module under its ComfyUI name."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._original_spec: Any = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = importlib.import_module(self.target)
        self._original_spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        # importlib stamped the alias spec onto the shared module; keep its real identity
        # so reloading or pickling by the nodeloom name still works.
        if self._original_spec is not None:
            module.__spec__ = self._original_spec


class _ExtrasLoader(importlib.abc.Loader):
    """Builds ``comfy_extras`` and its submodules (nodeloom's built-in nodes by ComfyUI module name)."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        from nodeloom.compat.comfy.extras import make_module

        return make_module(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: attributes resolve on access."""


class ComfyShimFinder(importlib.abc.MetaPathFinder):
    """Finds the names in :data:`MODULE_MAP`; leaves every other import alone."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == EXTRAS or fullname.startswith(EXTRAS + "."):
            return importlib.machinery.ModuleSpec(fullname, _ExtrasLoader(), is_package=fullname == EXTRAS)
        shim = MODULE_MAP.get(fullname)
        if shim is None:
            return None
        is_package = fullname in _PACKAGES
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(shim), is_package=is_package)


_lock = threading.Lock()


def _find_installed() -> ComfyShimFinder | None:
    return next((f for f in sys.meta_path if isinstance(f, ComfyShimFinder)), None)


def installed() -> bool:
    """Whether the hook is on ``sys.meta_path``."""
    return _find_installed() is not None


def install() -> ComfyShimFinder:
    """Put the shim finder first on ``sys.meta_path`` (idempotent).

    Returns:
        The installed finder.
    """
    with _lock:
        finder = _find_installed()
        if finder is None:
            finder = ComfyShimFinder()
            sys.meta_path.insert(0, finder)
        return finder


def uninstall() -> None:
    """Remove the finder and forget the aliases it created (for tests)."""
    with _lock:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, ComfyShimFinder)]
        for name in MODULE_MAP:
            module = sys.modules.get(name)
            if module is not None and module.__name__.startswith(_SHIM):
                del sys.modules[name]
        for name in [n for n in sys.modules if n == EXTRAS or n.startswith(EXTRAS + ".")]:
            del sys.modules[name]
