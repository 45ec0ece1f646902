"""POST /prompt: a missing model's error names the folders searched and the URL the workflow gives."""

from __future__ import annotations

from tests.server.conftest import submit

URL = "https://example.invalid/tiny.safetensors"


def test_missing_checkpoint_names_folder_and_url(server):
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    workflow = {"nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "properties": {
        "models": [{"name": "tiny.safetensors", "url": URL, "directory": "checkpoints"}]}}], "links": []}
    reply = submit(server.url, prompt, extra_data={"extra_pnginfo": {"workflow": workflow}})
    assert reply.status == 400
    (err,) = reply.json()["node_errors"]["1"]["errors"]
    assert err["message"] == "Value not in list" and URL in err["details"] and "checkpoints" in err["details"]
    assert err["extra_info"]["searched"] and err["extra_info"]["url"] == URL
    reply = submit(server.url, prompt, extra_data={"extra_pnginfo": "not an object"})
    (err,) = reply.json()["node_errors"]["1"]["errors"]
    assert reply.status == 400 and err["extra_info"]["url"] is None and "searched:" in err["details"]
