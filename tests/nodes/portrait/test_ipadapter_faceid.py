"""FaceID IP-Adapters without the insightface package: a tiny InsightFace-format folder (an
SCRFD-shaped detector and an ArcFace-shaped recognizer, ONNX) under models/insightface, tiny
FaceID and FaceID Plus v2 adapters in the released layout, the tiny SD1 checkpoint. The face's
identity steers the result, weight 0 equals no adapter, the alignment puts the five keypoints on
ArcFace's template, and misuse fails with messages naming what is wrong."""

import numpy as np
import pytest
import torch

from nodeloom.ops.face_align import ARCFACE_POINTS, align_face, decode_scrfd, similarity_transform
from nodeloom.testing import tiny_sd
from nodeloom.testing.tiny_insightface import build_tiny_insightface
from nodeloom.testing.tiny_ip_adapter import save_tiny_faceid_adapter
from tests.nodes.conftest import run_prompt
from tests.nodes.portrait.test_ipadapter import _workflow, ipa_files  # noqa: F401

FACEID = "ip-adapter-faceid_sd15.bin"
PLUS_V2 = "ip-adapter-faceid-plusv2_sd15.bin"
PLUS_V1 = "ip-adapter-faceid-plus_sd15.bin"


@pytest.fixture(scope="module")
def faceid_files(ipa_files):  # noqa: F811
    build_tiny_insightface(ipa_files)
    unet = tiny_sd.tiny_components("sd1")["unet"]
    save_tiny_faceid_adapter(unet, ipa_files / "ipadapter" / FACEID, seed=5)
    save_tiny_faceid_adapter(unet, ipa_files / "ipadapter" / PLUS_V2, seed=6, clip_dim=32)
    save_tiny_faceid_adapter(unet, ipa_files / "ipadapter" / PLUS_V1, seed=6, clip_dim=32)
    return ipa_files


def _face():
    """A bright square on black that the tiny detector takes for one face (one stride-32 cell at 640²)."""
    image = torch.zeros(1, 256, 256, 3)
    image[:, 64:77, 102:116] = 0.9
    return image


