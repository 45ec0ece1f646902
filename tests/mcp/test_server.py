"""The MCP server driven in-memory by the SDK's own client: tools, progress, images, jobs, resources."""

from __future__ import annotations

import base64
import io
import json

import anyio
from mcp import Client
from PIL import Image

from nodeloom.mcp_client.policy import Limits, Policy
from tests.mcp.pack import image_workflow


def _run(app, body):
    async def main():
        async with Client(app.server) as client:
            return await body(client)

    return anyio.run(main)


def test_lists_tools_with_annotations_and_output_schemas(make_app):
    tools = _run(make_app(), lambda c: c.list_tools())
    by_name = {t.name: t for t in tools.tools}
    assert set(by_name) >= {
        "search_nodes", "describe_node", "list_models", "list_example_workflows", "validate_workflow",
        "convert_workflow", "run_workflow", "get_job", "cancel_job", "list_jobs",
    }
    assert by_name["search_nodes"].annotations.read_only_hint is True
    assert by_name["run_workflow"].annotations.read_only_hint is False
    assert by_name["cancel_job"].annotations.destructive_hint is True
    assert "job_id" in by_name["run_workflow"].output_schema["properties"]
    assert "nodes" in by_name["search_nodes"].output_schema["properties"]


def test_search_and_describe_nodes(make_app):
    async def body(c):
        found = await c.call_tool("search_nodes", {"query": "solid image"})
        paged = await c.call_tool("search_nodes", {"query": "", "category": "test", "limit": 1})
        desc = await c.call_tool("describe_node", {"class_type": "TinySolidImage"})
        missing = await c.call_tool("describe_node", {"class_type": "TinySolidImag"})
        return found, paged, desc, missing

    found, paged, desc, missing = _run(make_app(), body)
    assert found.structured_content["nodes"][0]["class_type"] == "TinySolidImage"
    assert paged.structured_content["total"] == 4 and paged.structured_content["next_offset"] == 1
    inputs = {i["name"]: i for i in desc.structured_content["inputs"]}
    assert inputs["width"]["default"] == 16 and inputs["width"]["max"] == 16384
    assert missing.is_error
    err = json.loads(missing.content[0].text)
    assert err["type"] == "unknown_node_type" and "TinySolidImage" in err["extra_info"]["suggestions"]


def test_validate_broken_workflow_gives_per_node_errors_with_suggestions(make_app):
    wf = image_workflow()
    wf["1"]["inputs"]["widht"] = wf["1"]["inputs"].pop("width")
    wf["3"] = {"class_type": "TinySaveImag", "inputs": {"images": ["1", 0]}}
    async def body(c):
        report = await c.call_tool("validate_workflow", {"workflow": wf})
        run = await c.call_tool("run_workflow", {"workflow": wf})
        return report.structured_content, run, await c.call_tool("list_jobs", {})

    report, run, jobs = _run(make_app(), body)
    assert run.is_error and jobs.structured_content["jobs"] == []
    refused = json.loads(run.content[0].text)
    assert refused["type"] == "invalid_prompt" and set(refused["node_errors"]) == {"1", "3"}
    assert report["ok"] is False and report["format"] == "api"
    node1 = report["node_errors"]["1"]["errors"]
    assert any(e["type"] == "unknown_input" and e["extra_info"]["suggestions"] == ["width"] for e in node1)
    assert any(e["type"] == "required_input_missing" and e["extra_info"]["input_name"] == "width" for e in node1)
    node3 = report["node_errors"]["3"]["errors"]
    assert node3 and "TinySaveImage" in node3[0]["extra_info"]["suggestions"]


def test_validate_good_workflow_and_overrides(make_app):
    async def body(c):
        ok = await c.call_tool("validate_workflow", {"workflow": image_workflow(), "overrides": {"1.width": 24, "Save.filename_prefix": "x"}})
        bad = await c.call_tool("validate_workflow", {"workflow": image_workflow(), "overrides": {"1.widht": 24}})
        listed = await c.call_tool("validate_workflow", {"workflow": image_workflow(), "overrides": ["1.width=5000", "Save.filename_prefix=a b"]})
        return ok, bad, listed

    ok, bad, listed = _run(make_app(Policy(limits=Limits(max_pixels=64 * 64))), body)
    assert listed.structured_content["policy_error"]["extra_info"]["rule"] == "limits.max_pixels"  # 5000 parsed as an INT
    assert ok.structured_content["ok"] is True and ok.structured_content["outputs"] == ["2"]
    assert bad.is_error and "did you mean ['width']" in json.loads(bad.content[0].text)["message"]


