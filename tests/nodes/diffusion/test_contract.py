"""The diffusion pack keeps ComfyUI's node ids, input names, defaults and ranges; every node is documented."""

import pytest

import nodeloom.nodes.diffusion as pack
from nodeloom.node_api import Node
from tests.nodes.conftest import EMPTY_CATEGORY_IN_COMFYUI

# (input, type or "COMBO", default, min, max) as ComfyUI declares them
COMFY = {
    "KSampler": [("model", "MODEL"), ("seed", "INT", 0, 0, 0xFFFFFFFFFFFFFFFF), ("steps", "INT", 20, 1, 10000),
                 ("cfg", "FLOAT", 8.0, 0.0, 100.0), ("sampler_name", "COMBO"), ("scheduler", "COMBO"),
                 ("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent_image", "LATENT"),
                 ("denoise", "FLOAT", 1.0, 0.0, 1.0)],
    "KSamplerAdvanced": [("model", "MODEL"), ("add_noise", "COMBO"), ("noise_seed", "INT", 0, 0, 0xFFFFFFFFFFFFFFFF),
                         ("steps", "INT", 20, 1, 10000), ("cfg", "FLOAT", 8.0, 0.0, 100.0), ("sampler_name", "COMBO"),
                         ("scheduler", "COMBO"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                         ("latent_image", "LATENT"), ("start_at_step", "INT", 0, 0, 10000),
                         ("end_at_step", "INT", 10000, 0, 10000), ("return_with_leftover_noise", "COMBO")],
    "CheckpointLoaderSimple": [("ckpt_name", "COMBO")],
    "CLIPTextEncode": [("text", "STRING"), ("clip", "CLIP")],
    "EmptyLatentImage": [("width", "INT", 512, 16, 16384), ("height", "INT", 512, 16, 16384), ("batch_size", "INT", 1, 1, 4096)],
    "VAEDecode": [("samples", "LATENT"), ("vae", "VAE")],
    "VAEEncode": [("pixels", "IMAGE"), ("vae", "VAE")],
    "VAEEncodeForInpaint": [("pixels", "IMAGE"), ("vae", "VAE"), ("mask", "MASK"), ("grow_mask_by", "INT", 6, 0, 64)],
    "SetLatentNoiseMask": [("samples", "LATENT"), ("mask", "MASK")],
    "LatentUpscale": [("samples", "LATENT"), ("upscale_method", "COMBO"), ("width", "INT", 512, 0, 16384),
                      ("height", "INT", 512, 0, 16384), ("crop", "COMBO")],
    "LatentUpscaleBy": [("samples", "LATENT"), ("upscale_method", "COMBO"), ("scale_by", "FLOAT", 1.5, 0.01, 8.0)],
    "CLIPSetLastLayer": [("clip", "CLIP"), ("stop_at_clip_layer", "INT", -1, -24, -1)],
    "LoraLoader": [("model", "MODEL"), ("clip", "CLIP"), ("lora_name", "COMBO"), ("strength_model", "FLOAT", 1.0, -100.0, 100.0),
                   ("strength_clip", "FLOAT", 1.0, -100.0, 100.0)],
    "LoraLoaderModelOnly": [("model", "MODEL"), ("lora_name", "COMBO"), ("strength_model", "FLOAT", 1.0, -100.0, 100.0)],
    "ControlNetLoader": [("control_net_name", "COMBO")],
    "ControlNetApplyAdvanced": [("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("control_net", "CONTROL_NET"),
                                ("image", "IMAGE"), ("strength", "FLOAT", 1.0, 0.0, 10.0),
                                ("start_percent", "FLOAT", 0.0, 0.0, 1.0), ("end_percent", "FLOAT", 1.0, 0.0, 1.0)],
    "VAELoader": [("vae_name", "COMBO")],
    "DiffusersLoader": [("model_path", "COMBO")],
    "InpaintModelConditioning": [("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("vae", "VAE"),
                                 ("pixels", "IMAGE"), ("mask", "MASK"), ("noise_mask", "BOOLEAN")],
    "VAEEncodeTiled": [("pixels", "IMAGE"), ("vae", "VAE"), ("tile_size", "INT", 512, 64, 4096), ("overlap", "INT", 64, 0, 4096),
                       ("temporal_size", "INT", 64, 8, 4096), ("temporal_overlap", "INT", 8, 4, 4096)],
    "VAEDecodeTiled": [("samples", "LATENT"), ("vae", "VAE"), ("tile_size", "INT", 512, 64, 4096), ("overlap", "INT", 64, 0, 4096),
                       ("temporal_size", "INT", 64, 8, 4096), ("temporal_overlap", "INT", 8, 4, 4096)],
    "Canny": [("image", "IMAGE"), ("low_threshold", "FLOAT", 0.4, 0.01, 0.99), ("high_threshold", "FLOAT", 0.8, 0.01, 0.99)],
    "SamplerCustom": [("model", "MODEL"), ("add_noise", "BOOLEAN"), ("noise_seed", "INT", 0, 0, 0xFFFFFFFFFFFFFFFF),
                      ("cfg", "FLOAT", 8.0, 0.0, 100.0), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                      ("sampler", "SAMPLER"), ("sigmas", "SIGMAS"), ("latent_image", "LATENT")],
    "SamplerCustomAdvanced": [("noise", "NOISE"), ("guider", "GUIDER"), ("sampler", "SAMPLER"), ("sigmas", "SIGMAS"),
                              ("latent_image", "LATENT")],
    "KSamplerSelect": [("sampler_name", "COMBO")],
    "BasicScheduler": [("model", "MODEL"), ("scheduler", "COMBO"), ("steps", "INT", 20, 1, 10000), ("denoise", "FLOAT", 1.0, 0.0, 1.0)],
    "KarrasScheduler": [("steps", "INT", 20, 1, 10000), ("sigma_max", "FLOAT", 14.614642, 0.0, 5000.0),
                        ("sigma_min", "FLOAT", 0.0291675, 0.0, 5000.0), ("rho", "FLOAT", 7.0, 0.0, 100.0)],
    "ExponentialScheduler": [("steps", "INT", 20, 1, 10000), ("sigma_max", "FLOAT", 14.614642, 0.0, 5000.0),
                             ("sigma_min", "FLOAT", 0.0291675, 0.0, 5000.0)],
    "PolyexponentialScheduler": [("steps", "INT", 20, 1, 10000), ("sigma_max", "FLOAT", 14.614642, 0.0, 5000.0),
                                 ("sigma_min", "FLOAT", 0.0291675, 0.0, 5000.0), ("rho", "FLOAT", 1.0, 0.0, 100.0)],
    "LaplaceScheduler": [("steps", "INT", 20, 1, 10000), ("sigma_max", "FLOAT", 14.614642, 0.0, 5000.0),
                         ("sigma_min", "FLOAT", 0.0291675, 0.0, 5000.0), ("mu", "FLOAT", 0.0, -10.0, 10.0),
                         ("beta", "FLOAT", 0.5, 0.0, 10.0)],
    "SDTurboScheduler": [("model", "MODEL"), ("steps", "INT", 1, 1, 10), ("denoise", "FLOAT", 1.0, 0, 1.0)],
    "BetaSamplingScheduler": [("model", "MODEL"), ("steps", "INT", 20, 1, 10000), ("alpha", "FLOAT", 0.6, 0.0, 50.0),
                              ("beta", "FLOAT", 0.6, 0.0, 50.0)],
    "VPScheduler": [("steps", "INT", 20, 1, 10000), ("beta_d", "FLOAT", 19.9, 0.0, 5000.0),
                    ("beta_min", "FLOAT", 0.1, 0.0, 5000.0), ("eps_s", "FLOAT", 0.001, 0.0, 1.0)],
    "AddNoise": [("model", "MODEL"), ("noise", "NOISE"), ("sigmas", "SIGMAS"), ("latent_image", "LATENT")],
    "SamplerEulerAncestral": [("eta", "FLOAT", 1.0, 0.0, 100.0), ("s_noise", "FLOAT", 1.0, 0.0, 100.0)],
    "SamplerEulerAncestralCFGPP": [("eta", "FLOAT", 1.0, 0.0, 1.0), ("s_noise", "FLOAT", 1.0, 0.0, 10.0)],
    "SamplerDPMPP_2S_Ancestral": [("eta", "FLOAT", 1.0, 0.0, 100.0), ("s_noise", "FLOAT", 1.0, 0.0, 100.0)],
    "SamplerDPMPP_SDE": [("eta", "FLOAT", 1.0, 0.0, 100.0), ("s_noise", "FLOAT", 1.0, 0.0, 100.0),
                         ("r", "FLOAT", 0.5, 0.0, 100.0), ("noise_device", "COMBO")],
    "SamplerDPMPP_2M_SDE": [("solver_type", "COMBO"), ("eta", "FLOAT", 1.0, 0.0, 100.0), ("s_noise", "FLOAT", 1.0, 0.0, 100.0),
                            ("noise_device", "COMBO")],
    "SamplerDPMPP_3M_SDE": [("eta", "FLOAT", 1.0, 0.0, 100.0), ("s_noise", "FLOAT", 1.0, 0.0, 100.0), ("noise_device", "COMBO")],
    "SamplerLMS": [("order", "INT", 4, 1, 100)],
    "SplitSigmas": [("sigmas", "SIGMAS"), ("step", "INT", 0, 0, 10000)],
    "SplitSigmasDenoise": [("sigmas", "SIGMAS"), ("denoise", "FLOAT", 1.0, 0.0, 1.0)],
    "FlipSigmas": [("sigmas", "SIGMAS")],
    "SetFirstSigma": [("sigmas", "SIGMAS"), ("sigma", "FLOAT", 136.0, 0.0, 20000.0)],
    "ExtendIntermediateSigmas": [("sigmas", "SIGMAS"), ("steps", "INT", 2, 1, 100), ("start_at_sigma", "FLOAT", -1.0, -1.0, 20000.0),
                                 ("end_at_sigma", "FLOAT", 12.0, 0.0, 20000.0), ("spacing", "COMBO")],
    "SamplingPercentToSigma": [("model", "MODEL"), ("sampling_percent", "FLOAT", 0.0, 0.0, 1.0), ("return_actual_sigma", "BOOLEAN")],
    "RandomNoise": [("noise_seed", "INT", 0, 0, 0xFFFFFFFFFFFFFFFF)],
    "DisableNoise": [],
    "CFGGuider": [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("cfg", "FLOAT", 8.0, 0.0, 100.0)],
    "BasicGuider": [("model", "MODEL"), ("conditioning", "CONDITIONING")],
    "LatentFromBatch": [("samples", "LATENT"), ("batch_index", "INT", 0, 0, 63), ("length", "INT", 1, 1, 64)],
    "RepeatLatentBatch": [("samples", "LATENT"), ("amount", "INT", 1, 1, 64)],
    "LatentComposite": [("samples_to", "LATENT"), ("samples_from", "LATENT"), ("x", "INT", 0, 0, 16384),
                        ("y", "INT", 0, 0, 16384), ("feather", "INT", 0, 0, 16384)],
    "LatentBlend": [("samples1", "LATENT"), ("samples2", "LATENT"), ("blend_factor", "FLOAT", 0.5, 0, 1)],
    "LatentRotate": [("samples", "LATENT"), ("rotation", "COMBO")],
    "LatentFlip": [("samples", "LATENT"), ("flip_method", "COMBO")],
    "LatentCrop": [("samples", "LATENT"), ("width", "INT", 512, 64, 16384), ("height", "INT", 512, 64, 16384),
                   ("x", "INT", 0, 0, 16384), ("y", "INT", 0, 0, 16384)],
    "ConditioningAverage": [("conditioning_to", "CONDITIONING"), ("conditioning_from", "CONDITIONING"),
                            ("conditioning_to_strength", "FLOAT", 1.0, 0.0, 1.0)],
    "ConditioningConcat": [("conditioning_to", "CONDITIONING"), ("conditioning_from", "CONDITIONING")],
    "ConditioningZeroOut": [("conditioning", "CONDITIONING")],
    "ConditioningSetTimestepRange": [("conditioning", "CONDITIONING"), ("start", "FLOAT", 0.0, 0.0, 1.0),
                                     ("end", "FLOAT", 1.0, 0.0, 1.0)],
    "ConditioningSetArea": [("conditioning", "CONDITIONING"), ("width", "INT", 64, 64, 16384), ("height", "INT", 64, 64, 16384),
                            ("x", "INT", 0, 0, 16384), ("y", "INT", 0, 0, 16384), ("strength", "FLOAT", 1.0, 0.0, 10.0)],
    "ConditioningSetAreaPercentage": [("conditioning", "CONDITIONING"), ("width", "FLOAT", 1.0, 0, 1.0),
                                      ("height", "FLOAT", 1.0, 0, 1.0), ("x", "FLOAT", 0, 0, 1.0), ("y", "FLOAT", 0, 0, 1.0),
                                      ("strength", "FLOAT", 1.0, 0.0, 10.0)],
    "ConditioningSetAreaPercentageVideo": [("conditioning", "CONDITIONING"), ("width", "FLOAT", 1.0, 0, 1.0),
                                           ("height", "FLOAT", 1.0, 0, 1.0), ("temporal", "FLOAT", 1.0, 0, 1.0),
                                           ("x", "FLOAT", 0, 0, 1.0), ("y", "FLOAT", 0, 0, 1.0), ("z", "FLOAT", 0, 0, 1.0),
                                           ("strength", "FLOAT", 1.0, 0.0, 10.0)],
    "ConditioningSetAreaStrength": [("conditioning", "CONDITIONING"), ("strength", "FLOAT", 1.0, 0.0, 10.0)],
    "ConditioningSetMask": [("conditioning", "CONDITIONING"), ("mask", "MASK"), ("strength", "FLOAT", 1.0, 0.0, 10.0),
                            ("set_cond_area", "COMBO")],
    "CLIPTextEncodeSDXL": [("clip", "CLIP"), ("width", "INT", 1024, 0, 16384), ("height", "INT", 1024, 0, 16384),
                           ("crop_w", "INT", 0, 0, 16384), ("crop_h", "INT", 0, 0, 16384),
                           ("target_width", "INT", 1024, 0, 16384), ("target_height", "INT", 1024, 0, 16384),
                           ("text_g", "STRING"), ("text_l", "STRING")],
}
RETURNS = {"CheckpointLoaderSimple": ("MODEL", "CLIP", "VAE"), "KSampler": ("LATENT",), "CLIPTextEncode": ("CONDITIONING",),
           "ControlNetApplyAdvanced": ("CONDITIONING", "CONDITIONING"), "LoraLoader": ("MODEL", "CLIP"), "VAEDecode": ("IMAGE",),
           "SamplerCustom": ("LATENT", "LATENT"), "SamplerCustomAdvanced": ("LATENT", "LATENT"), "KSamplerSelect": ("SAMPLER",),
           "BasicScheduler": ("SIGMAS",), "SplitSigmas": ("SIGMAS", "SIGMAS"), "RandomNoise": ("NOISE",),
           "DisableNoise": ("NOISE",), "CFGGuider": ("GUIDER",), "BasicGuider": ("GUIDER",)}


@pytest.mark.parametrize("node_id", sorted(COMFY))
def test_inputs_match_comfyui(node_id):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    required = cls.INPUT_TYPES()["required"]
    assert list(required) == [spec[0] for spec in COMFY[node_id]]
    for name, kind, *numbers in COMFY[node_id]:
        type_spec, opts = required[name][0], required[name][1] if len(required[name]) > 1 else {}
        assert isinstance(type_spec, list) if kind == "COMBO" else type_spec == kind, (node_id, name)
        if numbers:
            assert (opts["default"], opts["min"], opts["max"]) == tuple(numbers), (node_id, name)
    if node_id in RETURNS:
        assert cls.RETURN_TYPES == RETURNS[node_id]


@pytest.mark.parametrize("node_id", sorted(pack.NODE_CLASS_MAPPINGS))
def test_every_node_is_documented(node_id):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    assert issubclass(cls, Node) and cls.DESCRIPTION.strip()
    assert cls.CATEGORY or node_id in EMPTY_CATEGORY_IN_COMFYUI, node_id
    for section in ("required", "optional"):
        for name, entry in cls.INPUT_TYPES().get(section, {}).items():
            assert len(entry) == 2 and entry[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_sampler_and_scheduler_names_are_comfyui_names():
    ksampler = pack.NODE_CLASS_MAPPINGS["KSampler"].INPUT_TYPES()["required"]
    for name in ("euler", "euler_ancestral", "heun", "dpm_2", "lms", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_sde", "ddim", "uni_pc", "lcm"):
        assert name in ksampler["sampler_name"][0]
    for name in ("normal", "karras", "exponential", "simple", "sgm_uniform", "ddim_uniform", "beta"):
        assert name in ksampler["scheduler"][0]
