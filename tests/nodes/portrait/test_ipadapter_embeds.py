"""ComfyUI_IPAdapter_plus's embedding, batch and image-utility nodes on the tiny SD1 checkpoint,
CLIP-vision model and adapters of ``test_ipadapter``: IPAdapterEncoder → IPAdapterEmbeds equals
IPAdapterAdvanced on the same image; IPAdapterCombineEmbeds equals the apply node's
``combine_embeds``; IPAdapterBatch gives latent i image i's tokens; PrepImageForClipVision and
IPAdapterNoise on plain arrays."""

import pytest
import torch

from nodeloom.nodes.portrait.ipadapter_embeds_nodes import IPAdapterCombineEmbeds
from nodeloom.nodes.portrait.ipadapter_util_nodes import IPAdapterNoise, PrepImageForClipVision
from tests.nodes.conftest import run_prompt
from tests.nodes.portrait.test_ipadapter import _photo, _workflow, ipa_files  # noqa: F401

ADV = {"weight": 0.8, "weight_type": "linear", "combine_embeds": "concat", "start_at": 0.0, "end_at": 1.0,
       "embeds_scaling": "V only"}
EMB = {"weight": 0.8, "weight_type": "linear", "start_at": 0.0, "end_at": 1.0, "embeds_scaling": "V only"}


def _run(engine, wf, tensors, batch=1):
    wf["4"]["inputs"]["batch_size"] = batch
    result = run_prompt(engine, wf, tensors, sinks=[["k", 0]])
    assert result.ok, [(e.get("exception_type"), e.get("exception_message")) for e in result.errors]
    return result.value("k", 0)["samples"]


def _embeds_wf(node, inputs, encode_key="image", preset="STANDARD (medium strength)"):
    wf = _workflow((node, inputs), {"class_type": "IPAdapterUnifiedLoader",
                                    "inputs": {"model": ["1", 0], "preset": preset}})
    del wf["a"]["inputs"]["image"]
    wf["enc"] = {"class_type": "IPAdapterEncoder", "inputs": {"ipadapter": ["u", 1], "image": ["e", 0], "weight": 1.0}}
    wf["e"] = {"class_type": "TestTensor", "inputs": {"key": encode_key}}
    wf["a"]["inputs"]["pos_embed"] = ["enc", 0]
    return wf


def test_encoder_then_embeds_equals_the_advanced_node(vision_engine, ipa_files):  # noqa: F811
    tensors = {"image": _photo()}
    for preset in ("STANDARD (medium strength)", "PLUS (high strength)"):
        loader = {"class_type": "IPAdapterUnifiedLoader", "inputs": {"model": ["1", 0], "preset": preset}}
        advanced = _run(vision_engine, _workflow(("IPAdapterAdvanced", ADV), loader), tensors)
        wf = _embeds_wf("IPAdapterEmbeds", EMB, preset=preset)
        embeds = _run(vision_engine, wf, tensors)
        assert torch.allclose(embeds, advanced, atol=1e-6), preset
        wf["a"]["inputs"]["neg_embed"] = ["enc", 1]  # the encoder's negative: zeros, or the black image's states
        assert torch.allclose(_run(vision_engine, wf, tensors), advanced, atol=1e-6), preset
    plain = _run(vision_engine, _workflow(), tensors)
    assert (advanced - plain).abs().max() > 1e-3


