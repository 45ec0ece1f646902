"""Pytest fixtures for tests that run Stable Diffusion nodes on tiny random models.

Import them into a ``conftest.py`` (``from nodeloom.testing.diffusion_fixtures import *``):

* ``no_network`` (autouse there): sockets may only reach loopback; Hugging Face hubs are offline.
* ``single_thread``: one torch thread (tiny models on a shared 2-core machine run faster so).
* ``tiny_models_dir``: a session models folder holding ``tiny_sd1.safetensors``,
  ``tiny_sdxl.safetensors``, ``tiny_sd1_inpaint.safetensors``, ``tiny_sd2.safetensors``, the
  ``tiny_sd1`` diffusers folder,
  the ``tiny_controlnet`` ControlNet (diffusers folder, and the same weights as the original-layout
  ``tiny_controlnet.safetensors``) and the ``tiny_lora.safetensors`` LoRA.
* ``diffusion_services``: session :class:`~nodeloom.services.Services` over that folder (CPU),
  already active for the test, so node classes can be called directly.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["diffusion_services", "diffusion_session_services", "no_network", "single_thread", "tiny_models_dir"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _is_loopback(address: Any) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
        if host in ("localhost", ""):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return isinstance(address, (str, bytes))  # unix sockets


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse every socket connection that leaves the machine."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guard(sock: socket.socket, address: Any, real: Any) -> Any:
        if not _is_loopback(address):
            raise ConnectionRefusedError(f"network access to {address!r} is forbidden in tests")
        return real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", lambda s, a: guard(s, a, real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda s, a: guard(s, a, real_connect_ex))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


@pytest.fixture
def single_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from nodeloom.testing.tiny_sd import (
        build_tiny_checkpoint,
        build_tiny_controlnet,
        build_tiny_lora,
        save_diffusers_folder,
        tiny_components,
    )

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    for kind in ("sd1", "sdxl", "sd1_inpaint", "sd2"):
        build_tiny_checkpoint(root, kind)
    save_diffusers_folder(tiny_components("sd1"), root / "checkpoints" / "tiny_sd1")
    build_tiny_controlnet(root)
    build_tiny_controlnet(root, fmt="safetensors")
    build_tiny_lora(root)
    torch.set_num_threads(before)
    return root


@pytest.fixture(scope="session")
def diffusion_session_services(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from nodeloom.models.manager import ModelManager
    from nodeloom.paths import FolderPaths
    from nodeloom.services import Services

    paths = FolderPaths(tmp_path_factory.mktemp("engine"), models_dir=tiny_models_dir)
    paths.ensure()
    return Services(paths, ModelManager(device="cpu"))


@pytest.fixture
def diffusion_services(diffusion_session_services: Any) -> Iterator[Any]:
    from nodeloom.core.context import activate_services

    with activate_services(diffusion_session_services):
        yield diffusion_session_services
