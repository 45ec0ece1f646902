"""The model inpainter's wiring, checked against a recording stand-in for the diffusion pack."""

import sys
import types

import pytest
import torch

from nodeloom.core.context import activate_services
from nodeloom.errors import MissingDependencyError
from nodeloom.nodes.detail import SEGSDetail
from nodeloom.nodes.detail.backend import call_node
from nodeloom.paths import FolderPaths
from nodeloom.services import Services
from tests.nodes.detail.detail_stubs import two_patch_scene

CALLS = []


def _v1(name, func, outputs):
    def run(self, **kw):
        CALLS.append((name, kw))
        return func(**kw)

    return type(name, (), {"FUNCTION": "run", "RETURN_TYPES": outputs, "run": run})


def _sample(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise):
    x = latent_image["samples"]
    level = (hash((positive, seed)) % 97) / 97.0
    m = latent_image.get("noise_mask")
    m = torch.ones_like(x[:, :1]) if m is None else m.reshape(x.shape[0], 1, *x.shape[2:])
    return ({**latent_image, "samples": x * (1 - m) + level * m},)


FAKE = {
    "CLIPTextEncode": _v1("CLIPTextEncode", lambda text, clip: (f"cond:{text}",), ("CONDITIONING",)),
    "VAEEncode": _v1("VAEEncode", lambda pixels, vae: ({"samples": pixels.permute(0, 3, 1, 2)},), ("LATENT",)),
    "SetLatentNoiseMask": _v1("SetLatentNoiseMask", lambda samples, mask: ({**samples, "noise_mask": mask},), ("LATENT",)),
    "KSampler": _v1("KSampler", _sample, ("LATENT",)),
    "VAEDecode": _v1("VAEDecode", lambda samples, vae: (samples["samples"].permute(0, 2, 3, 1),), ("IMAGE",)),
    "ControlNetApplyAdvanced": _v1(
        "ControlNetApplyAdvanced",
        lambda positive, negative, control_net, image, strength, start_percent, end_percent, vae=None: (positive + "|cn", negative + "|cn"),
        ("CONDITIONING", "CONDITIONING"),
    ),
}


@pytest.fixture()
def fake_pack(monkeypatch, tmp_path):
    module = types.ModuleType("nodeloom.nodes.diffusion")
    module.NODE_CLASS_MAPPINGS = FAKE
    monkeypatch.setitem(sys.modules, "nodeloom.nodes.diffusion", module)
    CALLS.clear()
    with activate_services(Services(FolderPaths(tmp_path))):
        yield


def _segs():
    from nodeloom.ops.detail.segs import mask_to_segs

    image, mask = two_patch_scene()
    return torch.from_numpy(image).unsqueeze(0), mask_to_segs(mask, crop_factor=1.5)


def _detail(**kw):
    base = dict(
        guide_size=64, guide_size_for=True, max_size=128, seed=5, steps=3, cfg=5.0, sampler_name="euler",
        scheduler="normal", denoise=0.5, feather=2, noise_mask=True, force_inpaint=True, cycle=1,
        model="M", clip="C", vae="V", positive="main+", negative="main-",
    )
    base.update(kw)
    image, segs = _segs()
    return image, SEGSDetail.execute(image, segs, **base)


def test_call_sequence_and_prompt_routing(fake_pack):
    image, (segs, out, _, _, mask, notes) = _detail(wildcard="[SEP] a dog", negative_wildcard="ugly")
    assert "backend: model" in notes
    names = [c[0] for c in CALLS]
    assert names.count("KSampler") == 2 and names.count("VAEDecode") == 2
    samplers = [kw for n, kw in CALLS if n == "KSampler"]
    assert samplers[0]["positive"] == "main+" and samplers[1]["positive"] == "cond:a dog"
    assert all(s["negative"] == "cond:ugly" for s in samplers)
    latent = samplers[0]["latent_image"]
    assert latent["noise_mask"].shape[-2:] == latent["samples"].shape[-2:] == (96, 96)  # 24 px box -> guide 64
    assert all(s["denoise"] == 0.5 and s["steps"] == 3 and s["model"] == "M" for s in samplers)
    outside = mask[0] == 0
    assert torch.equal(out[0][outside], image[0][outside])


def test_cycles_and_controlnet(fake_pack):
    _detail(cycle=3, control_net="CN", control_mode="canny")
    names = [c[0] for c in CALLS]
    assert names.count("KSampler") == 6
    assert names.count("ControlNetApplyAdvanced") == 2
    hint = next(kw["image"] for n, kw in CALLS if n == "ControlNetApplyAdvanced")
    assert hint.shape[-1] == 3 and set(torch.unique(hint).tolist()) <= {0.0, 1.0}
    samplers = [kw for n, kw in CALLS if n == "KSampler"]
    assert samplers[0]["positive"] == "main+|cn"
    assert [s["seed"] for s in samplers[:3]] == [samplers[0]["seed"] + i for i in range(3)]


def test_noise_mask_off_and_no_conditioning(fake_pack):
    _detail(noise_mask=False, positive=None, negative=None)
    names = [c[0] for c in CALLS]
    assert "SetLatentNoiseMask" not in names
    assert [kw["text"] for n, kw in CALLS if n == "CLIPTextEncode"] == [""]  # encoded once, shared


def test_missing_diffusion_node_is_clear(monkeypatch):
    module = types.ModuleType("nodeloom.nodes.diffusion")
    module.NODE_CLASS_MAPPINGS = {}
    monkeypatch.setitem(sys.modules, "nodeloom.nodes.diffusion", module)
    with pytest.raises(MissingDependencyError, match="KSampler"):
        call_node("KSampler")


def test_face_detailer_returns_controlnet_hints(fake_pack):
    from nodeloom.nodes.detail import FaceDetailer, MaskDetectorProvider

    image, mask = two_patch_scene()
    (det,) = MaskDetectorProvider.execute(torch.from_numpy(mask).unsqueeze(0), "face")
    kw = dict(
        guide_size=64, guide_size_for=True, max_size=128, seed=5, steps=3, cfg=5.0, sampler_name="euler",
        scheduler="normal", denoise=0.5, feather=2, noise_mask=True, force_inpaint=True, cycle=1,
        model="M", clip="C", vae="V", positive="main+", negative="main-", control_net="CN",
    )
    out = FaceDetailer.execute(torch.from_numpy(image).unsqueeze(0), 0.3, 0, 1.5, 4, bbox_detector=det, **kw)
    cnet = out[5]
    assert len(cnet) == 2 and all(h.shape[1:3] == (96, 96) for h in cnet)  # tile hints = the upscaled crops
    assert out[4][0] == "M" and out[4][6] is det  # detailer_pipe in Impact's order
