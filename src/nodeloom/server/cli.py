"""The ``serve`` command: ComfyUI ``main.py``-compatible flags, then run the server.

``add_serve_arguments(parser)`` adds the flags to any argparse parser (the ``nodeloom``
CLI's ``serve`` sub-command and ``python -m nodeloom.server`` share them);
``serve_main(args)`` builds the engine and the application and serves until interrupted.
Parts that start with the server but belong to another adapter (the MCP endpoint of
``serve --mcp``) are handed in as ``extensions`` by the CLI, which composes them
(:mod:`nodeloom.cli.serve`); this module imports no other adapter.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nodeloom.errors import NodeloomError, PolicyDeniedError

if TYPE_CHECKING:
    from aiohttp.web import Application

    from nodeloom.engine import Engine
    from nodeloom.limits import RunLimits
    from nodeloom.server.config import ServerConfig

__all__ = ["ServerExtension", "add_serve_arguments", "base_url", "build_engine", "serve_main", "server_config"]

log = logging.getLogger(__name__)


class ServerExtension(Protocol):
    """A part that starts and stops with the server (e.g. the MCP endpoint of ``serve --mcp``)."""

    def __call__(self, app: Application, config: ServerConfig, token: str | None) -> str | None:
        """Add the part to ``app`` before it starts (its start/stop hooks); return a line to
        print once the server listens, or None."""


def add_serve_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the server's flags (ComfyUI's names where they exist) to ``parser``."""
    net = parser.add_argument_group("network and security")
    net.add_argument("--listen", nargs="?", const="0.0.0.0,::", default="127.0.0.1", metavar="IP[,IP...]",
                     help="addresses to listen on (default 127.0.0.1; without a value: all IPv4 and IPv6). "
                          "Any non-loopback address needs --token or --insecure.")
    net.add_argument("--port", type=int, default=8188, help="TCP port (default 8188)")
    net.add_argument("--token", default=None, metavar="TOKEN",
                     help="access token required on every request; 'generate' makes a random one "
                          "(default: $NODELOOM_TOKEN)")
    net.add_argument("--insecure", action="store_true",
                     help="allow listening beyond loopback without a token (anyone who reaches the port can run prompts)")
    net.add_argument("--allowed-host", action="append", default=[], metavar="HOST",
                     help="extra host name accepted in Host/Origin headers (e.g. behind a reverse proxy); repeatable")
    net.add_argument("--max-upload-size", type=float, default=100, metavar="MB",
                     help="largest request body in MB (default 100)")
    dirs = parser.add_argument_group("folders")
    dirs.add_argument("--base-dir", default=".", help="parent of input/ output/ temp/ models/ user/ (default .)")
    dirs.add_argument("--output-directory", default=None, help="output folder")
    dirs.add_argument("--input-directory", default=None, help="input folder")
    dirs.add_argument("--temp-directory", default=None, help="temp folder")
    dirs.add_argument("--user-directory", default=None, help="user folder (settings, workflows, queue database)")
    dirs.add_argument("--extra-model-paths-config", nargs="+", action="append", default=None, metavar="PATH",
                      help="ComfyUI extra_model_paths.yaml file(s); repeatable")
    dirs.add_argument("--queue-db", default=None, metavar="PATH",
                      help="SQLite file of the durable queue and history (default <user dir>/nodeloom_queue.sqlite3)")
    run = parser.add_argument_group("execution")
    run.add_argument("--cpu", action="store_true", help="run everything on the CPU")
    cache = run.add_mutually_exclusive_group()
    cache.add_argument("--cache-classic", action="store_true", help="keep only the last prompt's results (default)")
    cache.add_argument("--cache-lru", type=int, default=0, metavar="N", help="keep up to N node results (LRU)")
    cache.add_argument("--cache-none", action="store_true", help="cache nothing between prompts")
    run.add_argument("--custom-nodes", action="append", default=[], metavar="DIR",
                     help="a folder of custom-node packs to load (repeatable; BASE/custom_nodes is always loaded)")
    run.add_argument("--disable-all-custom-nodes", action="store_true", help="load no custom-node packs")
    run.add_argument("--multi-user", action="store_true", help="separate users by the comfy-user header")
    run.add_argument("--workers", default=None, metavar="N|auto|ray",
                     help="run prompts in N worker processes on this machine ('auto': one per GPU, else the CPU "
                          "cores shared out) or in Ray actors ('ray'); all consume this server's queue")
    run.add_argument("--address", default=None, metavar="HOST:PORT",
                     help="the Ray cluster of --workers ray (default: start a local Ray)")
    run.add_argument("--ray-actors", type=int, default=0, metavar="N",
                     help="Ray actors of --workers ray (default: one per GPU of the cluster, else one per 2 CPUs)")
    run.add_argument("--worker-timeout", type=float, default=None, metavar="SECONDS",
                     help="with --workers: a prompt that shows no progress (no node starting or finishing, no "
                          "progress tick) for this long counts as hung; its worker is killed and restarted and "
                          "the prompt runs once more on another worker (default 600; 0 = never)")
    run.add_argument("--worker-threads", type=int, default=0, metavar="N",
                     help="with --workers: torch CPU threads of each worker (default: the cores shared out "
                          "between CPU workers)")
    run.add_argument("--max-attempts", type=int, default=3, metavar="N",
                     help="fail a prompt that was running during N server crashes instead of re-queueing it")
    lim = parser.add_argument_group("per-prompt limits (0 = no limit)")
    lim.add_argument("--max-pixels", type=int, default=None, metavar="N",
                     help="largest width×height of any image, mask or latent a prompt creates or loads, and of "
                          "images decoded for /view previews and mask uploads (default 8192×8192)")
    lim.add_argument("--max-batch", type=int, default=None, metavar="N", help="largest batch (default 4096)")
    lim.add_argument("--max-memory", type=float, default=None, metavar="GB",
                     help="memory all images, masks and latents of one prompt may hold (default: half the RAM)")
    run.add_argument("--verbose", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                     help="log level (default INFO)")
    return parser