def test_convert_api_workflow_roundtrip_and_rejects_non_workflow(make_app):
    async def body(c):
        return await c.call_tool("convert_workflow", {"workflow": image_workflow()}), await c.call_tool("convert_workflow", {"workflow": {"a": 1}})

    good, bad = _run(make_app(), body)
    assert good.structured_content["format"] == "api" and good.structured_content["prompt"]["1"]["class_type"] == "TinySolidImage"
    assert bad.is_error and "neither API format" in json.loads(bad.content[0].text)["message"]


def test_run_workflow_sends_progress_and_returns_thumbnail_and_link(make_app, engine):
    progress = []

    async def body(c):
        async def on_progress(value, total, message):
            progress.append((value, total, message))

        result = await c.call_tool("run_workflow", {"workflow": image_workflow(64, 48, steps=5, delay=0.05), "wait_seconds": 30}, progress_callback=on_progress)
        data = await c.read_resource(result.structured_content["images"][0]["uri"])
        return result, data

    result, data = _run(make_app(), body)
    sc = result.structured_content
    assert not result.is_error and sc["status"] == "success"
    assert sc["images"][0]["width"] == 64 and sc["images"][0]["height"] == 48
    assert sc["images"][0]["uri"].startswith("nodeloom://output/tiny_00001_")
    images = [b for b in result.content if b.type == "image"]
    links = [b for b in result.content if b.type == "resource_link"]
    assert len(images) == 1 and links[0].uri == sc["images"][0]["uri"]
    thumb = Image.open(io.BytesIO(base64.b64decode(images[0].data)))
    assert thumb.size == (64, 48)
    assert len(progress) >= 3 and [p[0] for p in progress] == sorted(p[0] for p in progress)
    assert any("step" in p[2] for p in progress)
    assert progress[-1][:2] == (2.0, 2.0)  # both nodes counted, the image source has no ui output
    full = data.contents[0]
    assert full.mime_type == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(full.blob))).size == (64, 48)


def test_job_flow_timeout_then_get_job_completes(make_app):
    async def body(c):
        first = await c.call_tool("run_workflow", {"workflow": image_workflow(steps=10, delay=0.1), "wait_seconds": 0.1})
        job_id = first.structured_content["job_id"]
        listed = await c.call_tool("list_jobs", {})
        done = await c.call_tool("get_job", {"job_id": job_id, "wait_seconds": 30})
        return first, listed, done

    first, listed, done = _run(make_app(), body)
    assert first.structured_content["status"] in ("queued", "running")
    assert "get_job" in first.content[0].text
    assert listed.structured_content["jobs"][0]["job_id"] == first.structured_content["job_id"]
    assert done.structured_content["status"] == "success" and len(done.structured_content["images"]) == 1


def test_idempotent_retry_runs_once(make_app, engine):
    async def body(c):
        args = {"workflow": image_workflow(steps=3, delay=0.05), "idempotency_key": "k-1", "wait_seconds": 0}
        a = await c.call_tool("run_workflow", args)
        b = await c.call_tool("run_workflow", args)
        done = await c.call_tool("get_job", {"job_id": a.structured_content["job_id"], "wait_seconds": 30})
        c2 = await c.call_tool("run_workflow", {**args, "wait_seconds": 5})
        conflict = await c.call_tool("run_workflow", {**args, "overrides": {"1.width": 8}})
        return a, b, done, c2, conflict

    a, b, done, c2, conflict = _run(make_app(), body)
    assert a.structured_content["job_id"] == b.structured_content["job_id"] == c2.structured_content["job_id"]
    assert b.structured_content["deduplicated"] is True and c2.structured_content["status"] == "success"
    assert len(list(engine.paths.output_dir.glob("tiny_*.png"))) == 1
    assert conflict.is_error and json.loads(conflict.content[0].text)["type"] == "idempotency_key_conflict"


