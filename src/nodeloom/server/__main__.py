"""``python -m nodeloom.server [flags]``: run the server (the same flags as ``nodeloom serve``).

An entry point, like ``nodeloom`` itself: it goes through the CLI's composition of ``serve``
(:mod:`nodeloom.cli.serve`), so ``--mcp`` works here too.
"""

from __future__ import annotations

import sys

from nodeloom.cli.serve import main as _serve


def main(argv: list[str] | None = None) -> int:
    return _serve(argv, prog="python -m nodeloom.server")


if __name__ == "__main__":
    sys.exit(main())
