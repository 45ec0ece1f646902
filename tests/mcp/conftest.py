"""Fixtures of the MCP tests: an engine with the tiny image pack, and a server over it."""

from __future__ import annotations

import pytest

from nodeloom import Engine
from nodeloom.mcp_client.policy import Policy
from nodeloom.mcp.server import NodeloomMCP
from tests.mcp import pack


@pytest.fixture
def engine(tmp_path):
    eng = Engine(base_dir=tmp_path)
    pack.register(eng)
    yield eng
    eng.close()


@pytest.fixture
def make_app(engine):
    apps = []

    def make(policy: Policy | None = None, **kw) -> NodeloomMCP:
        app = NodeloomMCP(engine, policy or Policy(), **kw)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()
