"""ReferenceMultiLatent on a tiny Flux.2 VAE: the same latents as VAEEncode → ReferenceLatent per
image on both conditionings, the "resize" scaling, the VAE-less pass-through and its square empty
latent, bad inputs named, and its declaration as ComfyUI writes it (the Flux edit templates' wiring)."""

from __future__ import annotations

import math

import pytest
import torch

from nodeloom.diffusion.flux2_vae import Flux2Vae
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion import NODE_CLASS_MAPPINGS as NODES
from nodeloom.ops.resample import upscale_image
from nodeloom.testing.tiny_flux2 import _tiny_vae


@pytest.fixture(scope="module")
def vae() -> Flux2Vae:
    torch.set_num_threads(1)
    return Flux2Vae(_tiny_vae(0))


def _cond(value: float) -> list:
    return [[torch.full((1, 2, 4), value), {"pooled_output": torch.zeros(1, 4)}]]


def _chain(conditioning: list, vae: Flux2Vae, images: list[torch.Tensor]) -> list:
    for image in images:
        (latent,) = NODES["VAEEncode"]().execute(image, vae)
        (conditioning,) = NODES["ReferenceLatent"]().execute(conditioning, latent)
    return conditioning


def test_keep_resolution_matches_vae_encode_and_reference_latent_per_image(vae):
    gen = torch.Generator().manual_seed(0)
    first, second = torch.rand(1, 32, 48, 3, generator=gen), torch.rand(1, 16, 16, 3, generator=gen)
    pos, neg, empty = NODES["ReferenceMultiLatent"]().execute(
        _cond(1.0), "keep resolution", _cond(-1.0), vae, **{"images.image1": second, "images.image0": first})
    for ours, base in ((pos, _cond(1.0)), (neg, _cond(-1.0))):
        theirs = _chain(base, vae, [first, second])
        refs, want = ours[0][1]["reference_latents"], theirs[0][1]["reference_latents"]
        assert [r.shape for r in refs] == [(1, 128, 2, 3), (1, 128, 1, 1)]
        assert all(torch.equal(a, b) for a, b in zip(refs, want, strict=True))
        assert torch.equal(ours[0][0], base[0][0]) and "pooled_output" in ours[0][1]
    assert torch.equal(empty["samples"], torch.zeros(1, 128, 2, 3))


def test_references_append_after_existing_ones_and_negative_defaults_to_positive(vae):
    old = torch.ones(1, 128, 1, 1)
    positive = [[torch.zeros(1, 2, 4), {"reference_latents": [old]}]]
    image = torch.rand(1, 16, 32, 4)  # an alpha channel is dropped, as VAEEncode drops it
    pos, neg, _ = NODES["ReferenceMultiLatent"]().execute(positive, {"resolution": "keep resolution"}, None, vae,
                                                          **{"images.image0": image})
    refs = pos[0][1]["reference_latents"]
    assert len(refs) == 2 and refs[0] is old and torch.equal(refs[1], vae.encode(image))
    assert neg is pos and positive[0][1]["reference_latents"] == [old]


def test_resize_scales_each_image_to_the_megapixels_in_vae_steps(vae):
    image = torch.rand(1, 30, 50, 3, generator=torch.Generator().manual_seed(1))
    megapixels = 0.01
    pos, _, empty = NODES["ReferenceMultiLatent"]().execute(
        _cond(0.0), "resize", None, vae, **{"resolution.megapixels": megapixels, "images.image0": image})
    scale = math.sqrt(megapixels * 1024 * 1024 / (30 * 50))
    w, h = round(50 * scale / 16) * 16, round(30 * scale / 16) * 16
    assert (w, h) == (128, 80)
    (ref,) = pos[0][1]["reference_latents"]
    assert torch.equal(ref, vae.encode(upscale_image(image, w, h, "lanczos", "disabled")))
    assert empty["samples"].shape == (1, 128, h // 16, w // 16)


def test_without_vae_or_images_the_conditionings_pass_through_with_a_square_empty_latent(vae):
    node = NODES["ReferenceMultiLatent"]()
    positive, negative = _cond(1.0), _cond(2.0)
    pos, neg, empty = node.execute(positive, "keep resolution", negative, None, **{"images.image0": torch.rand(1, 8, 8, 3)})
    assert pos is positive and neg is negative and empty["samples"].shape == (1, 4, 128, 128)
    pos, neg, empty = node.execute(positive, "resize", None, vae, **{"resolution.megapixels": 0.25})
    assert pos is positive and neg is positive and empty["samples"].shape == (1, 4, 64, 64)
    assert not empty["samples"].any()


def test_bad_inputs_are_named(vae):
    node = NODES["ReferenceMultiLatent"]()
    with pytest.raises(ValidationError, match="images.image0.*IMAGE"):
        node.execute(_cond(0), "keep resolution", None, vae, **{"images.image0": torch.zeros(8, 8)})
    with pytest.raises(ValidationError, match="`resolution` must be one of"):
        node.execute(_cond(0), "stretch", None, vae)
    with pytest.raises(ValidationError, match="megapixels"):
        node.execute(_cond(0), "resize", None, vae, **{"resolution.megapixels": 0.0})


def test_declaration_is_comfyuis(image_engine):
    info = image_engine.object_info()["ReferenceMultiLatent"]
    assert info["display_name"] == "Set Reference Multi Latent"
    assert info["category"] == "advanced/conditioning/edit_models"
    assert info["input_order"]["required"] == ["positive", "resolution", "images"]
    assert info["input_order"]["optional"] == ["negative", "vae"]
    kind, opts = info["input"]["required"]["resolution"]
    assert kind == "COMFY_DYNAMICCOMBO_V3" and [o["key"] for o in opts["options"]] == ["keep resolution", "resize"]
    mp = opts["options"][1]["inputs"]["required"]["megapixels"]
    assert mp[0] == "FLOAT" and (mp[1]["default"], mp[1]["min"], mp[1]["max"]) == (1.0, 0.01, 16.0)
    kind, opts = info["input"]["required"]["images"]
    assert kind == "COMFY_AUTOGROW_V3" and opts["template"]["prefix"] == "image"
    assert (opts["template"]["min"], opts["template"]["max"]) == (1, 100)
    assert opts["template"]["input"]["optional"]["image"][0] == "IMAGE"
    assert info["output"] == ["CONDITIONING", "CONDITIONING", "LATENT"]
    assert info["output_name"] == ["positive", "negative", "empty_latent"]