def test_combine_embeds_equals_combine_in_the_apply_node(vision_engine, ipa_files):  # noqa: F811
    a, b = _photo(), _photo().flip(2)
    tensors = {"image": a, "ab": torch.cat([a, b]), "a": a, "b": b}  # a key per tensor: outputs are cached by inputs
    wf = _workflow(("IPAdapterAdvanced", {**ADV, "combine_embeds": "average"}))
    wf["img"]["inputs"]["key"] = "ab"
    advanced = _run(vision_engine, wf, tensors)
    wf = _embeds_wf("IPAdapterEmbeds", EMB, encode_key="a")
    wf["enc2"] = {"class_type": "IPAdapterEncoder", "inputs": {"ipadapter": ["u", 1], "image": ["eb", 0], "weight": 1.0}}
    wf["eb"] = {"class_type": "TestTensor", "inputs": {"key": "b"}}
    wf["c"] = {"class_type": "IPAdapterCombineEmbeds", "inputs": {"embed1": ["enc", 0], "embed2": ["enc2", 0],
                                                                 "method": "average"}}
    wf["a"]["inputs"]["pos_embed"] = ["c", 0]
    # images encoded one by one or as a batch differ in float rounding only (latents here are ~100)
    assert torch.allclose(_run(vision_engine, wf, tensors), advanced, rtol=1e-5, atol=1e-3)


def test_combine_methods_on_arrays():
    x = torch.tensor([[1.0, 4.0]])
    y = torch.tensor([[3.0, 2.0]])
    combine = lambda m: IPAdapterCombineEmbeds.execute(x, m, y)[0]  # noqa: E731
    assert combine("concat").shape == (2, 2)
    assert combine("add").tolist() == [[4.0, 6.0]] and combine("subtract").tolist() == [[-2.0, 2.0]]
    assert combine("max").tolist() == [[3.0, 4.0]] and combine("min").tolist() == [[1.0, 2.0]]
    assert combine("average").tolist() == [[2.0, 3.0]]
    assert torch.equal(IPAdapterCombineEmbeds.execute(x, "add")[0], x)  # one embedding: nothing to combine
    with pytest.raises(Exception, match="one kind of adapter"):
        IPAdapterCombineEmbeds.execute(x, "add", torch.zeros(1, 3))


def test_batch_gives_each_latent_its_own_image(vision_engine, ipa_files):  # noqa: F811
    a, b = _photo(), _photo().flip(2)
    tensors = {"image": a, "ab": torch.cat([a, b]), "a": a, "b": b}
    batch_inputs = {k: v for k, v in ADV.items() if k != "combine_embeds"} | {"encode_batch_size": 1}
    wf = _workflow(("IPAdapterBatch", batch_inputs))
    wf["img"]["inputs"]["key"] = "ab"
    both = _run(vision_engine, wf, tensors, batch=2)
    only = {}
    for key in ("a", "b"):
        wf = _workflow(("IPAdapterAdvanced", ADV))
        wf["img"]["inputs"]["key"] = key
        only[key] = _run(vision_engine, wf, tensors, batch=2)
    assert torch.allclose(both[0], only["a"][0], rtol=1e-5, atol=1e-3)
    assert torch.allclose(both[1], only["b"][1], rtol=1e-5, atol=1e-3)
    assert (both[1] - only["a"][1]).abs().max() > 0.1
    wf = _embeds_wf("IPAdapterEmbedsBatch", EMB, encode_key="ab")  # the encoder's two embeddings, one per latent
    assert torch.allclose(_run(vision_engine, wf, tensors, batch=2), both, rtol=1e-5, atol=1e-3)


def test_prep_image_for_clip_vision():
    tall = torch.rand(1, 96, 64, 3)
    (top,) = PrepImageForClipVision.execute(tall, "NEAREST", "top", 0.0)
    assert top.shape == (1, 224, 224, 3)
    (same,) = PrepImageForClipVision.execute(tall[:, :64], "NEAREST", "center", 0.0)
    assert torch.equal(top, same)
    (padded,) = PrepImageForClipVision.execute(torch.ones(1, 96, 64, 3), "BICUBIC", "pad", 0.0)
    assert padded[0, 112, 0].max() < 0.05 and padded[0, 112, 112].min() > 0.95  # black bars left and right
    flat = torch.full((1, 32, 32, 3), 0.5)  # 8-bit pixels truncate, as a float → PIL conversion does: 127
    assert torch.allclose(PrepImageForClipVision.execute(flat, "LANCZOS", "center", 1.0)[0],
                          torch.full((1, 224, 224, 3), 127 / 255))  # sharpening leaves a flat image alone
    (sharp,) = PrepImageForClipVision.execute(tall, "LANCZOS", "center", 1.0)
    (soft,) = PrepImageForClipVision.execute(tall, "LANCZOS", "center", 0.0)
    assert 0.0 <= sharp.min() and sharp.max() <= 1.0 and (sharp - soft).abs().max() > 0.01
    with pytest.raises(Exception, match="crop_position"):
        PrepImageForClipVision.execute(tall, "LANCZOS", "middle", 0.0)


