"""The one exception tree of nodeloom, and its wire payload.

Every error carries ``to_dict()`` -> ``{type, message, details, extra_info}``: the same
payload reaches the CLI, HTTP, WebSocket and MCP. Imports nothing from nodeloom.

    NodeloomError
    ├── ValidationError (ValueError)          a workflow or an input is malformed (``node_errors``)
    │   └── WorkflowFormatError               the JSON is not a workflow at all
    ├── NodeExecutionError (RuntimeError)     a node raised while it ran
    ├── InterruptedError_                     the run was interrupted (exported as ``Interrupted``)
    ├── OutOfMemoryError (MemoryError)        a node ran out of device or host memory
    ├── ModelNotFoundError (FileNotFoundError) a model file/folder is not in any search path
    ├── MissingDependencyError (ImportError)  an optional extra is not installed
    ├── PolicyDeniedError (PermissionError)   a policy rule refused an action
    ├── NodeDefinitionError (TypeError)       a node class is malformed
    └── PackImportError (ImportError)         a custom-node pack failed to import
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Interrupted",
    "MissingDependencyError",
    "ModelNotFoundError",
    "NodeDefinitionError",
    "NodeExecutionError",
    "NodeloomError",
    "OutOfMemoryError",
    "PackImportError",
    "PolicyDeniedError",
    "ValidationError",
    "WorkflowFormatError",
    "require",
]


class NodeloomError(Exception):
    """Base of every error nodeloom raises on purpose."""

    type: str = "nodeloom_error"

    def __init__(
        self,
        message: str,
        *,
        details: str = "",
        extra_info: dict[str, Any] | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.extra_info = dict(extra_info or {})
        if type is not None:
            self.type = type

    def to_dict(self) -> dict[str, Any]:
        """The wire payload shared by every adapter."""
        return {
            "type": self.type,
            "message": self.message,
            "details": self.details,
            "extra_info": self.extra_info,
        }


class ValidationError(NodeloomError, ValueError):
    """A workflow, or one of its inputs, does not satisfy the node contract.

    Attributes:
        node_errors: per-node problems in ComfyUI's shape
            ``{node_id: {errors: [...], dependent_outputs: [...], class_type}}``; empty when
            the problem is not one node's. ``to_dict()`` carries them when there are any.
    """

    type = "invalid_prompt"

    def __init__(self, message: str, *, node_errors: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.node_errors: dict[str, Any] = dict(node_errors or {})

    def to_dict(self) -> dict[str, Any]:
        """The wire payload, plus ``node_errors`` when the problems are per node."""
        payload = super().to_dict()
        if self.node_errors:
            payload["node_errors"] = self.node_errors
        return payload


class WorkflowFormatError(ValidationError):
    """The JSON given is neither an API-format nor a UI-format workflow."""

    type = "invalid_prompt"


class NodeExecutionError(NodeloomError, RuntimeError):
    """A node raised while it ran; ``extra_info`` names the node."""

    type = "execution_error"


class Interrupted(NodeloomError):
    """The run was interrupted by the user (checked at node boundaries and progress ticks)."""

    type = "interrupted"

    def __init__(self, message: str = "Processing interrupted", **kw: Any) -> None:
        super().__init__(message, **kw)


class OutOfMemoryError(NodeloomError, MemoryError):
    """A node ran out of device or host memory."""

    type = "out_of_memory"


class ModelNotFoundError(NodeloomError, FileNotFoundError):
    """A model file or folder is not in any configured search path."""

    type = "model_not_found"


class MissingDependencyError(NodeloomError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    type = "missing_dependency"


class PolicyDeniedError(NodeloomError, PermissionError):
    """A policy rule refused the action; the message names the rule."""

    type = "policy_denied"


class NodeDefinitionError(NodeloomError, TypeError):
    """A node class does not follow the node API."""

    type = "node_definition_error"


class PackImportError(NodeloomError, ImportError):
    """A custom-node pack failed to import."""

    type = "pack_import_failed"


def require(module: str, extra: str) -> Any:
    """Import an optional dependency or raise :class:`MissingDependencyError`.

    Args:
        module: dotted module name to import.
        extra: the ``pip install nodeloom[extra]`` name that brings it.

    Returns:
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"`{module}` is not installed; install it with `pip install 'nodeloom[{extra}]'`",
            details=str(exc),
            extra_info={"module": module, "extra": extra},
        ) from exc
