"""nodeloom's ComfyUI-compatible HTTP/WebSocket server with a durable queue.

Modules: ``app`` (assembly), ``routes/*`` (one group each), ``ws`` (WebSocket + event hub),
``queue``/``store`` (durable SQLite queue and history), ``worker`` (runs prompts on the
engine), ``security`` (tokens, Host/Origin checks), ``static`` (frontend, extensions),
``users`` (settings and user files), ``cli`` (``serve`` flags). Imports aiohttp; the engine
and everything below it never import this package.
"""

from __future__ import annotations

from nodeloom.server.app import create_app
from nodeloom.server.cli import add_serve_arguments, serve_main
from nodeloom.server.config import ServerConfig

__all__ = ["ServerConfig", "add_serve_arguments", "create_app", "serve_main"]
