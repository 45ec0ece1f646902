"""``execution``: the names of ComfyUI's executor module that packs import or patch.

Packs (rgthree-comfy, Impact Pack) ``import execution`` and read or wrap
``PromptExecutor`` methods. nodeloom runs prompts with its own executor, so these names are
a surface only: patching them changes this module, never how nodeloom runs a prompt.
Running a prompt from pack code through ``PromptExecutor.execute`` is refused with an
error that says to use the engine instead.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

__all__ = ["ExecutionResult", "PromptExecutor", "PromptQueue"]

log = logging.getLogger("nodeloom.custom_nodes")


class ExecutionResult(enum.Enum):
    """How one node step ended (ComfyUI's values)."""

    SUCCESS = 0
    FAILURE = 1
    PENDING = 2


class PromptExecutor:
    """ComfyUI's executor class as packs see it: they wrap its methods at import.

    Args:
        server: ComfyUI passes its PromptServer; kept as ``self.server``.
    """

    def __init__(self, server: Any = None, cache_type: Any = False, cache_args: Any = None) -> None:
        self.server = server
        self.history_result: dict[str, Any] = {}
        self.status_messages: list[Any] = []
        self.success = True

    def reset(self) -> None:
        self.status_messages = []
        self.success = True

    def add_message(self, event: str, data: dict[str, Any], broadcast: bool) -> None:
        self.status_messages.append((event, data))

    def handle_execution_error(self, prompt_id: str, prompt: dict[str, Any], current_outputs: Any,
                               executed: Any, error: dict[str, Any], ex: BaseException) -> None:
        """Log a node's failure (nodeloom reports errors through its own events)."""
        self.success = False
        log.error("prompt %s failed: %s", prompt_id, error.get("exception_message", ex))

    def execute(self, prompt: dict[str, Any], prompt_id: str, extra_data: Any = None, execute_outputs: Any = None) -> None:
        """Refused: pack code cannot run a whole prompt inside a running one.

        Raises:
            RuntimeError: always, naming what to use instead.
        """
        raise RuntimeError("`execution.PromptExecutor.execute` is not available in nodeloom: queue the prompt "
                           "with `PromptServer.instance.prompt_queue.put(...)` or run it with `nodeloom.Engine.run`")


# Some packs import the queue class from here (ComfyUI defines it in this module).
from nodeloom.compat.comfy.server_shim import PromptQueue  # noqa: E402
