"""Registry-wide contract: every built-in node's declaration is complete and consistent."""

from __future__ import annotations

import inspect
import json

import pytest

from nodeloom import Engine
from tests.nodes.conftest import EMPTY_CATEGORY_IN_COMFYUI


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    eng = Engine(base_dir=tmp_path_factory.mktemp("contract"), load_custom_nodes=False)
    yield eng
    eng.close()


def _builtin(engine):
    return {ct: cls for ct, cls in engine.registry.classes().items() if engine.registry.python_module(ct).startswith("nodes.")}


def test_every_builtin_pack_imported(engine):
    failed = [(p.name, p.error) for p in engine.registry.packs if p.builtin and p.error]
    assert failed == []
    assert len(_builtin(engine)) > 100


def test_object_info_is_json_and_complete(engine):
    info = engine.object_info()
    json.dumps(info)
    for ct, entry in info.items():
        for key in ("input", "input_order", "output", "output_is_list", "output_name", "name", "display_name",
                    "description", "python_module", "category", "output_node"):
            assert key in entry, f"{ct} lacks {key}"
        assert len(entry["output"]) == len(entry["output_name"]) == len(entry["output_is_list"]), ct


def test_builtin_nodes_are_documented(engine):
    missing_doc, missing_tooltip = [], []
    for ct, cls in _builtin(engine).items():
        if not (getattr(cls, "DESCRIPTION", "") or cls.__doc__ or "").strip():
            missing_doc.append(ct)
        types = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, spec in (types.get(section) or {}).items():
                opts = spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 else {}
                if not opts.get("tooltip"):
                    missing_tooltip.append(f"{ct}.{name}")
    assert missing_doc == []
    assert missing_tooltip == []


def test_function_signature_accepts_declared_inputs(engine):
    problems = []
    for ct, cls in engine.registry.classes().items():
        fn = getattr(cls, cls.FUNCTION, None)
        if fn is None or not callable(fn):
            problems.append(f"{ct}: FUNCTION {cls.FUNCTION!r} missing")
            continue
        params = inspect.signature(fn).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            continue
        types = cls.INPUT_TYPES()
        declared = [n for s in ("required", "optional", "hidden") for n in (types.get(s) or {})]
        missing = [n for n in declared if n not in params]
        if missing:
            problems.append(f"{ct}: {cls.FUNCTION} does not accept {missing}")
        required = [n for n, p in params.items() if n != "self" and p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        undeclared = [n for n in required if n not in declared]
        if undeclared:
            problems.append(f"{ct}: {cls.FUNCTION} requires undeclared {undeclared}")
    assert problems == []


def test_ids_unique_and_categories_set(engine):
    ids = [n for p in engine.registry.packs for n in p.node_ids]
    assert len(ids) == len(set(ids))
    for ct, cls in _builtin(engine).items():
        assert getattr(cls, "CATEGORY", "") or ct in EMPTY_CATEGORY_IN_COMFYUI, ct
