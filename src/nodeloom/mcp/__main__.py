"""``python -m nodeloom.mcp``: the MCP server (stdio by default; ``--http`` for streamable HTTP)."""

import sys

from nodeloom.mcp.cli import main

sys.exit(main())
