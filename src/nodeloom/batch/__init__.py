"""Batch runs of one workflow over a dataset: sources, sampling, collation, resume journal,
reports, Ray backend and bandwidth benchmarks (``nodeloom batch`` / ``nodeloom bench bandwidth``).

Submodules import torch; this package itself imports nothing so that the CLI parser stays light.
Entry point for library use: :func:`nodeloom.batch.runner.run_batch`.
"""

__all__: list[str] = []
