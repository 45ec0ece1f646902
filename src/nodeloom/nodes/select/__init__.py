"""Select pack: the ImageExpression node, image scores and Top-K selection with diversity."""

from nodeloom.node_api import mappings
from nodeloom.nodes.select.expression import ImageExpression
from nodeloom.nodes.select.ranking import ImageScore, TopKSelect

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(ImageExpression, ImageScore, TopKSelect)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
