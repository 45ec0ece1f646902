"""The ``nodeloom`` command: demo, run, validate, nodes, convert, models, batch, serve, bench.

Every command drives one :class:`~nodeloom.engine.Engine`. This package is the composition
root: the one place where adapters are wired together (``serve --mcp`` in
:mod:`nodeloom.cli.serve`, ``batch`` and ``run`` sharing :mod:`nodeloom.workflows.files`);
the adapters themselves never import each other. ``serve`` is handed to ``nodeloom.server``
(through :mod:`nodeloom.cli.serve`) and ``bench`` to the packs listed in
:data:`BENCH_PROVIDERS`, both imported only when used. Exit codes: 0 success, 1 invalid workflow or failed run, 2 usage
or set-up error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeloom.errors import NodeloomError

if TYPE_CHECKING:
    from nodeloom.engine import Engine

__all__ = ["BENCH_PROVIDERS", "build_parser", "main"]

#: ``(module, function)`` pairs whose ``function(subparsers)`` adds ``nodeloom bench`` commands
#: (each sets ``func=callable(args) -> int`` as a default). Missing modules are skipped.
#: A pack adds its benchmark by appending its pair here.
BENCH_PROVIDERS: list[tuple[str, str]] = [
    ("nodeloom.text.kv_bench", "register_cli"),
    ("nodeloom.batch.bench", "register_cli"),
]


def _engine_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine")
    group.add_argument("--base-dir", default=".", help="parent of input/ output/ temp/ models/ user/ (default .)")
    group.add_argument("--custom-nodes", action="append", default=[], metavar="DIR",
                       help="a folder of ComfyUI custom-node packs to load (repeatable; BASE/custom_nodes "
                            "is loaded when it exists)")
    group.add_argument("--disable-all-custom-nodes", action="store_true", help="load built-in nodes only")
    group.add_argument("--extra-model-paths-config", action="append", default=[], metavar="YAML",
                       help="ComfyUI extra_model_paths.yaml file (repeatable)")
    group.add_argument("--cpu", action="store_true", help="run models on the CPU")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (``serve`` and ``bench`` arguments are parsed on use)."""
    parser = argparse.ArgumentParser(prog="nodeloom", description="Run node-graph workflows (ComfyUI dialect).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log loading details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a workflow (API or UI JSON, or a PNG that embeds one)")
    run.add_argument("workflow", help="workflow file, or - for stdin")
    run.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE",
                     help="override an input; NODE is an id or title, VALUE JSON or text (repeatable)")
    run.add_argument("--out", default=None, metavar="DIR", help="output folder (default BASE/output)")
    run.add_argument("--json", action="store_true", help="print one JSON result instead of progress")
    run.add_argument("--sequential", action="store_true", help="run one node at a time")
    _engine_options(run)

    validate = sub.add_parser("validate", help="check a workflow and list every problem")
    validate.add_argument("workflow")
    validate.add_argument("--json", action="store_true")
    _engine_options(validate)

    nodes = sub.add_parser("nodes", help="list node types, or describe one")
    nodes.add_argument("name", nargs="?", help="a class_type to describe")
    nodes.add_argument("--json", action="store_true", help="print /object_info JSON")
    _engine_options(nodes)

    convert = sub.add_parser("convert", help="convert a UI workflow to API JSON")
    convert.add_argument("workflow")
    convert.add_argument("-o", "--output", default=None, metavar="OUT", help="write here instead of stdout")
    _engine_options(convert)

    models = sub.add_parser("models", help="list the model files a workflow needs, with their download URLs")
    from nodeloom.cli.models import add_models_arguments

    add_models_arguments(models)

    demo = sub.add_parser("demo", help="serve, queue the embedded default workflow (no models), print the outputs")
    from nodeloom.cli.demo import add_demo_arguments

    add_demo_arguments(demo)

    batch = sub.add_parser("batch", help="run a workflow over a folder, CSV/JSONL or seed range (resumable)")
    from nodeloom.batch.cli import add_batch_arguments

    add_batch_arguments(batch)
    _engine_options(batch)

    for name, text in (("serve", "run the HTTP/WebSocket server (ComfyUI-compatible)"),
                       ("mcp", "serve nodeloom to AI agents over MCP (stdio, or --http)"),
                       ("bench", "run benchmarks provided by installed packs")):
        lazy = sub.add_parser(name, help=text, add_help=False)
        lazy.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _make_engine(args: argparse.Namespace, **overrides: Any) -> Engine:
    from nodeloom.engine import Engine, EngineConfig
    from nodeloom.paths import custom_node_dirs

    config = EngineConfig(
        base_dir=args.base_dir,
        custom_nodes_dirs=custom_node_dirs(args.base_dir, args.custom_nodes),
        load_custom_nodes=not args.disable_all_custom_nodes,
        extra_model_paths=list(args.extra_model_paths_config),
        device="cpu" if args.cpu else None,
    )
    engine = Engine(config, **overrides)
    for pack in engine.registry.failed_packs():
        print(f"warning: custom-node pack {pack.name} {pack.error}", file=sys.stderr)
    return engine