def test_ipadapter_noise():
    image = _photo()
    (fade,) = IPAdapterNoise.execute("fade", 0.5, 0, image)
    assert fade.shape == (1, 224, 224, 3) and torch.equal(fade, IPAdapterNoise.execute("fade", 0.5, 0, image)[0])
    (base,) = IPAdapterNoise.execute("fade", 0.0, 0, image)
    assert (fade - base).abs().mean() > 0.05
    (black,) = IPAdapterNoise.execute("dissolve", 0.0, 0)
    assert torch.equal(black, torch.zeros(1, 224, 224, 3))
    (dissolved,) = IPAdapterNoise.execute("dissolve", 0.5, 0, image)
    assert 0.3 < (dissolved != base).float().mean() < 0.7  # about half the values replaced
    (blurred,) = IPAdapterNoise.execute("gaussian", 0.5, 4, image)
    (sharp,) = IPAdapterNoise.execute("gaussian", 0.5, 0, image)
    assert blurred.diff(dim=2).abs().mean() < sharp.diff(dim=2).abs().mean()
    (shuffled,) = IPAdapterNoise.execute("shuffle", 0.3, 0, image)
    assert shuffled.shape == (1, 224, 224, 3) and 0 <= shuffled.min() and shuffled.max() <= 1
    assert (shuffled - base).abs().mean() > 0.05


def test_reference_tiles_cover_the_image():
    from nodeloom.ops.clip_prep import reference_tiles

    tiles, masks = reference_tiles(torch.rand(1, 64, 64, 3))
    assert len(tiles) == 4 and tiles[0].shape == (1, 256, 256, 3) and masks[0].shape == (1, 512, 512)
    assert torch.allclose(sum(masks), torch.ones(1, 512, 512))  # 2×2 tiles, no overlap
    assert masks[1][0, :256, 256:].min() > 0.999 and masks[1][0, 256:].max() == 0  # tile 2: the top right quarter
    tiles, masks = reference_tiles(torch.rand(1, 64, 200, 3))  # wide: 256 high, 800 wide, 4 overlapping tiles
    assert len(tiles) == 4 and masks[0].shape == (1, 256, 800) and all(t.shape == (1, 256, 256, 3) for t in tiles)
    assert (torch.stack(masks).amax(0) > 0.99).all()
    tiles, _ = reference_tiles(torch.rand(1, 16, 200, 3))  # past 1:4 the long side is cropped to 4 tiles
    assert len(tiles) == 4


def test_tiled_steers_and_a_black_mask_does_not(vision_engine, ipa_files):  # noqa: F811
    inputs = {**{k: v for k, v in ADV.items()}, "sharpening": 0.0}
    tensors = {"image": _photo(), "black": torch.zeros(1, 64, 64)}
    plain = _run(vision_engine, _workflow(), tensors)
    wf = _workflow(("IPAdapterTiled", inputs))
    result = run_prompt(vision_engine, wf, tensors, sinks=[["k", 0], ["a", 1], ["a", 2]])
    assert result.ok, [(e.get("exception_type"), e.get("exception_message")) for e in result.errors]
    assert (result.value("k", 0)["samples"] - plain).abs().max() > 1e-3
    assert result.value("a", 1).shape == (4, 256, 256, 3) and result.value("a", 2).shape == (4, 512, 512)
    wf["a"]["inputs"]["attn_mask"] = ["m", 0]
    wf["m"] = {"class_type": "TestTensor", "inputs": {"key": "black"}}
    assert torch.equal(_run(vision_engine, wf, tensors), plain)
