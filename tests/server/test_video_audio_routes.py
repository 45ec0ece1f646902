"""VIDEO and AUDIO through a real `nodeloom serve` process: upload a clip, list it, run
LoadVideo → Video Slice → SaveVideo and LoadAudio → SaveAudio, fetch the results with /view;
and the script-to-film example queued over HTTP."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import av
import pytest
import torch

from nodeloom.ops.video_io import write_video
from tests.server.conftest import free_port, request, submit, wait_history
from tests.server.test_files_users import upload

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A `python -m nodeloom serve` process on a free loopback port: ``(url, base_dir)``."""
    base, port = tmp_path_factory.mktemp("serve"), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    with open(base / "server.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "nodeloom", "serve", "--base-dir", str(base), "--port", str(port),
                                 "--cpu", "--verbose", "WARNING"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if request(url, "GET", "/prompt").status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        assert proc.poll() is None, (base / "server.log").read_text()[-2000:]
        yield url, base
    finally:
        proc.terminate()
        proc.wait(30)


def _view(url: str, entry: dict):
    query = urllib.parse.urlencode({"filename": entry["filename"], "subfolder": entry["subfolder"], "type": entry["type"]})
    reply = request(url, "GET", f"/view?{query}")
    assert reply.status == 200, reply.body
    return reply


def _clip_bytes(tmp_path) -> bytes:
    t = torch.arange(22050) / 44100
    audio = {"waveform": (0.3 * torch.sin(2 * math.pi * 440 * t)).repeat(2, 1)[None], "sample_rate": 44100}
    frames = torch.linspace(0, 1, 6)[:, None, None, None].expand(6, 16, 24, 3).numpy()
    write_video(frames, tmp_path / "clip.mp4", fps=12, audio=audio)
    return (tmp_path / "clip.mp4").read_bytes()


def test_uploaded_video_loads_saves_and_views(served, tmp_path):
    url, _ = served
    reply = upload(url, "clip.mp4", _clip_bytes(tmp_path), type="input")
    assert reply.status == 200 and reply.json()["name"] == "clip.mp4"
    info = request(url, "GET", "/object_info/LoadVideo").json()["LoadVideo"]
    choices, opts = info["input"]["required"]["file"]
    assert "clip.mp4" in choices and opts["video_upload"] is True and info["output"] == ["VIDEO"]
    assert "clip.mp4" in request(url, "GET", "/object_info/LoadAudio").json()["LoadAudio"]["input"]["required"]["audio"][0]
    prompt = {"1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
              "2": {"class_type": "Video Slice", "inputs": {"video": ["1", 0], "start_time": 0.25, "duration": 0.0,
                                                            "strict_duration": False}},
              "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "video/served",
                                                          "format": "auto", "codec": "auto"}},
              "4": {"class_type": "LoadAudio", "inputs": {"audio": "clip.mp4"}},
              "5": {"class_type": "SaveAudio", "inputs": {"audio": ["4", 0], "filename_prefix": "audio/served"}}}
    reply = submit(url, prompt)
    assert reply.status == 200, reply.body
    entry = wait_history(url, reply.json()["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    video = entry["outputs"]["3"]["images"][0]
    view = _view(url, video)
    assert view.headers["Content-Type"] == "video/mp4"
    with av.open(io.BytesIO(view.body)) as c:
        assert sum(1 for _ in c.decode(c.streams.video[0])) == 3 and len(c.streams.audio) == 1
    with av.open(io.BytesIO(_view(url, entry["outputs"]["5"]["audio"][0]).body)) as c:
        assert c.streams.audio[0].codec_context.name == "flac"


def test_script_to_film_example_through_the_server(served):
    url, _ = served
    prompt = json.loads((ROOT / "examples" / "workflows" / "video_script_to_film.json").read_text(encoding="utf-8"))
    reply = submit(url, prompt)
    assert reply.status == 200, reply.body
    entry = wait_history(url, reply.json()["prompt_id"], timeout=180)
    assert entry["status"]["status_str"] == "success", entry["status"]
    film = entry["outputs"]["15"]["images"][0]
    with av.open(io.BytesIO(_view(url, film).body)) as c:
        stream = c.streams.video[0]
        assert sum(1 for _ in c.decode(stream)) == 50 and float(stream.average_rate) == 12.0
        assert json.loads(c.metadata["prompt"])["13"]["class_type"] == "FrameSmoother"
    assert entry["outputs"]["16"]["images"][0]["filename"].endswith(".png")  # the drift plot
