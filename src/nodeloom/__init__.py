"""nodeloom: a node-graph workflow engine for AI image and video pipelines."""

__version__ = "0.1.0"
