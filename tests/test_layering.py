"""The import contract of docs/architecture.md (``[tool.importlinter]`` in pyproject.toml).

The first test runs every contract on this tree; the others plant one forbidden import in a
copy of the package and check that the contract it breaks says so, so a contract that
silently stopped matching anything fails here too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import importlinter  # noqa: F401 - the `test` extra installs it; a missing one fails here, never skips
import pytest

ROOT = Path(__file__).resolve().parents[1]
_RUN = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', limit_to_contracts=tuple(sys.argv[1:]), "
        "no_cache=True, no_logo=True))")


def _lint(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(root / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", _RUN, *contracts], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_import_contract_holds() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "broken" not in result.stdout.replace("0 broken", "")


def _copy_tree(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "src" / "nodeloom", tmp_path / "src" / "nodeloom",
                    ignore=lambda d, names: [n for n in names if not (n.endswith(".py") or (Path(d) / n).is_dir())
                                             or n == "__pycache__"])
    return tmp_path


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("server/worker.py", "from nodeloom.mcp import jobs", "layers"),
        ("batch/runner.py", "import nodeloom.cli.run", "layers"),
        ("nodes/diffusion/loaders.py", "from nodeloom.core.context import current_services", "packs"),
        ("core/cache.py", "import torch", "core"),
        ("ops/color.py", "from nodeloom.node_api import Node", "model-code"),
        ("workflows/files.py", "from nodeloom.cli import run", "shared"),
        ("batch/worker.py", "from nodeloom.nodes.data import batch_nodes", "adapters"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    root = _copy_tree(tmp_path)
    target = root / "src" / "nodeloom" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n\ndef _planted():\n    {line}\n", encoding="utf-8")
    result = _lint(root, contract)
    assert result.returncode == 1 and "1 broken" in result.stdout, result.stdout + result.stderr
