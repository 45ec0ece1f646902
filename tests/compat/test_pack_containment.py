"""Packs that install packages or start threads while importing: installs are refused unless the
user opted in (one log line naming the pack and the command), threads become named daemon threads
so the process still exits. Synthetic packs; nothing is installed (the commands are ``--help``)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from nodeloom.compat.containment import ENV_ALLOW, is_package_install, installs_allowed
from nodeloom.compat.loader import load_custom_node_packs
from nodeloom.core.registry import NodeRegistry

INSTALL_PACK = '''
import os, subprocess, sys
try:
    import pip
    PIP_MAIN = pip.main(["install", "--help"])
except ImportError:
    PIP_MAIN = None
CALL = subprocess.call([sys.executable, "-m", "pip", "install", "--help"], stdout=subprocess.DEVNULL)
try:
    subprocess.check_call([sys.executable, "-s", "-m", "pip", "-q", "install", "--help"], stdout=subprocess.DEVNULL)
    CHECK_CALL = "ran"
except subprocess.CalledProcessError as exc:
    CHECK_CALL = exc.returncode
SYSTEM = os.system("pip install --help > /dev/null")
FREEZE = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True).returncode

class Observed:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}
    RETURN_TYPES = ()
    FUNCTION = "run"
    CATEGORY = "test"

NODE_CLASS_MAPPINGS = {"Observed": Observed}
'''

THREAD_PACK = '''
import threading
STOP = threading.Event()
WORKER = threading.Thread(target=STOP.wait, name="worker")
WORKER.start()

class Waiter:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}
    RETURN_TYPES = ()
    FUNCTION = "run"
    CATEGORY = "test"

NODE_CLASS_MAPPINGS = {"Waiter": Waiter}
'''


def _write_pack(root: Path, name: str, source: str) -> Path:
    pack = root / name
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(textwrap.dedent(source))
    return root


def _pack_module(root: Path, name: str) -> object:
    init = str(root / name / "__init__.py")
    return next(m for k, m in sys.modules.items() if k.startswith(f"nodeloom_custom_nodes.{name}_")
                and getattr(m, "__file__", None) == init)


def test_commands_that_install_are_recognised() -> None:
    for command in (["pip", "install", "x"], [sys.executable, "-m", "pip", "-q", "install", "x"],
                    "python -m pip install -r requirements.txt", ["uv", "pip", "install", "x"],
                    ["/usr/bin/pip3.11", "uninstall", "-y", "x"], [sys.executable, "-m", "ensurepip"]):
        assert is_package_install(command), command
    for command in ([sys.executable, "-m", "pip", "freeze"], ["pip", "list"], ["ffmpeg", "-i", "install"],
                    "git pull", ["pip", "--version"]):
        assert not is_package_install(command), command


def test_installs_at_import_are_refused_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_ALLOW, raising=False)
    root = _write_pack(tmp_path / "custom_nodes", "install_pack", INSTALL_PACK)
    registry = NodeRegistry()
    with caplog.at_level(logging.WARNING, logger="nodeloom.custom_nodes"):
        (info,) = load_custom_node_packs([root], registry)
    assert info.error is None and registry.get("Observed") is not None
    module = _pack_module(root, "install_pack")
    assert module.CALL == 1 and module.CHECK_CALL == 1 and module.SYSTEM == 256  # like a failed install
    assert module.PIP_MAIN in (1, None)
    assert module.FREEZE == 0  # read-only pip commands run
    refusals = [r.getMessage() for r in caplog.records if "refused to run" in r.getMessage()]
    assert len(refusals) == 3 + (module.PIP_MAIN is not None)
    assert all("`install_pack`" in line and ENV_ALLOW in line for line in refusals)
    assert "pip install --help" in refusals[-1]
    # after loading, the same calls are the program's own again
    assert subprocess.call([sys.executable, "-m", "pip", "install", "--help"], stdout=subprocess.DEVNULL) == 0


def test_installs_run_when_the_user_opted_in(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ALLOW, "1")
    assert installs_allowed(None)
    in_process = 'PIP_MAIN = pip.main(["install", "--help"])'  # pip's in-process run is left out here
    root = _write_pack(tmp_path / "custom_nodes", "install_pack", INSTALL_PACK.replace(in_process, "PIP_MAIN = None"))
    with caplog.at_level(logging.WARNING, logger="nodeloom.custom_nodes"):
        load_custom_node_packs([root], NodeRegistry())
    module = _pack_module(root, "install_pack")
    assert module.CALL == 0 and module.CHECK_CALL == "ran"
    assert not any("refused to run" in r.getMessage() for r in caplog.records)
    monkeypatch.delenv(ENV_ALLOW)
    assert installs_allowed({"allow_pack_installs": True}) and not installs_allowed({})


def test_threads_started_at_import_are_named_daemons(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _write_pack(tmp_path / "custom_nodes", "thread_pack", THREAD_PACK)
    with caplog.at_level(logging.INFO, logger="nodeloom.custom_nodes"):
        load_custom_node_packs([root], NodeRegistry())
    module = _pack_module(root, "thread_pack")
    try:
        assert module.WORKER.daemon and module.WORKER.name == "custom_nodes.thread_pack:worker"
        assert module.WORKER in threading.enumerate()
        assert any("started 1 thread(s)" in r.getMessage() and "thread_pack" in r.getMessage() for r in caplog.records)
        assert not threading.Thread(target=lambda: None).daemon  # threads outside a pack import are untouched
    finally:
        module.STOP.set()


def test_a_process_with_a_pack_thread_still_exits(tmp_path: Path) -> None:
    root = _write_pack(tmp_path / "custom_nodes", "thread_pack", THREAD_PACK)
    script = ("from pathlib import Path; from nodeloom.compat.loader import load_custom_node_packs; "
              "from nodeloom.core.registry import NodeRegistry; "
              f"load_custom_node_packs([Path({str(root)!r})], NodeRegistry()); print('loaded')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-2000:]
