"""What a custom-node pack may do while it imports: package installs and threads.

Some packs install their requirements from inside their import (``pip.main(["install", ...])``,
``subprocess.check_call([sys.executable, "-m", "pip", "install", ...])``), which changes the
environment nodeloom runs in without the user asking. While packs load, :func:`contained` makes
such a command in the loading thread behave like a failed install (exit status 1: ``check_call``
raises ``CalledProcessError``, ``pip.main`` returns 1) and logs a line naming the pack and the
command — unless the user opted in with the engine setting ``allow_pack_installs`` or the
environment variable ``NODELOOM_ALLOW_PACK_INSTALLS=1``. Read-only pip commands (``freeze``,
``list``, ``show``) run as usual, and so does everything in other threads.

Threads a pack starts at import are made daemon threads named ``custom_nodes.<pack>:<name>``, so
they never keep the process alive at shutdown and show up by pack in thread dumps; each is logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ImportReport", "contained", "guarding", "installs_allowed", "is_package_install"]

log = logging.getLogger("nodeloom.custom_nodes")

ENV_ALLOW = "NODELOOM_ALLOW_PACK_INSTALLS"
#: subcommands that change installed packages
_MUTATING = frozenset({"install", "uninstall", "download", "wheel", "sync", "add", "remove"})
_INSTALLERS = frozenset({"pip", "pip3", "uv", "conda", "mamba", "micromamba"})


@dataclass
class ImportReport:
    """What one pack's import tried: refused install commands and the threads it started."""

    pack: str
    refused: list[str] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)


def installs_allowed(settings: dict[str, Any] | None) -> bool:
    """Whether the user opted in to packs installing packages at import."""
    if os.environ.get(ENV_ALLOW, "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    return bool((settings or {}).get("allow_pack_installs", False))


def _tokens(command: Any) -> list[str]:
    if isinstance(command, (str, bytes)):
        text = command.decode() if isinstance(command, bytes) else command
        try:
            return shlex.split(text)
        except ValueError:
            return text.split()
    if isinstance(command, Sequence):
        return [os.fsdecode(t) if isinstance(t, (bytes, os.PathLike)) else str(t) for t in command]
    return [str(command)]


def is_package_install(command: Any) -> bool:
    """Whether ``command`` (argv list or shell text) runs a package manager to change packages."""
    tokens = _tokens(command)
    for i, token in enumerate(tokens):
        name = os.path.basename(token).lower()
        tool = name.split(".exe")[0]
        if tool.startswith("pip") and tool[3:].replace(".", "").isdigit() or tool in _INSTALLERS:
            rest = tokens[i + 1:]
        elif token == "-m" and i + 1 < len(tokens) and tokens[i + 1] in ("pip", "uv", "ensurepip"):
            if tokens[i + 1] == "ensurepip":
                return True
            rest = tokens[i + 2:]
        else:
            continue
        words = [t for t in rest if not t.startswith("-")]
        if words[:1] == ["pip"]:  # `uv pip install`
            words = words[1:]
        return bool(words) and words[0] in _MUTATING
    return False


class _State(threading.local):
    report: ImportReport | None = None
    allow: bool = False


_state = _State()
_FAILED = [sys.executable, "-c", "import sys; sys.exit(1)"]


def _refuse(command: Any) -> bool:
    """True (and logged) when ``command`` must not run: an install during a pack import in this thread."""
    report = _state.report
    if report is None or _state.allow or not is_package_install(command):
        return False
    text = command if isinstance(command, str) else " ".join(_tokens(command))
    report.refused.append(text)
    log.warning("custom nodes `%s`: refused to run `%s` while the pack imports; install the pack's requirements "
                "yourself, or allow packs to install (engine setting `allow_pack_installs`, or %s=1)",
                report.pack, text, ENV_ALLOW)
    return True


class _GuardedPopen(subprocess.Popen):  # type: ignore[type-arg]
    def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
        if _refuse(args):
            kwargs.pop("shell", None)
            kwargs.pop("executable", None)
            args = _FAILED
            if rest:  # positional bufsize/executable...: keep only bufsize
                rest = rest[:1]
        super().__init__(args, *rest, **kwargs)


def _guarded_system(original: Any) -> Any:
    def system(command: str) -> int:
        return 256 if _refuse(command) else original(command)  # exit status 1, as os.system encodes it

    return system


def _guarded_pip_main(original: Any) -> Any:
    def main(args: list[str] | None = None, *rest: Any, **kwargs: Any) -> int:
        return 1 if _refuse(["pip", *(args if args is not None else sys.argv[1:])]) else original(args, *rest, **kwargs)

    return main


def _guarded_start(original: Any) -> Any:
    def start(self: threading.Thread) -> None:
        report = _state.report  # set only in the thread importing a pack
        if report is not None:
            self.daemon = True
            if not self.name.startswith("custom_nodes."):
                self.name = f"custom_nodes.{report.pack}:{self.name}"
            report.threads.append(self.name)
        original(self)

    return start


@contextlib.contextmanager
def _patched() -> Iterator[None]:
    saved: list[tuple[Any, str, Any]] = [(subprocess, "Popen", subprocess.Popen), (os, "system", os.system),
                                         (threading.Thread, "start", threading.Thread.start)]
    subprocess.Popen = _GuardedPopen  # type: ignore[misc]
    os.system = _guarded_system(os.system)
    threading.Thread.start = _guarded_start(threading.Thread.start)  # type: ignore[method-assign]
    try:
        import pip

        saved.append((pip, "main", pip.main))
        pip.main = _guarded_pip_main(pip.main)
    except (ImportError, AttributeError):
        pass
    try:
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


@contextlib.contextmanager
def guarding() -> Iterator[None]:
    """The guards in place for a whole loading pass (between packs they pass everything through)."""
    with _patched():
        yield


@contextlib.contextmanager
def contained(pack: str, allow_installs: bool = False) -> Iterator[ImportReport]:
    """Mark this thread as importing ``pack`` (inside :func:`guarding`); yields its report."""
    report = ImportReport(pack)
    previous = (_state.report, _state.allow)
    _state.report, _state.allow = report, allow_installs
    try:
        yield report
    finally:
        _state.report, _state.allow = previous
        if report.threads:
            log.info("custom nodes `%s` started %d thread(s) while importing, made daemon threads: %s",
                     pack, len(report.threads), ", ".join(report.threads))
