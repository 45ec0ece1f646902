"""``comfy.cli_args``: the parsed command-line flags packs read (``args.disable_metadata``...).

nodeloom has no ComfyUI command line inside the engine, so ``args`` holds ComfyUI's defaults;
any flag it does not know reads as None instead of raising.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LatentPreviewMethod", "args"]


class LatentPreviewMethod:
    NoPreviews = "none"
    Auto = "auto"
    Latent2RGB = "latent2rgb"
    TAESD = "taesd"


class _Args:
    """ComfyUI's defaults; unknown flags are None."""

    def __init__(self) -> None:
        self.cpu = False
        self.listen = "127.0.0.1"
        self.port = 8188
        self.disable_metadata = False
        self.preview_method = LatentPreviewMethod.NoPreviews
        self.preview_size = 512
        self.disable_all_custom_nodes = False
        self.cache_lru = 0
        self.cache_none = False
        self.highvram = False
        self.lowvram = False
        self.novram = False
        self.gpu_only = False
        self.force_fp16 = False
        self.force_fp32 = False
        self.fp16_vae = False
        self.bf16_vae = False
        self.fp32_vae = False
        self.dont_upcast_attention = False
        self.disable_smart_memory = False
        self.deterministic = False
        self.verbose = "INFO"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None


args = _Args()
