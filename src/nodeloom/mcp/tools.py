"""The tools of the nodeloom MCP server: discovery, authoring, running and jobs.

Thin async wrappers over :mod:`~nodeloom.mcp.discovery`, :mod:`~nodeloom.mcp.workflows` and
the job runner; registered through :meth:`NodeloomMCP.tool` so each carries annotations,
an output schema, read-only enforcement and an audit record. ``run_workflow`` and
``get_job`` stream progress notifications while they wait and return images as
size-budgeted thumbnails plus ``nodeloom://`` resource links. Validation and thumbnail
encoding run on worker threads so one large workflow does not stall other sessions.
"""

from __future__ import annotations

import base64
import functools
import time
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, ImageContent, ResourceLink, TextContent

from nodeloom.errors import PolicyDeniedError, ValidationError
from nodeloom.mcp import discovery, workflows
from nodeloom.mcp.jobs import Job
from nodeloom.mcp.models import (
    ConvertResult,
    ExampleInfo,
    ExampleList,
    ImageRef,
    JobList,
    JobResult,
    ModelList,
    NodeDescription,
    NodeErrors,
    NodeSearchResult,
    ProgressInfo,
    ValidationReport,
)
from nodeloom.mcp.outputs import image_size, make_thumbnail, mime_type, output_file, output_uri

if TYPE_CHECKING:
    from nodeloom.mcp.server import NodeloomMCP

__all__ = ["register_tools"]

JobCallResult = Annotated[CallToolResult, JobResult]


def register_tools(app: NodeloomMCP) -> None:
    """Register every tool on ``app.server``."""
    _register_discovery(app)
    _register_authoring(app)
    _register_running(app)


def _register_discovery(app: NodeloomMCP) -> None:
    @app.tool(title="Search nodes", read_only=True, idempotent=True)
    async def search_nodes(
        query: str = "", category: str | None = None, offset: int = 0, limit: int = 20, include_denied: bool = False
    ) -> NodeSearchResult:
        """Find node types by words in their name, category or description (all words must match), one page at a time."""
        return discovery.search_nodes(app.engine.object_info(), app.policy, query, category, offset, limit, include_denied)

    @app.tool(title="Describe a node", read_only=True, idempotent=True)
    async def describe_node(class_type: str) -> NodeDescription:
        """Inputs (types, defaults, ranges, choices), outputs and description of one node type."""
        return discovery.describe_node(app.engine.object_info(), app.policy, class_type)

    @app.tool(title="List models", read_only=True, idempotent=True)
    async def list_models(folder: str | None = None) -> ModelList:
        """Model files available per model folder (checkpoints, loras, vae, ...), or in one folder."""
        return discovery.list_models(app.engine.paths, folder)

    @app.tool(title="List example workflows", read_only=True, idempotent=True)
    async def list_example_workflows() -> ExampleList:
        """Example workflows that ship with nodeloom (and the policy's example folders); run one by name."""
        return ExampleList(examples=[ExampleInfo(**e) for e in workflows.list_examples(_example_dirs(app))])


def _register_authoring(app: NodeloomMCP) -> None:
    @app.tool(title="Validate a workflow", read_only=True, idempotent=True)
    async def validate_workflow(
        workflow: dict[str, Any] | None = None, example: str | None = None, overrides: dict[str, Any] | list[str] | None = None
    ) -> ValidationReport:
        """Check a workflow (API or UI format, or an example by name) without running it.

        Returns per-node errors with closest-match suggestions for unknown node types and
        input names, and the policy rule the workflow would break, if any.
        """
        _, report = await anyio.to_thread.run_sync(_prepare, app, workflow, example, overrides)
        return report

    @app.tool(title="Convert a workflow to API format", read_only=True, idempotent=True)
    async def convert_workflow(workflow: dict[str, Any]) -> ConvertResult:
        """Convert a UI-format workflow (as saved by the editor) to API format (an API-format one is returned as is)."""
        prompt, fmt = workflows.to_api(workflow, app.engine.input_types, app.engine.registry.display_name)
        return ConvertResult(format=fmt, prompt=prompt)


