"""nodeloom: a node-graph workflow engine for AI image and video pipelines.

Public surface: :class:`Engine` (run, validate, interrupt), :class:`EngineConfig`,
:class:`RunResult`, :class:`GraphBuilder` for building API-format graphs in Python, and the
error tree in :mod:`nodeloom.errors`. Node packs import :mod:`nodeloom.node_api`.
"""

from nodeloom.core.graph_builder import GraphBuilder
from nodeloom.engine import Engine, EngineConfig, RunResult
from nodeloom.errors import NodeloomError, ValidationError

__all__ = ["Engine", "EngineConfig", "GraphBuilder", "NodeloomError", "RunResult", "ValidationError", "__version__"]

__version__ = "0.1.0"
