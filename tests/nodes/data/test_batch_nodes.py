"""BatchInput reads the engine's item store; BatchScore reports scores; both run through the engine."""

from __future__ import annotations

import pytest
import torch

from nodeloom import Engine
from nodeloom.core.context import activate_services
from nodeloom.errors import NodeExecutionError, ValidationError
from nodeloom.nodes.data.batch_nodes import BatchInput, BatchScore, to_floats
from nodeloom.batch_items import item_store
from nodeloom.paths import FolderPaths
from nodeloom.services import Services


def test_batch_input_returns_the_stored_item(tmp_path):
    services = Services(FolderPaths(tmp_path))
    image = torch.rand(2, 4, 5, 3)
    item_store(services).put("k1", {"image": image, "seed": [7], "name": ["a"]}, ids=["x", "y"])
    with activate_services(services):
        value, mask, ids = BatchInput.execute(field="image", kind="image", item="k1")
        assert value is image and tuple(mask.shape) == (2, 4, 5) and float(mask.min()) == 1.0 and ids == "x,y"
        assert BatchInput.execute(field="seed", kind="int", item="k1")[0] == 7
        assert BatchInput.execute(field="seed", kind="string", item="k1")[0] == "7"
        assert BatchInput.execute(field="seed", kind="float", item="", default="2.5")[0] == 2.5
        with pytest.raises(ValidationError, match="no field `prompt`"):
            BatchInput.execute(field="prompt", kind="string", item="k1")
        with pytest.raises(ValidationError, match="must be an int"):
            BatchInput.execute(field="name", kind="int", item="k1")
        with pytest.raises(NodeExecutionError, match="nodeloom batch"):
            BatchInput.execute(field="image", kind="image", item="")
        with pytest.raises(NodeExecutionError, match="stale"):
            BatchInput.execute(field="image", kind="image", item="gone")
    item_store(services).discard("k1")
    assert len(item_store(services)) == 0


def test_batch_input_turns_loader_uint8_into_unit_floats(tmp_path):
    services = Services(FolderPaths(tmp_path))
    pixels = torch.tensor([0, 51, 255], dtype=torch.uint8).reshape(1, 1, 1, 3).expand(2, 2, 2, 3).contiguous()
    valid = torch.zeros(2, 2, 2, dtype=torch.bool)
    valid[:, 0] = True
    item_store(services).put("k2", {"image": pixels}, mask=valid, ids=["a", "b"])
    with activate_services(services):
        image, mask, _ = BatchInput.execute(field="image", kind="image", item="k2")
    assert image.dtype == torch.float32 and image[0, 0, 0].tolist() == pytest.approx([0.0, 0.2, 1.0])
    assert mask.dtype == torch.float32 and mask[:, 0].min() == 1.0 and mask[:, 1].max() == 0.0
    assert pixels.dtype == torch.uint8  # the stored batch is left as it was


def test_batch_score_and_to_floats():
    ui = BatchScore.execute(score=torch.tensor([1.0, float("nan")]), name="q").ui
    assert ui == {"batch_scores": [{"name": "q", "values": [1.0, None]}]}
    assert to_floats("[1, 2.5]") == [1.0, 2.5] and to_floats(3) == [3.0] and to_floats([torch.tensor(2.0)]) == [2.0]
    with pytest.raises(ValidationError, match="JSON list"):
        to_floats("high")
    with pytest.raises(ValidationError, match="must not be empty"):
        BatchScore.execute(score=1.0, name=" ")


def test_nodes_run_in_the_engine_and_default_without_a_batch(tmp_path):
    engine = Engine(base_dir=tmp_path)
    prompt = {
        "1": {"class_type": "BatchInput", "inputs": {"field": "seed", "kind": "int", "item": "", "default": "11"}},
        "2": {"class_type": "BatchScore", "inputs": {"score": ["1", 0], "name": "seed"}},
    }
    result = engine.run(prompt)
    assert result.status == "success"
    assert result.outputs["2"]["batch_scores"] == [{"name": "seed", "values": [11.0]}]
    info = engine.object_info("BatchInput")["BatchInput"]
    assert info["category"] == "utils/batch" and info["output"][0] == "*"
    engine.close()
