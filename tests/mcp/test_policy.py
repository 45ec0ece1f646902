"""The policy sandbox: each rule refuses what it should and lets through what it should."""

from __future__ import annotations

import json
import os

import anyio
import pytest
from mcp import Client

from nodeloom.errors import PolicyDeniedError, ValidationError
from nodeloom.mcp_client.policy import Limits, Policy, ServerSpec, load_policy, policy_from_settings
from tests.mcp.pack import image_workflow

TOML = """
read_only = false

[nodes]
deny = ["MCPToolCall"]
deny_categories = ["test/utils"]

[limits]
max_pixels = 1000000
max_steps = 50

[mcp_servers.echo]
command = "python"
args = ["echo_server.py"]
tools = ["echo", "make_*"]
timeout = 5
"""


def _rule(exc_info) -> str:
    return exc_info.value.extra_info["rule"]


def _category(ct):
    return {"TinySolidImage": "test/image", "TinySaveImage": "test/image", "TinyInt": "test/utils"}.get(ct)


def test_defaults_are_sane():
    p = load_policy(None)
    assert not p.read_only and p.limits.max_pixels == 4096 * 4096 and p.limits.max_steps == 200
    assert p.mcp_servers == {}
    with pytest.raises(PolicyDeniedError) as exc:
        p.server("anything")
    assert _rule(exc) == "mcp_servers"


def test_toml_yaml_json_load_the_same_policy(tmp_path):
    import yaml
    import tomllib

    data = tomllib.loads(TOML)
    (tmp_path / "p.toml").write_text(TOML)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "p.json").write_text(json.dumps(data))
    loaded = [load_policy(tmp_path / f"p.{ext}") for ext in ("toml", "yaml", "json")]
    for p in loaded:
        assert p.deny_nodes == ["MCPToolCall"] and p.limits.max_pixels == 1_000_000 and p.limits.max_steps == 50
        assert p.mcp_servers["echo"].args == ["echo_server.py"] and p.mcp_servers["echo"].timeout == 5


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[nodes]\ndenny = []\n", "denny"),
        ("[limits]\nmax_steps = -1\n", "limits.max_steps"),
        ("[nodes]\ndeny = \"X\"\n", "nodes.deny"),
        ("[mcp_servers.x]\nargs = []\n", "exactly one of `command`"),
        ("[mcp_servers.x]\ncommand = \"a\"\nurl = \"http://b\"\n", "exactly one of `command`"),
    ],
)
def test_bad_policy_files_name_the_key(tmp_path, text, needle):
    (tmp_path / "p.toml").write_text(text)
    with pytest.raises(ValidationError) as exc:
        load_policy(tmp_path / "p.toml")
    assert needle in exc.value.message


def test_node_allow_and_deny_lists(tmp_path):
    paths = _paths(tmp_path)
    wf = image_workflow()
    Policy().check_prompt(wf, paths, _category)
    with pytest.raises(PolicyDeniedError) as exc:
        Policy(deny_nodes=["TinySave*"]).check_prompt(wf, paths, _category)
    assert _rule(exc) == "nodes.deny" and "node `2` (TinySaveImage)" in exc.value.message
    with pytest.raises(PolicyDeniedError) as exc:
        Policy(allow_nodes=["TinySolidImage"]).check_prompt(wf, paths, _category)
    assert _rule(exc) == "nodes.allow"
    Policy(allow_nodes=["Tiny*"]).check_prompt(wf, paths, _category)


def test_category_allow_and_deny_use_prefixes(tmp_path):
    paths = _paths(tmp_path)
    wf = image_workflow()
    Policy(allow_categories=["test"]).check_prompt(wf, paths, _category)
    Policy(deny_categories=["test/utils"]).check_prompt(wf, paths, _category)
    with pytest.raises(PolicyDeniedError) as exc:
        Policy(deny_categories=["test"]).check_prompt(wf, paths, _category)
    assert _rule(exc) == "nodes.deny_categories"
    with pytest.raises(PolicyDeniedError) as exc:
        Policy(allow_categories=["image"]).check_prompt(wf, paths, _category)
    assert _rule(exc) == "nodes.allow_categories"
    assert Policy(deny_categories=["test"]).node_allowed("X", "testing") is None  # a prefix is a whole path segment


def test_file_reads_confined_to_input_and_annotated_folders(tmp_path):
    paths = _paths(tmp_path)
    p = Policy()
    (paths.input_dir / "cat.png").write_bytes(b"x")
    assert p.resolve_read("cat.png", paths) == paths.input_dir / "cat.png"
    assert p.resolve_read("sub/cat.png", paths) == paths.input_dir / "sub" / "cat.png"
    assert p.resolve_read("out.png [output]", paths) == paths.output_dir / "out.png"
    for bad in ("../secret.png", "sub/../../secret.png", "/etc/passwd", str(tmp_path / "secret.png"), "..\\secret.png"):
        with pytest.raises(PolicyDeniedError) as exc:
            p.resolve_read(bad, paths)
        assert _rule(exc) == "files.confine"


