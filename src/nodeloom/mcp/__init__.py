"""nodeloom's MCP adapter: a server for agents (tools, resources, prompts), its audit log and
job store. Jobs run on a worker of their own (``nodeloom mcp``) or through a nodeloom server's
durable queue (``nodeloom serve --mcp``: :mod:`nodeloom.mcp.queue_runner`, wired to the server
by the CLI in :mod:`nodeloom.cli.serve`). The policy sandbox lives in :mod:`nodeloom.mcp_client`
(the MCPToolCall node reads it too) and is re-exported here. Imports no other adapter.

The audit and job modules import no MCP SDK at import time, so the sandbox checks work
without the ``mcp`` extra; :func:`build_server` needs it (``pip install 'nodeloom[mcp]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodeloom.mcp.audit import AuditLog
from nodeloom.mcp.jobs import Job, JobRunner, JobStore
from nodeloom.mcp_client.policy import Policy, ServerSpec, load_policy

if TYPE_CHECKING:
    from nodeloom.engine import Engine

__all__ = ["AuditLog", "Job", "JobRunner", "JobStore", "Policy", "ServerSpec", "build_server", "load_policy"]


def build_server(engine: Engine, policy: Policy | None = None, **kw: Any) -> Any:
    """A :class:`nodeloom.mcp.server.NodeloomMCP` over ``engine``.

    Raises:
        MissingDependencyError: the ``mcp`` SDK is not installed.
    """
    from nodeloom.errors import require

    require("mcp.server.mcpserver", "mcp")
    from nodeloom.mcp.server import NodeloomMCP

    return NodeloomMCP(engine, policy, **kw)