def _cmd_run(args: argparse.Namespace) -> int:
    from nodeloom.cli.run import run_command
    from nodeloom.workflows.files import apply_overrides, embedded_workflow, load_prompt

    overrides: dict[str, Any] = {"sequential": args.sequential}
    if args.out:
        overrides["output_dir"] = args.out
    with _make_engine(args, **overrides) as engine:
        prompt, ui_workflow = load_prompt(engine, args.workflow, with_ui=True)
        apply_overrides(prompt, args.set)
        # saved PNGs embed a UI workflow; after --set edits the original one would be stale
        workflow = embedded_workflow(engine, prompt, None if args.set else ui_workflow)
        extra = {"extra_pnginfo": {"workflow": workflow}} if workflow is not None else {}
        return run_command(engine, args, prompt, extra_data=extra)


def _cmd_validate(args: argparse.Namespace) -> int:
    from nodeloom.workflows.files import load_prompt, print_validation_errors

    with _make_engine(args) as engine:
        prompt, ui_workflow = load_prompt(engine, args.workflow, with_ui=True)
        result = engine.validate(prompt, workflow=ui_workflow)
    valid = result.ok and not result.node_errors
    if args.json:
        print(json.dumps({"valid": valid, "outputs": result.outputs_to_execute, **result.to_dict()}, default=str))
    elif valid:
        print(f"valid: {len(result.outputs_to_execute)} output node(s): {', '.join(result.outputs_to_execute)}")
    else:
        print_validation_errors(result.error, result.node_errors, sys.stdout)
    return 0 if valid else 1


def _describe(info: dict[str, Any]) -> str:
    lines = [f"{info['name']} — {info['display_name']}  [{info['category']}]  ({info['python_module']})"]
    if info.get("description"):
        lines.append(f"  {info['description']}")
    for section in ("required", "optional"):
        for name, spec in (info["input"].get(section) or {}).items():
            io_type = spec[0] if not isinstance(spec[0], list) else f"one of {spec[0][:8]}{'...' if len(spec[0]) > 8 else ''}"
            opts = spec[1] if len(spec) > 1 else {}
            extra = ", ".join(f"{k}={opts[k]}" for k in ("default", "min", "max") if k in opts)
            tip = f" — {opts['tooltip']}" if opts.get("tooltip") else ""
            lines.append(f"  in  {name}: {io_type}{' (optional)' if section == 'optional' else ''}"
                         f"{f' [{extra}]' if extra else ''}{tip}")
    for name, io_type in zip(info["output_name"], info["output"]):
        lines.append(f"  out {name}: {io_type}")
    return "\n".join(lines)


