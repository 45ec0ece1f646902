"""Fixtures for the compat tests: a copy of the fixture custom-node packs in a temp folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURE_PACKS = Path(__file__).resolve().parents[1] / "fixtures" / "custom_nodes"


@pytest.fixture
def custom_nodes_dir(tmp_path: Path) -> Path:
    """The fixture packs copied under ``tmp_path/custom_nodes`` (plus a stray ``__pycache__``)."""
    target = tmp_path / "custom_nodes"
    shutil.copytree(FIXTURE_PACKS, target, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "__pycache__").mkdir()
    return target
