"""Structured outputs of the nodeloom MCP tools (pydantic models → the tools' output schemas).

Each tool returns one of these; the SDK publishes their JSON schema as the tool's
``outputSchema`` and validates results against it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "ConvertResult",
    "ExampleInfo",
    "ExampleList",
    "ImageRef",
    "InputDoc",
    "JobList",
    "JobResult",
    "ModelList",
    "NodeDescription",
    "NodeErrors",
    "NodeSearchResult",
    "NodeSummary",
    "OutputDoc",
    "ProgressInfo",
    "ValidationReport",
]


class NodeSummary(BaseModel):
    class_type: str
    display_name: str
    category: str
    description: str = Field(description="first line of the node's description")
    output_node: bool
    allowed: bool = Field(description="whether the policy lets workflows use this node")


class NodeSearchResult(BaseModel):
    total: int = Field(description="number of matching nodes")
    offset: int
    limit: int
    next_offset: int | None = Field(description="offset of the next page, null on the last page")
    nodes: list[NodeSummary]


class InputDoc(BaseModel):
    name: str
    type: str = Field(description="socket type, or COMBO for a choice")
    required: bool
    default: Any = None
    min: float | None = None
    max: float | None = None
    options: list[Any] | None = Field(default=None, description="choices of a COMBO input")
    tooltip: str | None = None


class OutputDoc(BaseModel):
    name: str
    type: str
    is_list: bool
    tooltip: str | None = None


class NodeDescription(BaseModel):
    class_type: str
    display_name: str
    category: str
    description: str
    inputs: list[InputDoc]
    outputs: list[OutputDoc]
    output_node: bool
    allowed: bool
    denied_by: str | None = Field(default=None, description="the policy rule that refuses this node")
    doc_uri: str


class ModelList(BaseModel):
    folders: dict[str, list[str]] = Field(description="model folder name -> files found in it")


class ExampleInfo(BaseModel):
    name: str
    format: str
    node_count: int
    class_types: list[str]
    folder: str


class ExampleList(BaseModel):
    examples: list[ExampleInfo]


class NodeErrors(BaseModel):
    class_type: str | None = None
    errors: list[dict[str, Any]] = Field(description="ComfyUI-style {type, message, details, extra_info} dicts")
    dependent_outputs: list[str] = Field(default_factory=list)


class ValidationReport(BaseModel):
    ok: bool = Field(description="the workflow can run as given")
    format: str | None = Field(description="the detected input format: api or ui")
    error: dict[str, Any] | None = Field(default=None, description="the workflow-level error, if any")
    node_errors: dict[str, NodeErrors] = Field(default_factory=dict)
    outputs: list[str] = Field(default_factory=list, description="output nodes that would run")
    policy_error: dict[str, Any] | None = Field(default=None, description="the policy rule the workflow breaks, if any")


class ConvertResult(BaseModel):
    format: str = Field(description="the detected input format")
    prompt: dict[str, Any] = Field(description="the API-format workflow")


class ProgressInfo(BaseModel):
    value: float
    total: float
    message: str


class ImageRef(BaseModel):
    """An output file of a job (an image, or another medium such as a video)."""

    uri: str = Field(description="nodeloom:// resource with the full-size file")
    filename: str
    subfolder: str
    type: str
    node_id: str
    mime_type: str
    width: int | None = None
    height: int | None = None


class JobResult(BaseModel):
    job_id: str
    status: str = Field(description="queued | running | success | error | interrupted | cancelled")
    deduplicated: bool = Field(default=False, description="an earlier submission with the same idempotency key was returned")
    progress: ProgressInfo
    error: dict[str, Any] | None = None
    node_errors: dict[str, Any] = Field(default_factory=dict)
    images: list[ImageRef] = Field(default_factory=list, description="output images (thumbnails are in the content)")
    files: list[ImageRef] = Field(default_factory=list, description="other output files (videos, audio, ...)")
    outputs: dict[str, Any] = Field(default_factory=dict, description="ui outputs of output nodes")
    wall_s: float | None = None


class JobList(BaseModel):
    jobs: list[JobResult]
