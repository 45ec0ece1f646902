"""``comfy_api.latest._resources``: keys for files a V3 node asks its class's ``resources`` for.

``cls.resources.get(TorchDictFolderFilename("loras", "x.safetensors"))`` loads that file of a
model folder as a state dict (``default`` instead when the file is missing, if one is given)
and keeps it for the rest of the call. ComfyUI declares ``ComfyNode.resources`` but leaves it
``None`` while nodes run; nodeloom fills it on every call, so a node that reads it works here.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

import torch

from nodeloom.compat.comfy import folder_paths
from nodeloom.compat.comfy import utils as comfy_utils

__all__ = ["Resources", "ResourceKey", "ResourcesLocal", "TorchDictFolderFilename", "_RESOURCES"]

log = logging.getLogger(__name__)


class ResourceKey(ABC):
    """What a node asks ``resources`` for; ``Type`` is what ``get`` returns."""

    Type: Any = Any


class TorchDictFolderFilename(ResourceKey):
    """A state dict: ``file_name`` in the model folder ``folder_name``."""

    Type = dict[str, torch.Tensor]

    def __init__(self, folder_name: str, file_name: str) -> None:
        self.folder_name, self.file_name = folder_name, file_name

    def __hash__(self) -> int:
        return hash((self.folder_name, self.file_name))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TorchDictFolderFilename)
                and (self.folder_name, self.file_name) == (other.folder_name, other.file_name))

    def __str__(self) -> str:
        return f"{self.folder_name} -> {self.file_name}"


class Resources(ABC):
    """Loads what a :class:`ResourceKey` names."""

    @abstractmethod
    def get(self, key: ResourceKey, default: Any = ...) -> Any:
        """The resource ``key`` names (or ``default`` when it cannot be found, if given)."""


class ResourcesLocal(Resources):
    """Resources from this machine's model folders, each loaded once per instance."""

    def __init__(self) -> None:
        self.local_resources: dict[ResourceKey, Any] = {}

    def get(self, key: ResourceKey, default: Any = ...) -> Any:
        """Load ``key`` (cached).

        Raises:
            FileNotFoundError: a missing file and no ``default`` (the message names the folder).
            TypeError: a key type nodeloom does not know.
        """
        cached = self.local_resources.get(key)
        if cached is not None:
            return cached
        if not isinstance(key, TorchDictFolderFilename):
            if default is not ...:
                return default
            raise TypeError(f"`resources.get`: unsupported resource key {type(key).__name__} "
                            "(nodeloom knows TorchDictFolderFilename)")
        path = folder_paths.get_full_path(key.folder_name, key.file_name)
        if path is None:
            if default is not ...:
                return default
            path = folder_paths.get_full_path_or_raise(key.folder_name, key.file_name)
        log.info("loading resource %s", key)
        self.local_resources[key] = comfy_utils.load_torch_file(path, safe_load=True)
        return self.local_resources[key]


class _RESOURCES:  # noqa: N801 - ComfyUI's name
    ResourceKey = ResourceKey
    TorchDictFolderFilename = TorchDictFolderFilename
    Resources = Resources
    ResourcesLocal = ResourcesLocal