def _register_running(app: NodeloomMCP) -> None:
    @app.tool(title="Run a workflow", read_only=False, destructive=False)
    async def run_workflow(
        ctx: Context,
        workflow: dict[str, Any] | None = None,
        example: str | None = None,
        overrides: dict[str, Any] | list[str] | None = None,
        idempotency_key: str | None = None,
        wait_seconds: float = 30.0,
        include_images: bool = True,
    ) -> JobCallResult:
        """Run a workflow (API/UI format, or an example by name) and wait up to `wait_seconds` for it.

        `overrides` maps `node.input` (node id or title) to a new value, or lists
        `node.input=value` strings (value as JSON, else text). While waiting the
        server sends progress notifications; if the run is not done by then, the result has
        status `queued`/`running` and a `job_id` to poll with get_job. Give an
        `idempotency_key` so a retried call returns the first job instead of running again.
        """
        prompt, report = await anyio.to_thread.run_sync(_prepare, app, workflow, example, overrides)
        if report.policy_error is not None:
            raise PolicyDeniedError(report.policy_error["message"], extra_info=report.policy_error.get("extra_info"))
        if not report.ok:
            raise ValidationError((report.error or {}).get("message", "the workflow is invalid"), type="invalid_prompt",
                                  node_errors={k: v.model_dump() for k, v in report.node_errors.items()})
        job, created = app.runner.submit(prompt, key=idempotency_key, who=app.who(ctx))
        await _wait(app, job, ctx, wait_seconds)
        return await anyio.to_thread.run_sync(functools.partial(_job_result, app, job, include_images, deduplicated=not created))

    @app.tool(title="Get a job", read_only=True)
    async def get_job(ctx: Context, job_id: str, wait_seconds: float = 0.0, include_images: bool = True) -> JobCallResult:
        """Status, progress, errors and output images of a job; waits up to `wait_seconds` for it to finish."""
        job = app.store.get(job_id)
        await _wait(app, job, ctx, wait_seconds)
        return await anyio.to_thread.run_sync(_job_result, app, job, include_images)

    @app.tool(title="Cancel a job", read_only=False, destructive=True, idempotent=True)
    async def cancel_job(job_id: str) -> JobResult:
        """Cancel a queued job, or interrupt it if it is running (finished jobs are left as they are)."""
        job = app.runner.cancel(job_id)
        return _job_model(app, job)

    @app.tool(title="List jobs", read_only=True)
    async def list_jobs(status: str | None = None, limit: int = 20) -> JobList:
        """The newest jobs first, optionally only those with `status` (queued, running, success, error, ...)."""
        if not 1 <= limit <= 500:
            raise ValidationError(f"`limit` must be between 1 and 500, got {limit}")
        return JobList(jobs=[_job_model(app, j) for j in app.store.list(status, limit)])


# ---------------------------------------------------------------------- helpers


def _example_dirs(app: NodeloomMCP) -> list[Any]:
    return workflows.example_dirs(app.policy.example_dirs, base=app.engine.paths.base_dir)


def _prepare(app: NodeloomMCP, workflow: Any, example: str | None, overrides: dict[str, Any] | list[str] | None) -> tuple[dict[str, Any], ValidationReport]:
    """Load, convert, override, lint, validate and policy-check a workflow."""
    if (workflow is None) == (example is None):
        raise ValidationError("give exactly one of `workflow` (a JSON object) or `example` (a name from list_example_workflows)")
    obj = workflow if workflow is not None else workflows.load_example(example or "", _example_dirs(app))
    info = app.engine.object_info()
    prompt, fmt = workflows.to_api(obj, app.engine.input_types, app.engine.registry.display_name)
    if overrides:
        prompt = workflows.apply_overrides(prompt, overrides, info)
    lint = workflows.lint_prompt(prompt, info)
    result = app.engine.validate(prompt)
    node_errors = _merge_errors(result.node_errors, lint, prompt)
    policy_error = None
    checked = result.prompt or prompt  # the coerced values: "4096" given as a string is checked as 4096
    try:
        app.policy.check_prompt(checked, app.engine.paths, app.category_of)
        app.policy.check_run_limits(checked, app.engine.registry.get)
    except PolicyDeniedError as exc:
        policy_error = exc.to_dict()
    error = result.error
    if error is None and lint:
        error = {"type": "invalid_prompt", "message": "the workflow names unknown node types or inputs", "details": "", "extra_info": {}}
    ok = result.ok and not lint and policy_error is None
    report = ValidationReport(ok=ok, format=fmt, error=error, node_errors=node_errors, outputs=list(result.outputs_to_execute), policy_error=policy_error)
    return result.prompt if result.ok else prompt, report


def _merge_errors(engine_errors: dict[str, Any], lint: dict[str, list[dict[str, Any]]], prompt: dict[str, Any]) -> dict[str, NodeErrors]:
    merged = {nid: NodeErrors(**{k: v for k, v in entry.items() if k in ("class_type", "errors", "dependent_outputs")}) for nid, entry in engine_errors.items()}
    for nid, problems in lint.items():
        entry = merged.setdefault(nid, NodeErrors(class_type=(prompt.get(nid) or {}).get("class_type"), errors=[]))
        for problem in problems:
            same = [e for e in entry.errors if problem["type"] == "unknown_node_type" and "does not exist" in str(e.get("message", ""))]
            if same:
                same[0].setdefault("extra_info", {})["suggestions"] = problem["extra_info"]["suggestions"]
            else:
                entry.errors.append(problem)
    return merged


