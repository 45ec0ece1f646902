"""``comfy_execution.graph_utils``: GraphBuilder and is_link, nodeloom's own implementations."""

from nodeloom.core.graph_builder import GraphBuilder, GraphNode, is_link

__all__ = ["GraphBuilder", "GraphNode", "is_link"]