def test_idempotency_key_survives_restart(engine, make_app):
    async def body(c):
        r = await c.call_tool("run_workflow", {"workflow": image_workflow(), "idempotency_key": "once", "wait_seconds": 30})
        return r.structured_content

    first = _run(make_app(), body)
    second = _run(make_app(), body)  # a new server over the same user folder
    assert first["status"] == "success" and second["job_id"] == first["job_id"] and second["deduplicated"]
    assert len(list(engine.paths.output_dir.glob("tiny_*.png"))) == 1


def test_cancel_running_job(make_app):
    async def body(c):
        r = await c.call_tool("run_workflow", {"workflow": image_workflow(steps=50, delay=0.05), "wait_seconds": 0.3})
        cancelled = await c.call_tool("cancel_job", {"job_id": r.structured_content["job_id"]})
        final = await c.call_tool("get_job", {"job_id": r.structured_content["job_id"], "wait_seconds": 10})
        return cancelled, final

    cancelled, final = _run(make_app(), body)
    assert final.structured_content["status"] == "cancelled"


def test_run_time_limit_stops_the_run(make_app):
    app = make_app(Policy(limits=Limits(max_run_seconds=0.3)))
    r = _run(app, lambda c: c.call_tool("run_workflow", {"workflow": image_workflow(steps=100, delay=0.05), "wait_seconds": 20}))
    assert r.structured_content["status"] == "error"
    assert r.structured_content["error"]["extra_info"]["rule"] == "limits.max_run_seconds"


def test_resources_node_doc_policy_and_confined_output(make_app, engine):
    (engine.paths.base_dir / "secret.png").write_bytes(b"not for agents")

    async def body(c):
        doc = await c.read_resource("nodeloom://node/TinySolidImage")
        pol = await c.read_resource("nodeloom://policy")
        errors = []
        for uri in ("nodeloom://output/../secret.png", "nodeloom://output/%2E%2E/secret.png", "nodeloom://output/nothing.png"):
            try:
                await c.read_resource(uri)
            except Exception as exc:  # noqa: BLE001 - any refusal will do; the content must not leak
                errors.append(str(exc))
        return doc, pol, errors

    doc, pol, errors = _run(make_app(), body)
    assert "# TinySolidImage" in doc.contents[0].text and "`width`" in doc.contents[0].text
    assert json.loads(pol.contents[0].text)["read_only"] is False
    assert len(errors) == 3 and not any("not for agents" in e for e in errors)


def test_prompts(make_app):
    async def body(c):
        listed = await c.list_prompts()
        built = await c.get_prompt("build_workflow", {"goal": "a red square"})
        explained = await c.get_prompt("explain_node", {"class_type": "TinySaveImage"})
        return listed, built, explained

    listed, built, explained = _run(make_app(), body)
    assert {p.name for p in listed.prompts} == {"build_workflow", "fix_workflow", "explain_node"}
    assert "a red square" in built.messages[0].content.text
    assert "filename_prefix" in explained.messages[0].content.text


def test_audit_log_records_every_call(make_app, engine):
    app = make_app()

    async def body(c):
        await c.call_tool("search_nodes", {"query": "tiny"})
        await c.call_tool("describe_node", {"class_type": "Nope"})

    _run(app, body)
    records = app.audit.records()
    assert [r.tool for r in records] == ["search_nodes", "describe_node"]
    assert [r.outcome for r in records] == ["ok", "error"]
    assert all(len(r.args_sha256) == 64 and r.who.startswith("memory") for r in records)
    assert (engine.paths.user_dir / "mcp_audit.jsonl").is_file()