def test_symlink_escaping_the_input_folder_is_refused(tmp_path):
    paths = _paths(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    os.symlink(outside, paths.input_dir / "link")
    os.symlink(outside / "secret.png", paths.input_dir / "secret.png")
    inside = paths.input_dir / "real"
    inside.mkdir()
    os.symlink(inside, paths.input_dir / "ok_link")
    for bad in ("link/secret.png", "secret.png"):
        with pytest.raises(PolicyDeniedError) as exc:
            Policy().resolve_read(bad, paths)
        assert _rule(exc) == "files.confine"
    assert Policy().resolve_read("ok_link/a.png", paths) == inside / "a.png"


def test_file_inputs_in_workflows_are_checked(tmp_path):
    paths = _paths(tmp_path)
    load = {"1": {"class_type": "LoadImage", "inputs": {"image": "../../etc/passwd"}}}
    with pytest.raises(PolicyDeniedError) as exc:
        Policy().check_prompt(load, paths, lambda ct: None)
    assert _rule(exc) == "files.confine" and "input `image`" in exc.value.message
    wf = image_workflow(prefix="../escape")
    with pytest.raises(PolicyDeniedError) as exc:
        Policy().check_prompt(wf, paths, _category)
    assert _rule(exc) == "files.confine" and "`filename_prefix`" in exc.value.message
    Policy().check_prompt(image_workflow(prefix="batch/run1"), paths, _category)


def test_image_size_and_steps_limits(tmp_path):
    paths = _paths(tmp_path)
    p = Policy(limits=Limits(max_pixels=64 * 64, max_steps=10))
    p.check_prompt(image_workflow(64, 64, steps=10), paths, _category)
    with pytest.raises(PolicyDeniedError) as exc:
        p.check_prompt(image_workflow(65, 64), paths, _category)
    assert _rule(exc) == "limits.max_pixels" and "65×64" in exc.value.message
    with pytest.raises(PolicyDeniedError) as exc:
        p.check_prompt(image_workflow(steps=11), paths, _category)
    assert _rule(exc) == "limits.max_steps"
    Policy(limits=Limits(max_pixels=0, max_steps=0)).check_prompt(image_workflow(10000, 10000, steps=999), paths, _category)


def test_limits_see_coerced_values(make_app):
    app = make_app(Policy(limits=Limits(max_pixels=64 * 64)))
    wf = image_workflow()
    wf["1"]["inputs"]["width"] = "4096"  # a string the validator coerces to an INT
    r = _call(app, "run_workflow", {"workflow": wf})
    assert r.is_error and json.loads(r.content[0].text)["extra_info"]["rule"] == "limits.max_pixels"


def test_output_image_size_is_checked_while_running(make_app):
    """A size that only a link decides escapes the static check; the produced image is caught."""
    app = make_app(Policy(limits=Limits(max_pixels=40 * 40)))
    wf = image_workflow(16, 64)
    wf["3"] = {"class_type": "TinyInt", "inputs": {"value": 64}}
    wf["1"]["inputs"]["width"] = ["3", 0]
    r = _call(app, "run_workflow", {"workflow": wf, "wait_seconds": 20})
    assert r.structured_content["status"] == "error"
    assert r.structured_content["error"]["extra_info"]["rule"] == "limits.max_pixels"


def test_denied_node_refused_by_run_and_hidden_from_search(make_app):
    app = make_app(Policy(deny_nodes=["TinySaveImage"]))
    run = _call(app, "run_workflow", {"workflow": image_workflow()})
    assert run.is_error and json.loads(run.content[0].text)["extra_info"]["rule"] == "nodes.deny"
    report = _call(app, "validate_workflow", {"workflow": image_workflow()}).structured_content
    assert report["ok"] is False and report["policy_error"]["extra_info"]["rule"] == "nodes.deny"
    names = [n["class_type"] for n in _call(app, "search_nodes", {"query": "tiny"}).structured_content["nodes"]]
    assert "TinySaveImage" not in names and "TinySolidImage" in names
    shown = _call(app, "search_nodes", {"query": "tiny", "include_denied": True}).structured_content["nodes"]
    assert {n["class_type"]: n["allowed"] for n in shown}["TinySaveImage"] is False
    assert app.audit.records()[0].outcome == "denied"


def test_read_only_mode_allows_discovery_and_validation_only(make_app, engine):
    app = make_app(Policy(read_only=True))
    assert not _call(app, "search_nodes", {"query": "tiny"}).is_error
    assert _call(app, "validate_workflow", {"workflow": image_workflow()}).structured_content["ok"] is True
    for tool, args in (("run_workflow", {"workflow": image_workflow()}), ("cancel_job", {"job_id": "x"})):
        r = _call(app, tool, args)
        assert r.is_error and json.loads(r.content[0].text)["extra_info"]["rule"] == "read_only"
    assert not list(engine.paths.output_dir.iterdir())


def test_queue_limit(make_app):
    app = make_app(Policy(limits=Limits(max_queued_jobs=1)))

    async def body(c):
        first = await c.call_tool("run_workflow", {"workflow": image_workflow(steps=20, delay=0.05), "wait_seconds": 0})
        second = await c.call_tool("run_workflow", {"workflow": image_workflow(steps=1), "wait_seconds": 0})
        await c.call_tool("get_job", {"job_id": first.structured_content["job_id"], "wait_seconds": 20})
        return second

    second = anyio.run(_client_body(app, body))
    assert second.is_error and json.loads(second.content[0].text)["extra_info"]["rule"] == "limits.max_queued_jobs"


def test_mcp_server_and_tool_allow_lists():
    p = Policy(mcp_servers={"echo": ServerSpec("echo", command="python", tools=["echo", "make_*"])})
    assert p.server("echo", "echo").command == "python"
    assert p.server("echo", "make_image").name == "echo"
    with pytest.raises(PolicyDeniedError) as exc:
        p.server("echo", "delete_everything")
    assert _rule(exc) == "mcp_servers.echo.tools"
    with pytest.raises(PolicyDeniedError) as exc:
        p.server("other", "echo")
    assert _rule(exc) == "mcp_servers"


def test_policy_from_settings(tmp_path, monkeypatch):
    (tmp_path / "p.json").write_text(json.dumps({"read_only": True}))
    assert policy_from_settings({"mcp_policy": str(tmp_path / "p.json")}).read_only
    assert policy_from_settings({"mcp_policy": {"read_only": True}}).read_only
    monkeypatch.setenv("NODELOOM_MCP_POLICY", str(tmp_path / "p.json"))
    assert policy_from_settings({}).read_only
    monkeypatch.delenv("NODELOOM_MCP_POLICY")
    assert not policy_from_settings({}).read_only


# ---------------------------------------------------------------------- helpers


def _paths(tmp_path):
    from nodeloom.paths import FolderPaths

    paths = FolderPaths(tmp_path / "base")
    paths.ensure()
    return paths


def _client_body(app, body):
    async def main():
        async with Client(app.server) as client:
            return await body(client)

    return main


def _call(app, tool, args):
    return anyio.run(_client_body(app, lambda c: c.call_tool(tool, args)))


def test_real_load_image_is_confined_to_the_input_folder(make_app, engine, tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 6), (200, 10, 10)).save(engine.paths.input_dir / "cat.png")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (8, 6)).save(outside / "secret.png")
    os.symlink(outside / "secret.png", engine.paths.input_dir / "sneaky.png")
    app = make_app()

    def workflow(name):
        return {
            "1": {"class_type": "LoadImage", "inputs": {"image": name}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "loaded"}},
        }

    ok = _call(app, "run_workflow", {"workflow": workflow("cat.png"), "wait_seconds": 60})
    assert ok.structured_content["status"] == "success", ok.content[0].text
    assert (ok.structured_content["images"][0]["width"], ok.structured_content["images"][0]["height"]) == (8, 6)
    for bad in ("../elsewhere/secret.png", str(outside / "secret.png"), "sneaky.png"):
        r = _call(app, "run_workflow", {"workflow": workflow(bad)})
        assert r.is_error and json.loads(r.content[0].text)["extra_info"]["rule"] == "files.confine", bad


