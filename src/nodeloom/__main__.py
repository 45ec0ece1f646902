"""``python -m nodeloom``: the same command line as the ``nodeloom`` script."""

from __future__ import annotations

import sys

from nodeloom.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
