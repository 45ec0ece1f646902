"""Start ``nodeloom mcp`` over an engine that also has the tiny test pack (for subprocess tests)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nodeloom import Engine  # noqa: E402
from nodeloom.mcp.cli import add_mcp_arguments, mcp_main  # noqa: E402
from tests.mcp import pack  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    add_mcp_arguments(parser)
    args = parser.parse_args()
    engine = Engine(base_dir=args.base_dir)
    pack.register(engine)
    sys.exit(mcp_main(args, engine=engine))