def _faceid(adapter=FACEID, key="face", **inputs):
    wf = _workflow(("IPAdapterFaceID", {"weight": 1.0, "weight_faceidv2": 1.0, "weight_type": "linear",
                                        "combine_embeds": "concat", "start_at": 0.0, "end_at": 1.0,
                                        "embeds_scaling": "V only", "insightface": ["if", 0], **inputs}),
                   {"class_type": "IPAdapterModelLoader", "inputs": {"ipadapter_file": adapter}})
    wf["a"]["inputs"]["model"] = ["1", 0]
    wf["a"]["inputs"]["ipadapter"] = ["u", 0]
    wf["img"]["inputs"]["key"] = key
    wf["if"] = {"class_type": "IPAdapterInsightFaceLoader", "inputs": {"provider": "CPU", "model_name": "buffalo_l"}}
    wf["cv"] = {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"}}
    return wf


def _run(engine, wf, sinks=(("k", 0),)):
    tensors = {"face": _face(), "blank": torch.zeros(1, 256, 256, 3), "image": _face()}
    result = run_prompt(engine, wf, tensors, sinks=[list(s) for s in sinks])
    return result


def _latent(engine, wf):
    result = _run(engine, wf, (("k", 0), ("a", 1)) if "a" in wf else (("k", 0),))
    assert result.ok, [(e.get("exception_type"), e.get("exception_message")) for e in result.errors]
    return result


def test_faceid_steers_by_the_face_and_weight_zero_equals_no_adapter(vision_engine, faceid_files):
    plain = _latent(vision_engine, _workflow()).value("k", 0)["samples"]
    result = _latent(vision_engine, _faceid())
    assert (result.value("k", 0)["samples"] - plain).abs().max() > 1e-3
    face = result.value("a", 1)
    assert face.shape == (1, 224, 224, 3) and face.max() > 0.5  # the aligned crop holds the bright "face"
    zero = _latent(vision_engine, _faceid(weight=0.0)).value("k", 0)["samples"]
    # equal to float rounding: this graph runs the sampler beside other nodes' threads, which can
    # split torch's CPU kernels differently (latents here are ~100; the adapter moves them by far more)
    assert torch.allclose(zero, plain, rtol=1e-5, atol=1e-3)


def test_faceid_plus_v2_reads_the_crop_and_weighs_the_identity_shortcut(vision_engine, faceid_files):
    plain = _latent(vision_engine, _workflow()).value("k", 0)["samples"]
    v2 = _latent(vision_engine, _faceid(PLUS_V2, clip_vision=["cv", 0])).value("k", 0)["samples"]
    v2_strong = _latent(vision_engine, _faceid(PLUS_V2, clip_vision=["cv", 0], weight_faceidv2=3.0)).value("k", 0)["samples"]
    v1 = _latent(vision_engine, _faceid(PLUS_V1, clip_vision=["cv", 0])).value("k", 0)["samples"]
    assert (v2 - plain).abs().max() > 1e-3
    assert (v2_strong - v2).abs().max() > 1e-3  # v2 adds the identity tokens scaled by weight_faceidv2
    assert (v1 - v2).abs().max() > 1e-3  # the same weights without the shortcut (a file not named plusv2)
    missing = _run(vision_engine, _faceid(PLUS_V2))
    assert not missing.ok and "`clip_vision` is missing" in str(missing.errors)


def test_clear_errors(vision_engine, faceid_files):
    blank = _run(vision_engine, _faceid(key="blank"))
    assert not blank.ok and "no face" in str(blank.errors)
    wf = _faceid()
    del wf["a"]["inputs"]["insightface"]
    assert "InsightFace Loader" in str(_run(vision_engine, wf).errors)
    wf = _workflow(("IPAdapterAdvanced", {"weight": 1.0, "weight_type": "linear", "combine_embeds": "concat",
                                          "start_at": 0.0, "end_at": 1.0, "embeds_scaling": "V only"}),
                   {"class_type": "IPAdapterModelLoader", "inputs": {"ipadapter_file": FACEID}})
    wf["a"]["inputs"]["model"] = ["1", 0]
    wf["a"]["inputs"]["ipadapter"] = ["u", 0]
    wf["a"]["inputs"]["clip_vision"] = ["cv", 0]
    wf["cv"] = {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"}}
    result = _run(vision_engine, wf)
    assert not result.ok and "FaceID IP-Adapter" in str(result.errors)
    wf = _faceid()
    wf["if"]["inputs"]["model_name"] = "antelopev2"
    result = _run(vision_engine, wf)
    assert not result.ok and "models/insightface/models/antelopev2" in str(result.errors)


def test_alignment_and_detection_decoding():
    rng = np.random.default_rng(0)
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = rng.uniform(0, 100, (5, 2))
    matrix = similarity_transform(src, src @ rot.T + shift)
    assert np.allclose(matrix[:, :2], rot, atol=1e-4) and np.allclose(matrix[:, 2], shift, atol=1e-3)
    image = np.zeros((200, 200, 3), np.uint8)
    points = ARCFACE_POINTS * 1.5 + 20
    for x, y in points.astype(int):
        image[y - 1:y + 2, x - 1:x + 2] = 255
    crop = align_face(image, points, 112)
    for x, y in np.round(ARCFACE_POINTS).astype(int):
        assert crop[y - 1:y + 2, x - 1:x + 2].max() > 100  # each marked point lands on the template
    # one anchor of the stride-32 map of a 64² input fires: box ±1 stride around (32, 32)
    outputs = [np.zeros((2 * (64 // s) ** 2, w), np.float32) for w in (1, 4, 10) for s in (8, 16, 32)]
    outputs[2][6, 0] = 0.9  # stride 32, cell (1, 1), anchor 0
    outputs[5][6] = 1.0
    outputs[8][6] = np.linspace(-0.5, 0.5, 10)
    boxes, scores, kps = decode_scrfd(outputs, 64)
    assert boxes.tolist() == [[0.0, 0.0, 64.0, 64.0]] and scores.tolist() == pytest.approx([0.9])
    assert kps.shape == (1, 5, 2) and kps[0, 0].tolist() == pytest.approx([16.0, 32 + (-0.5 + 1 / 9) * 32])
    with pytest.raises(ValueError, match="9 outputs"):
        decode_scrfd(outputs[:6], 64)
