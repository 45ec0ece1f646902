"""ComfyUI's model patches (ModelPatchLoader, ``models/model_patches``): the Qwen-Image DiffSynth
block-wise ControlNet (``qwen_image_*_diffsynth_controlnet.safetensors``) and how it steers the
transformer (QwenImageDiffsynthControlnet).

The patch embeds the control image's latent (Qwen-Image's normalised latent, 2×2 patches, plus
an inpainting mask's channels for the inpaint patch) and, after every transformer block, adds
``strength · block_i(x_rms(img) + y_rms(control))`` to the image tokens — ComfyUI's double-block
patch. On diffusers' Qwen-Image transformer that is a forward hook on each block, installed for
one model call. Imports no node, engine or adapter.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["BlockWiseControlNet", "DiffSynthControl", "diffsynth_adapter", "load_model_patch"]

_QWEN_CONTROLNET = "controlnet_blocks.0.y_rms.weight"
_USO_PROJECTOR = "feature_embedder.mid_layer_norm.bias"
_HOOK_LOCK = threading.RLock()  # re-entrant: two ControlNet patches on one model nest


def _module_class() -> Any:
    torch = require("torch", "diffusion")

    class ControlBlock(torch.nn.Module):
        """RMS-normalised image and control tokens, summed, then linear → GELU → linear."""

        def __init__(self, dim: int) -> None:
            super().__init__()
            self.x_rms = torch.nn.RMSNorm(dim, eps=1e-6)
            self.y_rms = torch.nn.RMSNorm(dim, eps=1e-6)
            self.input_proj = torch.nn.Linear(dim, dim)
            self.act = torch.nn.GELU()
            self.output_proj = torch.nn.Linear(dim, dim)

        def forward(self, x: Any, y: Any) -> Any:
            return self.output_proj(self.act(self.input_proj(self.x_rms(x) + self.y_rms(y))))

    class BlockWise(torch.nn.Module):
        """The DiffSynth block-wise ControlNet: one :class:`ControlBlock` per transformer block."""

        def __init__(self, num_layers: int, in_dim: int, dim: int) -> None:
            super().__init__()
            self.additional_in_dim = in_dim - 64
            self.img_in = torch.nn.Linear(in_dim, dim)
            self.controlnet_blocks = torch.nn.ModuleList([ControlBlock(dim) for _ in range(num_layers)])

    return BlockWise


def BlockWiseControlNet(num_layers: int, in_dim: int, dim: int) -> Any:  # noqa: N802 - a module factory
    """A fresh block-wise ControlNet module (torch imported lazily)."""
    return _module_class()(num_layers, in_dim, dim)


def load_model_patch(sd: dict[str, Any], name: str) -> Any:
    """The module of a model-patch file's weights, eval mode.

    Raises:
        ValidationError: a patch kind nodeloom cannot run (naming it) or an unknown file.
    """
    if _QWEN_CONTROLNET in sd:
        layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("controlnet_blocks."))
        dim, in_dim = sd["img_in.weight"].shape
        if in_dim < 64 or (in_dim - 64) % 4:
            raise ValidationError(f"`{name}`: the ControlNet's input takes {in_dim} values per patch, not Qwen-Image's"
                                  " 64 (+ 4 per mask channel)", type="invalid_model_file", extra_info={"name": name})
        model = BlockWiseControlNet(layers, int(in_dim), int(dim))
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise ValidationError(f"`{name}` does not fit a DiffSynth block-wise ControlNet: missing {missing[:2]},"
                                  f" unexpected {unexpected[:2]}", type="invalid_model_file", extra_info={"name": name})
        return model.eval()
    if _USO_PROJECTOR in sd:
        raise ValidationError(f"`{name}` is a USO style projector (for USOStyleReference on Flux.1), which nodeloom"
                              " cannot run yet", type="unsupported_model_file", extra_info={"name": name})
    raise ValidationError(f"`{name}` is not a model patch nodeloom knows (looked for the Qwen-Image DiffSynth"
                          f" ControlNet's `{_QWEN_CONTROLNET}`; the Z-Image Fun, Anima LLLite, InfiniteTalk and"
                          " MiniMax patches are not built yet)", type="unknown_model_patch", extra_info={"name": name})


class DiffSynthControl:
    """One QwenImageDiffsynthControlnet application: the patch, the control image and its strength.

    ``encode(pixels [B,H,W,3]) -> raw latent [B,16,H/ratio,W/ratio]`` is the VAE's; the control
    tokens are made for the image as given and again, scaled (area, centre crop), when a latent of
    another size is sampled (ComfyUI's rule).
    """

    def __init__(self, patch: Any, image: Any, strength: float, encode: Callable[[Any], Any],
                 mask: Any = None, ratio: int = 8) -> None:
        self.patch, self.image, self.strength, self.encode, self.mask = patch, image, strength, encode, mask
        self.ratio = ratio
        self._tokens: dict[tuple[int, int], Any] = {}
        self._lock = threading.Lock()

    def tokens(self, h: int, w: int, like: Any) -> Any:
        """The control tokens ``[B, h/2 · w/2, dim]`` for a latent of ``h × w``."""
        from nodeloom.ops.resample import upscale_image

        with self._lock:
            if (h, w) not in self._tokens:
                image = self.image[..., :3]
                r = self.ratio
                if tuple(image.shape[1:3]) != (h * r, w * r):
                    image = upscale_image(image, w * r, h * r, "area", "center")
                self._tokens[(h, w)] = self._embed(self.encode(image))
            return self._tokens[(h, w)].to(like.device, like.dtype)

    def _embed(self, raw: Any) -> Any:
        torch = require("torch", "diffusion")
        from nodeloom.diffusion.families.qwen import latent_stats, pack

        raw = raw[:, :, 0] if raw.ndim == 5 else raw
        scale, shift = latent_stats()
        latent = (raw.float() - shift) * scale
        extra = self.patch.additional_in_dim // 4
        if extra:
            if self.mask is None:
                mask = torch.ones_like(latent[:, :extra])
            else:
                m = self.mask.float().reshape(-1, 1, *self.mask.shape[-2:])
                mask = torch.nn.functional.interpolate(m, size=latent.shape[-2:], mode="bilinear")
                mask = mask.expand(-1, extra, -1, -1)
            latent = torch.cat([latent, mask.to(latent.dtype)], dim=1)
        if latent.shape[-2] % 2 or latent.shape[-1] % 2:
            latent = torch.nn.functional.pad(latent, (0, latent.shape[-1] % 2, 0, latent.shape[-2] % 2),
                                             mode="circular")
        param = next(self.patch.parameters())
        with torch.no_grad():
            return self.patch.img_in(pack(latent).to(param.device, param.dtype))


@contextlib.contextmanager
def _block_hooks(module: Any, control: DiffSynthControl, tokens: Any) -> Iterator[None]:
    """Each transformer block's image tokens get ``strength · control_block_i`` added after it."""
    torch = require("torch", "diffusion")
    blocks = list(module.transformer_blocks)
    if len(control.patch.controlnet_blocks) < len(blocks):
        raise ValidationError(f"the ControlNet patch has {len(control.patch.controlnet_blocks)} blocks but the"
                              f" Qwen-Image model has {len(blocks)}; the patch does not belong to this model")
    n = tokens.shape[1]

    def hook_for(i: int) -> Any:
        def hook(_m: Any, _args: Any, output: Any) -> Any:
            txt, img = output
            ctrl = control.patch.controlnet_blocks[i](img[:, :n], tokens.to(img.dtype).expand(img.shape[0], -1, -1))
            return txt, torch.cat([img[:, :n] + ctrl.to(img.dtype) * control.strength, img[:, n:]], dim=1)
        return hook

    with _HOOK_LOCK:
        handles = [b.register_forward_hook(hook_for(i)) for i, b in enumerate(blocks)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


def diffsynth_adapter(base: Callable[..., Any], control: DiffSynthControl) -> Callable[..., Any]:
    """The Qwen-Image adapter ``base`` with the DiffSynth ControlNet steering every block (the
    returned adapter's ``control`` attribute is ``control``)."""

    def adapter(module: Any, x: Any, sigma: Any, group: ModelCall) -> Any:
        h, w = x.shape[-2:]
        param = next(control.patch.parameters())
        if param.device != x.device or param.dtype != x.dtype:  # where the transformer runs this call
            control.patch.to(x.device, x.dtype)
        tokens = control.tokens(int(h), int(w), x)
        with _block_hooks(module, control, tokens):
            return base(module, x, sigma, group)

    adapter.control = control  # type: ignore[attr-defined]  # what it steers with, for inspection
    return adapter