def test_example_workflows_from_a_configured_folder(make_app, engine, tmp_path):
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "solid.json").write_text(json.dumps(image_workflow(prefix="example")))
    (examples / "broken.json").write_text("{not json")
    app = make_app(Policy(example_dirs=[str(examples)]))

    async def body(c):
        listed = await c.call_tool("list_example_workflows", {})
        ran = await c.call_tool("run_workflow", {"example": "solid", "wait_seconds": 30})
        typo = await c.call_tool("validate_workflow", {"example": "soild"})
        both = await c.call_tool("validate_workflow", {"example": "solid", "workflow": image_workflow()})
        return listed, ran, typo, both

    listed, ran, typo, both = _run(app, body)
    entry = next(e for e in listed.structured_content["examples"] if e["name"] == "solid")
    assert entry["format"] == "api" and entry["class_types"] == ["TinySaveImage", "TinySolidImage"]
    assert "broken" not in [e["name"] for e in listed.structured_content["examples"]]
    assert ran.structured_content["status"] == "success" and ran.structured_content["images"][0]["filename"].startswith("example_")
    assert typo.is_error and "['solid']" in json.loads(typo.content[0].text)["message"]
    assert both.is_error and "exactly one of" in json.loads(both.content[0].text)["message"]


def test_ui_format_needs_the_converter_or_converts(make_app):
    ui = {
        "nodes": [
            {"id": 1, "type": "TinySolidImage", "mode": 0, "inputs": [], "widgets_values": [16, 16, 0.5, 1, 0.0],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}]},
            {"id": 2, "type": "TinySaveImage", "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
             "widgets_values": ["ui"], "outputs": []},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    }
    r = _run(make_app(), lambda c: c.call_tool("convert_workflow", {"workflow": ui}))
    try:
        import nodeloom.core.workflow_ui  # noqa: F401
    except ImportError:
        assert r.is_error and "nodeloom.core.workflow_ui" in json.loads(r.content[0].text)["message"]
    else:
        assert not r.is_error and r.structured_content["format"] == "ui"
        prompt = r.structured_content["prompt"]
        assert prompt["1"]["class_type"] == "TinySolidImage" and prompt["1"]["inputs"]["width"] == 16
        assert prompt["2"]["inputs"] == {"images": ["1", 0], "filename_prefix": "ui"}


def test_list_models(make_app, engine):
    ckpt = engine.paths.models_dir / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "tiny.safetensors").write_bytes(b"\0")

    async def body(c):
        return await c.call_tool("list_models", {"folder": "checkpoints"}), await c.call_tool("list_models", {}), await c.call_tool("list_models", {"folder": "nope"})

    one, every, bad = _run(make_app(), body)
    assert one.structured_content["folders"] == {"checkpoints": ["tiny.safetensors"]}
    assert "loras" in every.structured_content["folders"]
    assert bad.is_error and "known folders" in json.loads(bad.content[0].text)["message"]


def test_repo_example_runs_with_thumbnail_budget(make_app, engine):
    """The shipped `branching` example (no models) saves five images: four thumbnails, five links."""
    r = _run(make_app(), lambda c: c.call_tool("run_workflow", {"example": "branching", "wait_seconds": 120}))
    sc = r.structured_content
    assert sc["status"] == "success", r.content[0].text
    assert len(sc["images"]) == 5
    assert [b.type for b in r.content].count("image") == 4 and [b.type for b in r.content].count("resource_link") == 5
    for block in (b for b in r.content if b.type == "image"):
        assert len(base64.b64decode(block.data)) <= 48 * 1024


def test_non_image_outputs_are_linked_not_thumbnailed(make_app):
    wf = image_workflow()
    wf["3"] = {"class_type": "TinySaveVideo", "inputs": {"images": ["1", 0], "filename_prefix": "clips/run"}}
    r = _run(make_app(), lambda c: c.call_tool("run_workflow", {"workflow": wf, "wait_seconds": 30}))
    sc = r.structured_content
    assert sc["status"] == "success" and [i["filename"] for i in sc["images"]] == ["tiny_00001_.png"]
    assert sc["files"][0]["mime_type"] == "video/mp4" and sc["files"][0]["uri"] == "nodeloom://output/clips/run_00001.mp4"
    assert [b.type for b in r.content].count("image") == 1
    assert "nodeloom://output/clips/run_00001.mp4" in [b.uri for b in r.content if b.type == "resource_link"]