def _cmd_nodes(args: argparse.Namespace) -> int:
    with _make_engine(args) as engine:
        info = engine.object_info(args.name) if args.name else engine.object_info()
    if args.name and args.name not in info:
        print(f"nodeloom nodes: unknown node type `{args.name}`", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info, default=str))
    elif args.name:
        print(_describe(info[args.name]))
    else:
        width = max((len(k) for k in info), default=0)
        for name, entry in info.items():
            print(f"{name:<{width}}  {entry['category']:<24} {entry['display_name']}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from nodeloom.workflows.files import load_prompt

    with _make_engine(args) as engine:
        prompt = load_prompt(engine, args.workflow)
    text = json.dumps(prompt, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 0


def _delegate(args: argparse.Namespace, *, command: str, module: str, extra: str, what: str,
              description: str, add_arguments: str, run: str, composer: str | None = None) -> int:
    """Hand ``nodeloom COMMAND ...`` to an adapter module that owns its own flags.

    ``composer`` names the module of this package that wires the adapter together with
    others (``serve --mcp``); its ``add_arguments``/``run`` functions are called instead.
    """
    try:
        adapter = importlib.import_module(module)
    except ImportError as exc:
        print(f"nodeloom {command}: {what} is not available ({exc}); install it with "
              f"`pip install 'nodeloom[{extra}]'`", file=sys.stderr)
        return 2
    if composer is not None:
        adapter = importlib.import_module(composer)
    parser = argparse.ArgumentParser(prog=f"nodeloom {command}", description=description)
    getattr(adapter, add_arguments)(parser)
    return int(getattr(adapter, run)(parser.parse_args(args.rest)) or 0)


def _cmd_serve(args: argparse.Namespace) -> int:
    return _delegate(args, command="serve", module="nodeloom.server.cli", extra="server", what="the server",
                     description="Serve the ComfyUI-compatible API.", add_arguments="add_arguments",
                     run="serve", composer="nodeloom.cli.serve")


def _cmd_mcp(args: argparse.Namespace) -> int:
    return _delegate(args, command="mcp", module="nodeloom.mcp.cli", extra="mcp", what="the MCP server",
                     description="Serve nodeloom over the Model Context Protocol.", add_arguments="add_mcp_arguments",
                     run="mcp_main")


def _cmd_bench(args: argparse.Namespace) -> int:
    parser = argparse.ArgumentParser(prog="nodeloom bench", description="Benchmarks provided by installed packs.")
    sub = parser.add_subparsers(dest="bench", metavar="BENCH")
    for module_name, function in BENCH_PROVIDERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # the provider is not installed
            raise
        getattr(module, function)(sub)
    if not sub.choices:
        print("nodeloom bench: no benchmarks are installed", file=sys.stderr)
        return 2
    bench_args = parser.parse_args(args.rest)
    if not getattr(bench_args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return int(bench_args.func(bench_args) or 0)


def _cmd_batch(args: argparse.Namespace) -> int:
    from nodeloom.batch.cli import batch_main

    return batch_main(args)


def _cmd_models(args: argparse.Namespace) -> int:
    from nodeloom.cli.models import models_main

    return models_main(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from nodeloom.cli.demo import demo_main

    return demo_main(args)


COMMANDS = {"demo": _cmd_demo, "run": _cmd_run, "validate": _cmd_validate, "nodes": _cmd_nodes, "convert": _cmd_convert,
            "models": _cmd_models, "batch": _cmd_batch, "serve": _cmd_serve, "mcp": _cmd_mcp, "bench": _cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nodeloom`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command_at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if command_at is not None and argv[command_at] in ("serve", "mcp", "bench"):
        # their own parsers read everything after the command, options included
        args = build_parser().parse_args(argv[: command_at + 1])
        args.rest = argv[command_at + 1 :]
    else:
        args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except NodeloomError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"status": "error", "error": exc.to_dict()}, default=str))
        else:
            print(f"nodeloom {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
