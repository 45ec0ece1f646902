"""FreeU / FreeU_V2 on a tiny SD 1.x model in the KSampler: neutral factors change nothing, the
defaults change the image, the source MODEL stays unpatched, flow models are refused; a pack's
``set_model_output_block_patch`` runs the same way."""

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.freeu import FreeU, FreeU_V2
from nodeloom.nodes.diffusion.sampling import KSampler


def _sample(chain, model):
    _, pos, neg, latent = chain
    return KSampler.execute(model, 3, 3, 5.0, "euler", "karras", pos, neg, latent, 1.0)[0]["samples"]


def test_freeu_nodes(chain):
    model = chain[0]
    plain = _sample(chain, model)
    assert torch.allclose(_sample(chain, FreeU.execute(model, 1.0, 1.0, 1.0, 1.0)[0]), plain, rtol=1e-5, atol=1e-3)  # FFT round trip
    assert (_sample(chain, FreeU.execute(model, 1.1, 1.2, 0.9, 0.2)[0]) - plain).abs().max() > 1e-4
    v2 = _sample(chain, FreeU_V2.execute(model, 1.3, 1.4, 0.9, 0.2)[0])
    assert (v2 - plain).abs().max() > 1e-4
    assert torch.equal(_sample(chain, model), plain)  # the clone carried the patch, not the source
    assert FreeU.SCHEMA.category == "model_patches/unet" and FreeU_V2.SCHEMA.inputs[1].default == 1.3


def test_pack_output_block_patch_runs_and_other_patches_are_still_refused(chain):
    model = chain[0]
    calls = []

    def patch(h, hsp, options):
        calls.append(options["block"])
        return h, hsp

    patched = model.clone()
    patched.set_model_output_block_patch(patch)
    assert torch.equal(_sample(chain, patched), _sample(chain, model))
    assert calls and calls[0] == ("output", 0)
    other = model.clone()
    other.model_options.setdefault("transformer_options", {})["patches"] = {"input_block_patch": [patch]}
    with pytest.raises(NotImplementedError, match="output-block patches only"):
        _sample(chain, other)


def test_freeu_refuses_models_without_a_unet():
    class FlowLike:
        adapter = object()
        family = "flux"
        unet = torch.nn.Linear(2, 2)

    with pytest.raises(ValidationError, match="FreeU patches UNet models .*; `model` is a flux model"):
        FreeU.execute(FlowLike(), 1.1, 1.2, 0.9, 0.2)
