"""``comfy.comfy_types.node_typing``: socket type names and typing helpers for V1 nodes.

``IO`` members are strings; every one but ``IO.ANY`` matches another type string when one's
comma-separated set contains the other's (so ``IO.NUMBER`` accepts ``"INT"``), and ``IO.ANY``
is nodeloom's :data:`~nodeloom.core.types.ANY`, which matches everything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, Literal, TypedDict

from nodeloom.core.types import ANY

__all__ = [
    "IO",
    "CheckLazyMixin",
    "ComfyNodeABC",
    "FileLocator",
    "HiddenInputTypeDict",
    "InputTypeDict",
    "InputTypeOptions",
]


class _IOType(str):
    """A type name that matches when either comma-separated set contains the other."""

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, str):
            return True
        if str(self) == "*" or other == "*":
            return False
        mine = frozenset(self.split(","))
        theirs = frozenset(other.split(","))
        return not (mine <= theirs or theirs <= mine)

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)

    def __hash__(self) -> int:
        return str.__hash__(self)

    @property
    def value(self) -> str:
        """The plain string (ComfyUI's IO is an enum; packs sometimes read ``.value``)."""
        return str.__str__(self)

    def __str__(self) -> str:
        return str.__str__(self)


class _IOMeta(type):
    def __iter__(cls) -> Iterator[str]:
        return iter([v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str)])

    def __call__(cls, value: str) -> str:  # IO("IMAGE") -> IO.IMAGE, like an enum lookup
        for member in cls:
            if str.__eq__(member, value):
                return member
        raise ValueError(f"`{value}` is not a known IO type")


class IO(metaclass=_IOMeta):
    """Node input/output type names (ComfyUI's ``IO`` enum)."""

    STRING = _IOType("STRING")
    IMAGE = _IOType("IMAGE")
    MASK = _IOType("MASK")
    LATENT = _IOType("LATENT")
    BOOLEAN = _IOType("BOOLEAN")
    INT = _IOType("INT")
    FLOAT = _IOType("FLOAT")
    COMBO = _IOType("COMBO")
    CONDITIONING = _IOType("CONDITIONING")
    SAMPLER = _IOType("SAMPLER")
    SIGMAS = _IOType("SIGMAS")
    GUIDER = _IOType("GUIDER")
    NOISE = _IOType("NOISE")
    CLIP = _IOType("CLIP")
    CONTROL_NET = _IOType("CONTROL_NET")
    VAE = _IOType("VAE")
    MODEL = _IOType("MODEL")
    LORA_MODEL = _IOType("LORA_MODEL")
    LOSS_MAP = _IOType("LOSS_MAP")
    CLIP_VISION = _IOType("CLIP_VISION")
    CLIP_VISION_OUTPUT = _IOType("CLIP_VISION_OUTPUT")
    STYLE_MODEL = _IOType("STYLE_MODEL")
    GLIGEN = _IOType("GLIGEN")
    UPSCALE_MODEL = _IOType("UPSCALE_MODEL")
    AUDIO = _IOType("AUDIO")
    WEBCAM = _IOType("WEBCAM")
    POINT = _IOType("POINT")
    FACE_ANALYSIS = _IOType("FACE_ANALYSIS")
    BBOX = _IOType("BBOX")
    SEGS = _IOType("SEGS")
    VIDEO = _IOType("VIDEO")
    ANY = ANY
    NUMBER = _IOType("FLOAT,INT")
    PRIMITIVE = _IOType("STRING,FLOAT,INT,BOOLEAN")


class InputTypeOptions(TypedDict, total=False):
    """Options of one input (the second item of an ``INPUT_TYPES`` tuple)."""

    default: Any
    defaultInput: bool
    forceInput: bool
    lazy: bool
    rawLink: bool
    tooltip: str
    hidden: bool
    advanced: bool
    min: float
    max: float
    step: float
    round: float
    label_on: str
    label_off: str
    multiline: bool
    placeholder: str
    dynamicPrompts: bool
    image_upload: bool
    image_folder: Literal["input", "output", "temp"]
    control_after_generate: bool
    display: Literal["number", "slider", "color"]


class HiddenInputTypeDict(TypedDict, total=False):
    """The ``hidden`` section: values the engine injects."""

    unique_id: Literal["UNIQUE_ID"]
    prompt: Literal["PROMPT"]
    extra_pnginfo: Literal["EXTRA_PNGINFO"]
    dynprompt: Literal["DYNPROMPT"]


class InputTypeDict(TypedDict, total=False):
    """What ``INPUT_TYPES()`` returns."""

    required: dict[str, tuple[Any, InputTypeOptions] | tuple[Any]]
    optional: dict[str, tuple[Any, InputTypeOptions] | tuple[Any]]
    hidden: HiddenInputTypeDict


class ComfyNodeABC(ABC):
    """Optional base of V1 node classes; documents the attributes the engine reads."""

    DESCRIPTION: str
    CATEGORY: str
    EXPERIMENTAL: bool
    DEPRECATED: bool
    API_NODE: bool | None
    OUTPUT_NODE: bool
    INPUT_IS_LIST: bool
    OUTPUT_IS_LIST: tuple[bool, ...]
    RETURN_TYPES: tuple[Any, ...]
    RETURN_NAMES: tuple[str, ...]
    OUTPUT_TOOLTIPS: tuple[str, ...]
    FUNCTION: str

    @classmethod
    @abstractmethod
    def INPUT_TYPES(cls) -> InputTypeDict:  # noqa: N802 - ComfyUI's name
        """The node's inputs: ``required``, ``optional`` and ``hidden`` sections."""
        return {"required": {}}


class CheckLazyMixin:
    """A ``check_lazy_status`` that asks for every input not evaluated yet."""

    def check_lazy_status(self, **kwargs: Any) -> list[str]:
        return [name for name, value in kwargs.items() if value is None]


class FileLocator(TypedDict):
    """Where a file lives: ``{filename, subfolder, type}``."""

    filename: str
    subfolder: str
    type: Literal["input", "output", "temp"]
