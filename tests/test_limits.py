"""Per-run resource limits: estimated from a prompt's constants before the run, checked on
what every node creates during it, through ``Engine.run(limits=...)``."""

from __future__ import annotations

import zlib
import struct
from pathlib import Path

import pytest

from nodeloom import Engine
from nodeloom.errors import ValidationError
from nodeloom.limits import LIMITS_EXTRA_KEY, LimitError, RunLimits, estimate_prompt


def _empty(width: int, height: int, batch: int = 1) -> dict:
    return {"class_type": "EmptyImage", "inputs": {"width": width, "height": height, "batch_size": batch, "color": 0}}


def _scale(src: str, factor: float) -> dict:
    return {"class_type": "ImageScaleBy", "inputs": {"image": [src, 0], "upscale_method": "nearest-exact", "scale_by": factor}}


def _preview(src: str) -> dict:
    return {"class_type": "PreviewImage", "inputs": {"images": [src, 0]}}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    eng = Engine(base_dir=tmp_path_factory.mktemp("limits"))
    yield eng
    eng.close()


def test_limits_refuse_bad_values_and_tighten():
    with pytest.raises(ValidationError, match="max_pixels"):
        RunLimits(max_pixels=-1)
    with pytest.raises(ValidationError, match="unknown limit"):
        RunLimits.from_mapping({"max_pixel": 4})
    server = RunLimits(max_pixels=100, max_batch=0, max_memory=1000)
    agent = RunLimits(max_pixels=400, max_batch=8, max_memory=0)
    assert server.tightened(agent) == RunLimits(max_pixels=100, max_batch=8, max_memory=1000)
    assert server.for_extra_data({LIMITS_EXTRA_KEY: {"max_pixels": 50}}).max_pixels == 50
    assert server.for_extra_data({}) is server
    with pytest.raises(ValidationError, match=LIMITS_EXTRA_KEY):
        server.for_extra_data({LIMITS_EXTRA_KEY: [1]})


def test_estimate_follows_sizes_batches_and_scale_factors(engine):
    prompt = {"1": _empty(64, 32, 3), "2": _scale("1", 4.0), "3": _scale("2", 0.25), "4": _preview("3"),
              "5": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 5}}}
    repeat = type("RepeatImageBatch", (), {"RETURN_TYPES": ("IMAGE",)})  # any pack's node: only its types count
    est = estimate_prompt(prompt, lambda name: repeat if name == "RepeatImageBatch" else engine.registry.get(name))
    assert est["1"].pixels == 64 * 32 and est["1"].batch == 3
    assert est["2"].pixels == 64 * 32 * 16  # the upscale inside the graph is seen before running
    assert est["3"].pixels == pytest.approx(64 * 32)
    assert est["5"].batch == 15
    assert "4" not in est  # creates no image
    assert est["1"].bytes == 64 * 32 * 3 * 12


def test_estimate_accepts_unhashable_any_types(engine):
    class AlwaysEqualProxy(str):  # ComfyUI-Logic's "any" type: equal to everything, unhashable
        def __eq__(self, other):
            return True

        __hash__ = None  # type: ignore[assignment]

    node = type("IfAny", (), {"RETURN_TYPES": (AlwaysEqualProxy("*"), "IMAGE")})
    prompt = {"1": _empty(8, 8), "2": {"class_type": "IfAny", "inputs": {"ANY": ["1", 0]}}}
    est = estimate_prompt(prompt, lambda name: node if name == "IfAny" else engine.registry.get(name))
    assert est["1"].pixels == 64


