"""``python -m nodeloom.server [flags]``: run the server (the same flags as ``nodeloom serve``)."""

from __future__ import annotations

import argparse
import sys

from nodeloom.server.cli import add_serve_arguments, serve_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodeloom.server",
                                     description="nodeloom's ComfyUI-compatible HTTP/WebSocket server")
    add_serve_arguments(parser)
    return serve_main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
