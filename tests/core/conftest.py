from __future__ import annotations

import pytest

from nodeloom import Engine
from nodeloom.core.registry import PackInfo
from tests.fixtures import stub_pack


@pytest.fixture
def engine(tmp_path):
    eng = Engine(base_dir=tmp_path, builtin_packs=False)
    eng.registry.register_pack(PackInfo("stub", "tests.fixtures.stub_pack"), stub_pack.NODE_CLASS_MAPPINGS)
    stub_pack.CALLS.clear()
    yield eng
    eng.close()


@pytest.fixture
def calls():
    return stub_pack.CALLS