def test_check_prompt_names_node_and_limit(engine):
    lookup = engine.registry.get
    with pytest.raises(LimitError, match=r"node `1` \(EmptyImage\).*16777216 pixels.*`max_pixels`"):
        RunLimits(max_pixels=4096 * 4096 - 1).check_prompt({"1": _empty(4096, 4096)}, lookup)
    # upscale-then-downscale cannot slip through
    with pytest.raises(LimitError, match=r"node `2` \(ImageScaleBy\)"):
        RunLimits(max_pixels=100 * 100).check_prompt({"1": _empty(64, 64), "2": _scale("1", 4.0), "3": _scale("2", 0.25)}, lookup)
    with pytest.raises(LimitError, match="batch of 64"):
        RunLimits(max_batch=16).check_prompt({"1": _empty(8, 8, 64)}, lookup)
    with pytest.raises(LimitError, match="`max_memory`"):
        RunLimits(max_memory=1 << 20).check_prompt({"1": _empty(512, 512, 2)}, lookup)
    RunLimits(max_pixels=64 * 64, max_batch=4, max_memory=1 << 20).check_prompt({"1": _empty(64, 64, 4)}, lookup)


def test_engine_refuses_before_running_and_checks_every_node(engine):
    with pytest.raises(LimitError):
        engine.run({"1": _empty(128, 128), "2": _preview("1")}, limits=RunLimits(max_pixels=64 * 64))
    # a size no constant tells (scale factor from a linked primitive) is caught after the node
    prompt = {"1": _empty(32, 32), "f": {"class_type": "PrimitiveFloat", "inputs": {"value": 4.0}},
              "2": {**_scale("1", 1.0), "inputs": {**_scale("1", 1.0)["inputs"], "scale_by": ["f", 0]}},
              "3": _scale("2", 0.25), "4": _preview("3")}
    result = engine.run(prompt, limits=RunLimits(max_pixels=64 * 64))
    assert result.status == "error"
    err = result.errors[0]
    assert err["node_id"] == "2" and "`max_pixels`" in err["exception_message"]
    assert "3" not in result.ran()  # nothing downstream of the refused node ran
    assert engine.run(prompt).status == "success"  # without limits the same prompt runs
    prompt["1"] = _empty(32, 32, 4)  # 48 KiB, then 768 KiB once scaled by the linked factor
    held = engine.run(prompt, limits=RunLimits(max_memory=400 * 1024))
    assert held.status == "error" and held.errors[0]["node_id"] == "2"
    assert "`max_memory`" in held.errors[0]["exception_message"]


def _png_claiming(width: int, height: int) -> bytes:
    """A valid grey PNG of ``width × height`` zeros: tiny on disk, huge once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_load_image_refuses_huge_files_before_decoding(engine):
    path = Path(engine.paths.input_dir) / "huge.png"
    path.write_bytes(_png_claiming(6000, 6000))
    assert path.stat().st_size < 100_000
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "huge.png"}}, "2": _preview("1")}
    result = engine.run(prompt, limits=RunLimits(max_pixels=4096 * 4096))
    assert result.status == "error"
    assert "huge.png" in result.errors[0]["exception_message"] and "36000000 pixels" in result.errors[0]["exception_message"]


def test_expression_broadcast_bounded_by_memory_limit_before_computing(engine):
    """A 512×1 column times a 1×512 row broadcasts to 512×512: with a memory limit the
    expression is refused from the shapes, before the product exists."""
    column = {"class_type": "EmptyImage", "inputs": {"width": 1, "height": 512, "batch_size": 1, "color": 0}}
    row = {"class_type": "EmptyImage", "inputs": {"width": 512, "height": 1, "batch_size": 1, "color": 0}}
    expr = {"class_type": "ImageExpression", "inputs": {"expression": "a * b + 0.5", "a": ["1", 0], "b": ["2", 0],
                                                        "x": 0.0, "y": 0.0, "z": 0.0, "clamp": True}}
    prompt = {"1": column, "2": row, "3": expr, "4": _preview("3")}
    assert engine.run(prompt).value("3").shape == (1, 512, 512, 3)
    expr["inputs"]["expression"] = "a * b + 0.25"  # not the cached result
    refused = engine.run(prompt, limits=RunLimits(max_memory=2 << 20))
    assert refused.status == "error" and refused.errors[0]["node_id"] == "3"
    assert "786432 elements (limit 524288)" in refused.errors[0]["exception_message"]