def _cache_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.cache_lru < 0:
        raise NodeloomError(f"`--cache-lru` must be ≥ 0, got {args.cache_lru}", type="invalid_argument")
    if args.cache_none:
        return {"cache": "none"}
    if args.cache_lru > 0:
        return {"cache": "lru", "cache_lru_items": args.cache_lru}
    return {"cache": "classic"}


def build_engine(args: argparse.Namespace) -> Engine:
    """The engine the flags describe."""
    from nodeloom import Engine, EngineConfig
    from nodeloom.paths import custom_node_dirs

    extra = [p for group in (args.extra_model_paths_config or []) for p in group]
    config = EngineConfig(
        base_dir=args.base_dir, custom_nodes_dirs=custom_node_dirs(args.base_dir, getattr(args, "custom_nodes", [])), output_dir=args.output_directory, input_dir=args.input_directory,
        temp_dir=args.temp_directory, user_dir=args.user_directory, extra_model_paths=extra,
        load_custom_nodes=not args.disable_all_custom_nodes, device="cpu" if args.cpu else None,
        **_cache_options(args),
    )
    return Engine(config)


def _limits(args: argparse.Namespace) -> RunLimits:
    from nodeloom.server.config import default_limits

    limits = default_limits()
    given = {"max_pixels": getattr(args, "max_pixels", None), "max_batch": getattr(args, "max_batch", None)}
    memory = getattr(args, "max_memory", None)
    if memory is not None:
        if memory < 0:
            raise ValueError(f"`--max-memory` must be ≥ 0 GB, got {memory}")
        given["max_memory"] = int(memory * 2**30)
    for flag, value in given.items():
        if value is not None and value < 0:
            raise ValueError(f"`--{flag.replace('_', '-')}` must be ≥ 0, got {value}")
    return type(limits)(**{**limits.to_dict(), **{k: v for k, v in given.items() if v is not None}})


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The :class:`ServerConfig` the flags describe."""
    from nodeloom.server.config import ServerConfig

    hosts = [h.strip() for h in str(args.listen).split(",") if h.strip()]
    return ServerConfig(
        hosts=hosts, port=args.port, token=args.token, insecure=args.insecure, allowed_hosts=args.allowed_host,
        max_upload_size=int(args.max_upload_size * 1024 * 1024),
        db_path=Path(args.queue_db) if args.queue_db else None, max_attempts=args.max_attempts,
        multi_user=args.multi_user, limits=_limits(args), **_worker_options(args),
    )


def _worker_options(args: argparse.Namespace) -> dict[str, Any]:
    from nodeloom.server.workers import parse_workers

    workers = parse_workers(getattr(args, "workers", None))
    address, actors = getattr(args, "address", None), getattr(args, "ray_actors", 0) or 0
    if address and workers != "ray":
        raise ValueError("`--address` names a Ray cluster: it needs `--workers ray`")
    if actors < 0:
        raise ValueError(f"`--ray-actors` must be ≥ 0, got {actors}")
    from nodeloom.server.config import DEFAULT_WORKER_TIMEOUT

    timeout = getattr(args, "worker_timeout", None)
    timeout = DEFAULT_WORKER_TIMEOUT if timeout is None else timeout
    return {"workers": workers, "ray_address": address, "ray_actors": actors, "worker_timeout": timeout,
            "worker_threads": getattr(args, "worker_threads", 0) or 0}


def base_url(host: str, port: int) -> str:
    """``http://HOST:PORT`` for a bind address (a wildcard shows as 127.0.0.1, IPv6 in brackets)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def serve_main(args: argparse.Namespace, *, engine: Engine | None = None,
               extensions: Sequence[ServerExtension] = ()) -> int:
    """Run the server until interrupted; returns the process exit code.

    Args:
        args: parsed :func:`add_serve_arguments` flags.
        engine: an engine to serve instead of building one from ``args`` (embedding, tests).
        extensions: parts to attach to the application before it starts (see
            :data:`ServerExtension`); one that raises :class:`NodeloomError` stops the start.
    """
    from aiohttp import web

    from nodeloom.server.app import STUCK, create_app
    from nodeloom.server.security import is_loopback, resolve_token

    logging.basicConfig(level=getattr(logging, args.verbose), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = server_config(args)
        token = resolve_token(config.hosts, config.token, insecure=config.insecure)
    except (PolicyDeniedError, ValueError) as exc:
        print(f"nodeloom serve: {exc}", file=sys.stderr)
        return 2
    try:
        engine = engine if engine is not None else build_engine(args)
    except NodeloomError as exc:
        print(f"nodeloom serve: {exc}", file=sys.stderr)
        return 2
    for pack in engine.registry.failed_packs():
        log.warning("custom-node pack %s (IMPORT FAILED): %s", pack.name, pack.error)
    app = create_app(engine, config, token=token)
    announcements: list[str] = []
    for extend in extensions:
        try:
            line = extend(app, config, token)
        except NodeloomError as exc:
            print(f"nodeloom serve: {exc.message}", file=sys.stderr)
            engine.close()
            return 2
        if line:
            announcements.append(line)
    url = base_url(config.hosts[0], config.port)
    if token is None and not all(is_loopback(h) for h in config.hosts):
        print("WARNING: --insecure: anyone who can reach this port can run prompts and read outputs", flush=True)

    def announce(_: str) -> None:  # called by aiohttp once every address is bound
        if token is not None:
            print(f"Access token: {token}", flush=True)
            print(f"To see the GUI go to: {url}/?token={token}", flush=True)
        else:
            print(f"To see the GUI go to: {url}", flush=True)
        for line in announcements:
            print(line, flush=True)

    try:
        web.run_app(app, host=config.hosts, port=config.port, print=announce, access_log=None)
    except NodeloomError as exc:  # a part that starts with the server (an extension) could not
        print(f"nodeloom serve: {exc.message}", file=sys.stderr)
        engine.close()
        return 2
    except OSError as exc:  # the address is taken or cannot be bound
        print(f"nodeloom serve: cannot listen on {', '.join(config.hosts)} port {config.port}: {exc.strerror or exc}",
              file=sys.stderr)
        engine.close()
        return 2
    if app.get(STUCK):
        # a node is still running and ignores interruption: exit without waiting for it; the
        # durable queue re-queues its prompt (counting the attempt) at the next start
        logging.shutdown()
        os._exit(0)
    engine.close()
    return 0

