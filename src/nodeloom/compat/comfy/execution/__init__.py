"""``comfy_execution``: the graph helpers custom nodes import (see ``graph`` and ``graph_utils``)."""
