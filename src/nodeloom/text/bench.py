"""The text pack's ``nodeloom bench`` provider: the CLI imports :func:`register_cli` from here.

``nodeloom bench kv`` is implemented in :mod:`nodeloom.text.kv_bench`.
"""

from nodeloom.text.kv_bench import register_cli, run_kv_benchmark

__all__ = ["register_cli", "run_kv_benchmark"]