def test_batch_size_and_in_graph_upscale_cannot_pass_max_pixels(make_app):
    """The policy's limits reach every image a node creates, not only literal sizes and outputs."""
    app = make_app(Policy(limits=Limits(max_pixels=64 * 64, max_batch=4, max_memory_mb=64)))
    empty = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 64, "color": 0}}
    preview = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    r = _call(app, "run_workflow", {"workflow": {"1": empty, "2": preview}})
    assert r.is_error and json.loads(r.content[0].text)["extra_info"]["rule"] == "limits.max_batch"
    empty["inputs"]["batch_size"] = 1
    scale = {"class_type": "ImageScaleBy", "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact", "scale_by": 4.0}}
    down = {"class_type": "ImageScaleBy", "inputs": {"image": ["3", 0], "upscale_method": "nearest-exact", "scale_by": 0.25}}
    wf = {"1": empty, "3": scale, "4": down, "2": {**preview, "inputs": {"images": ["4", 0]}}}
    r = _call(app, "run_workflow", {"workflow": wf})
    assert r.is_error and json.loads(r.content[0].text)["extra_info"]["rule"] == "limits.max_pixels"
    # a factor that only a link decides is caught at the node that scales, while running
    wf["5"] = {"class_type": "PrimitiveFloat", "inputs": {"value": 4.0}}
    wf["3"] = {**scale, "inputs": {**scale["inputs"], "scale_by": ["5", 0]}}
    r = _call(app, "run_workflow", {"workflow": wf, "wait_seconds": 20})
    assert r.structured_content["status"] == "error"
    assert r.structured_content["error"]["extra_info"]["rule"] == "limits.max_pixels"
    assert r.structured_content["error"]["extra_info"]["node_id"] == "3"
