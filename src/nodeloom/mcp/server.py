"""The nodeloom MCP server: an :class:`~mcp.server.mcpserver.MCPServer` over one Engine.

:class:`NodeloomMCP` owns the policy, the audit log and the job store/runner, and registers
the tools (:mod:`nodeloom.mcp.tools`), resources and prompts (:mod:`nodeloom.mcp.resources`).
Every tool goes through :meth:`NodeloomMCP.tool`, which enforces read-only mode, turns
nodeloom errors into MCP error results carrying the shared ``{type, message, details,
extra_info}`` payload, and writes one audit record per call. Transports live in
:mod:`nodeloom.mcp.cli`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations

import nodeloom
from nodeloom.errors import NodeloomError, PolicyDeniedError
from nodeloom.mcp.audit import AuditLog
from nodeloom.mcp.jobs import JobRunner, JobStore, RunnerBase
from nodeloom.mcp_client.policy import POLICY_SETTING, Policy

if TYPE_CHECKING:
    from nodeloom.engine import Engine

__all__ = ["NodeloomMCP", "build_server", "error_result"]

_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])

INSTRUCTIONS = """nodeloom runs node-graph workflows for image and video pipelines (ComfyUI's dialect).
Find nodes with search_nodes and describe_node, start from list_example_workflows, check a
graph with validate_workflow (errors carry suggestions), then run_workflow. Long runs return
a job id: poll get_job. Images come back as small thumbnails plus nodeloom:// links to the files."""


def error_result(exc: NodeloomError) -> CallToolResult:
    """An MCP error result carrying ``exc.to_dict()`` (with a ValidationError's ``node_errors``) as JSON text."""
    payload = exc.to_dict()
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(payload, default=str))], is_error=True)


class NodeloomMCP:
    """The MCP face of one engine.

    Args:
        engine: the :class:`~nodeloom.engine.Engine` whose nodes and folders are served.
        policy: the sandbox (defaults: :class:`Policy` ()).
        audit: the audit log (default: ``policy.audit_log`` under the engine's user folder).
        jobs: the job store (default: ``user/mcp/jobs.sqlite3``, so idempotency keys survive restarts).
        runner: builds the job runner from ``(engine, store, policy)`` (default: :class:`JobRunner`,
            a worker thread of its own; ``nodeloom serve --mcp`` passes the server's queue runner).
        transport: ``"stdio"``, ``"http"`` or ``"memory"``, recorded as the caller's channel.
    """

    def __init__(
        self,
        engine: Engine,
        policy: Policy | None = None,
        *,
        audit: AuditLog | None = None,
        jobs: JobStore | None = None,
        runner: Callable[[Any, JobStore, Policy], RunnerBase] | None = None,
        transport: str = "memory",
    ) -> None:
        from nodeloom.mcp.resources import register_prompts, register_resources
        from nodeloom.mcp.tools import register_tools

        self.engine = engine
        self.policy = policy or Policy()
        engine.services.settings[POLICY_SETTING] = self.policy
        self.audit = audit if audit is not None else AuditLog(_under(engine.paths.user_dir, self.policy.audit_log))
        self.store = jobs if jobs is not None else JobStore(engine.paths.user_dir / "mcp" / "jobs.sqlite3")
        self.runner = (runner or JobRunner)(engine, self.store, self.policy)
        self.transport = transport
        self.server: MCPServer = MCPServer("nodeloom", instructions=INSTRUCTIONS, version=nodeloom.__version__)
        register_tools(self)
        register_resources(self)
        register_prompts(self)

    # ------------------------------------------------------------------ tools
    def tool(self, *, title: str, read_only: bool, destructive: bool = False, idempotent: bool = False) -> Callable[[_F], _F]:
        """Register an async tool with annotations, read-only enforcement, error mapping and audit."""

        def decorator(fn: _F) -> _F:
            name = fn.__name__

            @functools.wraps(fn)
            async def wrapper(**kwargs: Any) -> Any:
                ctx = next((v for v in kwargs.values() if isinstance(v, Context)), None)
                args = {k: v for k, v in kwargs.items() if not isinstance(v, Context)}
                who, t0 = self.who(ctx), time.perf_counter()
                try:
                    if not read_only:
                        self.policy.check_writable(name)
                    result = await fn(**kwargs)
                except PolicyDeniedError as exc:
                    self.audit.record(who, name, args, "denied", time.perf_counter() - t0, error_type=exc.type, detail=exc.message)
                    return error_result(exc)
                except NodeloomError as exc:
                    self.audit.record(who, name, args, "error", time.perf_counter() - t0, error_type=exc.type, detail=exc.message)
                    return error_result(exc)
                except Exception as exc:
                    self.audit.record(who, name, args, "error", time.perf_counter() - t0, error_type=type(exc).__name__, detail=str(exc))
                    raise
                failed = isinstance(result, CallToolResult) and result.is_error
                self.audit.record(who, name, args, "error" if failed else "ok", time.perf_counter() - t0)
                return result

            annotations = ToolAnnotations(
                title=title, read_only_hint=read_only, destructive_hint=destructive if not read_only else None,
                idempotent_hint=idempotent, open_world_hint=False,
            )
            self.server.add_tool(wrapper, name=name, title=title, description=fn.__doc__, annotations=annotations)
            return fn

        return decorator

    def who(self, ctx: Context | None) -> str:
        """``<transport>[:<client name>][@<peer>][#<token fingerprint>]`` for the audit log."""
        who = self.transport
        if ctx is None or ctx._request_context is None:
            return who
        params = ctx.session.client_params
        if params is not None and params.client_info is not None:
            who += f":{params.client_info.name}"
        request = ctx.request_context.request
        client = getattr(request, "client", None)
        if client is not None and getattr(client, "host", None):
            who += f"@{client.host}"
        headers = getattr(request, "headers", None)
        auth = headers.get("authorization") if headers is not None else None
        if auth:
            who += "#" + hashlib.sha256(auth.encode()).hexdigest()[:12]
        return who

    def category_of(self, class_type: str) -> str | None:
        """The menu category of a node class (None when unknown)."""
        cls = self.engine.registry.get(class_type)
        return getattr(cls, "CATEGORY", None) if cls is not None else None

    def close(self) -> None:
        """Stop the job worker and close the stores."""
        self.runner.close()
        self.audit.close()
        self.store.close()


def _under(base: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else base / p


def build_server(engine: Engine, policy: Policy | None = None, **kw: Any) -> NodeloomMCP:
    """A :class:`NodeloomMCP` for ``engine`` (see its arguments)."""
    return NodeloomMCP(engine, policy, **kw)