async def _wait(app: NodeloomMCP, job: Job, ctx: Context, wait_seconds: float) -> None:
    """Wait for ``job`` up to ``wait_seconds`` (capped by policy), reporting increasing progress."""
    if wait_seconds < 0:
        raise ValidationError(f"`wait_seconds` must be ≥ 0, got {wait_seconds}")
    cap = app.policy.limits.max_wait_seconds
    deadline = time.monotonic() + (min(wait_seconds, cap) if cap else wait_seconds)
    sent, seen = -1.0, -1
    while True:
        job.changed.clear()
        # read `done` before the steps: the runner records the last step before it sets `done`,
        # so a job seen finished here has its final step in the history read below
        finished = job.done.is_set()
        # every step since the last pass, not only the latest: a fast job still reports each node
        for p in job.progress_since(seen) or [job.progress]:
            seen = max(seen, p.seq)
            if p.value > sent:
                await ctx.report_progress(p.value, p.total, p.message)
                sent = p.value
        left = deadline - time.monotonic()
        if finished or left <= 0:
            return
        if job.progress.seq == seen:
            # the worker thread sets `changed`; short slices keep cancellation responsive
            await anyio.to_thread.run_sync(job.changed.wait, min(left, 0.5), abandon_on_cancel=True)


#: ui keys whose entries are files ({filename, subfolder, type}); ComfyUI video nodes use several
_FILE_KEYS = ("images", "gifs", "videos", "audio", "files")


def _files(app: NodeloomMCP, job: Job) -> list[ImageRef]:
    """Every distinct output file of a finished job, images with their pixel size."""
    refs: list[ImageRef] = []
    seen: set[tuple[str, str, str]] = set()
    for node_id, ui in ((job.result or {}).get("outputs") or {}).items():
        for key in _FILE_KEYS:
            for ref in (ui or {}).get(key, []) or []:
                if not isinstance(ref, dict) or "filename" not in ref:
                    continue
                ident = (str(ref.get("type") or "output"), str(ref.get("subfolder") or ""), str(ref["filename"]))
                if ident in seen:
                    continue
                seen.add(ident)
                size = image_size(app.engine.paths, ref)
                refs.append(ImageRef(
                    uri=output_uri(ref), filename=ident[2], subfolder=ident[1], type=ident[0], node_id=str(node_id),
                    mime_type=mime_type(ident[2]), width=size[0] if size else None, height=size[1] if size else None,
                ))
    return refs


def _job_model(app: NodeloomMCP, job: Job) -> JobResult:
    result = job.result or {}
    p = job.progress
    files = _files(app, job)
    images = [f for f in files if f.width is not None]
    return JobResult(
        job_id=job.id, status=job.status, progress=ProgressInfo(value=p.value, total=p.total, message=p.message),
        error=job.error, node_errors=result.get("node_errors") or {}, images=images,
        files=[f for f in files if f.width is None], outputs=result.get("outputs") or {}, wall_s=result.get("wall_s"),
    )


def _job_result(app: NodeloomMCP, job: Job, include_images: bool, *, deduplicated: bool = False) -> CallToolResult:
    model = _job_model(app, job)
    model.deduplicated = deduplicated
    lines = [f"job {job.id}: {job.status}" + (" (an earlier submission with this idempotency key)" if deduplicated else "")]
    if not job.terminal:
        lines.append("not finished yet: call get_job with this job_id (wait_seconds lets it wait)")
    if job.error:
        lines.append(f"error: {job.error.get('message')}")
    content: list[Any] = [TextContent(type="text", text="\n".join(lines))]
    for i, ref in enumerate(model.images):
        if include_images and i < app.policy.max_images:
            content.extend(_thumbnail(app, ref))
        content.append(_link(ref, "full-size output"))
    content.extend(_link(ref, "output") for ref in model.files)
    return CallToolResult(content=content, structured_content=model.model_dump(mode="json"), is_error=job.status in ("error",))


def _thumbnail(app: NodeloomMCP, ref: ImageRef) -> list[ImageContent]:
    """A size-budgeted preview of ``ref``, or nothing when the file cannot be previewed."""
    try:
        path = output_file(app.engine.paths, ref.model_dump())
        thumb = make_thumbnail(path, max_side=app.policy.thumbnail_max_side, budget_kb=app.policy.thumbnail_kb)
    except ValidationError:
        return []
    return [ImageContent(type="image", data=base64.b64encode(thumb.data).decode(), mime_type=thumb.mime_type)]


def _link(ref: ImageRef, what: str) -> ResourceLink:
    return ResourceLink(type="resource_link", uri=ref.uri, name=ref.filename, mime_type=ref.mime_type, description=f"{what} of node {ref.node_id}")
