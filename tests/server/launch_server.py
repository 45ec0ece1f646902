"""Start a server process with the test node pack registered (used by the crash test)."""

from __future__ import annotations

import argparse
import sys

from nodeloom.server.cli import add_serve_arguments, build_engine, serve_main
from tests.server import server_pack

if __name__ == "__main__":
    args = add_serve_arguments(argparse.ArgumentParser()).parse_args()
    engine = build_engine(args)
    server_pack.add_to(engine)
    sys.exit(serve_main(args, engine=engine))
