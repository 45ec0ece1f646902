"""VIDEO and AUDIO through a live server: upload a clip, list it, run LoadVideo → SaveVideo, fetch the result."""

from __future__ import annotations

import io
import math
import urllib.parse

import av
import torch

from nodeloom.ops.video_io import write_video
from tests.server.conftest import request, submit, wait_history
from tests.server.test_files_users import upload


def _clip_bytes(tmp_path) -> bytes:
    t = torch.arange(22050) / 44100
    audio = {"waveform": (0.3 * torch.sin(2 * math.pi * 440 * t)).repeat(2, 1)[None], "sample_rate": 44100}
    frames = torch.linspace(0, 1, 6)[:, None, None, None].expand(6, 16, 24, 3).numpy()
    write_video(frames, tmp_path / "clip.mp4", fps=12, audio=audio)
    return (tmp_path / "clip.mp4").read_bytes()


def test_uploaded_video_loads_saves_and_views(server, tmp_path):
    reply = upload(server.url, "clip.mp4", _clip_bytes(tmp_path), type="input")
    assert reply.status == 200 and reply.json()["name"] == "clip.mp4"
    info = request(server.url, "GET", "/object_info/LoadVideo").json()["LoadVideo"]
    choices, opts = info["input"]["required"]["file"]
    assert "clip.mp4" in choices and opts["video_upload"] is True and info["output"] == ["VIDEO"]
    assert "clip.mp4" in request(server.url, "GET", "/object_info/LoadAudio").json()["LoadAudio"]["input"]["required"]["audio"][0]
    prompt = {"1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
              "2": {"class_type": "Video Slice", "inputs": {"video": ["1", 0], "start_time": 0.25, "duration": 0.0,
                                                            "strict_duration": False}},
              "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "video/served",
                                                          "format": "auto", "codec": "auto"}},
              "4": {"class_type": "LoadAudio", "inputs": {"audio": "clip.mp4"}},
              "5": {"class_type": "SaveAudio", "inputs": {"audio": ["4", 0], "filename_prefix": "audio/served"}}}
    reply = submit(server.url, prompt)
    assert reply.status == 200, reply.body
    entry = wait_history(server.url, reply.json()["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    video = entry["outputs"]["3"]["images"][0]
    query = urllib.parse.urlencode({"filename": video["filename"], "subfolder": video["subfolder"], "type": "output"})
    view = request(server.url, "GET", f"/view?{query}")
    assert view.status == 200 and view.headers["Content-Type"] == "video/mp4"
    with av.open(io.BytesIO(view.body)) as c:
        assert sum(1 for _ in c.decode(c.streams.video[0])) == 3 and len(c.streams.audio) == 1
    sound = entry["outputs"]["5"]["audio"][0]
    query = urllib.parse.urlencode({"filename": sound["filename"], "subfolder": sound["subfolder"], "type": "output"})
    view = request(server.url, "GET", f"/view?{query}")
    with av.open(io.BytesIO(view.body)) as c:
        assert c.streams.audio[0].codec_context.name == "flac"
