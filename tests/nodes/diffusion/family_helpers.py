"""What the family test modules share: running a prompt through an Engine and through a live server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodeloom import Engine


def engine_for(base: Path, models: Path) -> Engine:
    return Engine(base_dir=base, models_dir=models, load_custom_nodes=False)


def run_ok(engine: Engine, prompt: dict) -> Any:
    """Run ``prompt``; fail the test with the nodes' error messages unless it succeeds."""
    result = engine.run(prompt)
    assert result.status == "success", [e.get("exception_message", e) for e in result.errors]
    return result


def run_served(base: Path, models: Path, prompt: dict) -> dict:
    """Submit ``prompt`` to a real server on loopback over ``models``; returns its history entry."""
    from nodeloom.server.app import create_app
    from nodeloom.server.config import ServerConfig
    from tests.server.conftest import LiveServer, submit, wait_history

    with engine_for(base, models) as engine:
        srv = LiveServer(create_app(engine, ServerConfig(db_path=base / "queue.sqlite3")))
        try:
            reply = submit(srv.url, prompt)
            assert reply.status == 200, reply.json()
            entry = wait_history(srv.url, reply.json()["prompt_id"], timeout=120)
        finally:
            srv.close()
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry


def lora_pair(base: dict, target: str, rank: int = 4, seed: int = 0) -> tuple[Any, Any]:
    """Random LoRA factors ``(down [rank, in], up [out, rank])`` for the 2-D weight ``target`` of ``base``."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    out_dim, in_dim = base[target].shape
    return torch.randn(rank, in_dim, generator=gen) * 0.3, torch.randn(out_dim, rank, generator=gen) * 0.3


def write_merged(base: dict, merges: dict[str, Any], path: Path) -> None:
    """Save ``base`` with ``merges`` (key → delta) added: what a LoRA should equal once applied."""
    from safetensors.torch import save_file

    merged = {k: (v + merges[k] if k in merges else v).contiguous() for k, v in base.items()}
    save_file(merged, str(path))


def input_photo(base: Path, name: str, size: int) -> Path:
    """scikit-image's astronaut photo as a ``size``² PNG ``name`` in the engine's input folder."""
    from PIL import Image
    from skimage import data

    (base / "input").mkdir(parents=True, exist_ok=True)
    path = base / "input" / name
    Image.fromarray(data.astronaut()).resize((size, size)).save(path)
    return path


def sigmas_scheduler(sigmas: Any) -> Any:
    """A FlowMatchEuler scheduler (shift 1) that takes our sigmas whatever step count a pipeline asks for."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
    plain = sched.set_timesteps
    sched.set_timesteps = lambda *args, device=None, **kw: plain(sigmas=sigmas[:-1].tolist(), device=device)
    return sched


def official_template(name: str) -> dict:
    """The official UI-format template ``<name>.json`` (skips the test when the templates are not installed)."""
    import importlib.util
    import json

    import pytest

    spec = importlib.util.find_spec("comfyui_workflow_templates_json")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the official templates are not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "templates" / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))
