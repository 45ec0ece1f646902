"""Data pack: ``BatchInput`` and ``BatchScore``, the nodes through which ``nodeloom batch`` feeds
items into a workflow and reads scores back (see :mod:`nodeloom.batch_items`)."""

from nodeloom.node_api import mappings
from nodeloom.nodes.data.batch_nodes import BatchInput, BatchScore

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(BatchInput, BatchScore)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
