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
