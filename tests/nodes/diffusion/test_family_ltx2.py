"""LTX-2 audio-video generation on tiny random weights saved as users download them: the
all-in-one checkpoint through CheckpointLoaderSimple (AV transformer, text connectors, video VAE)
and the transformer alone through UNETLoader, Gemma 3 + the checkpoint's projection through
LTXAVTextEncoderLoader, the video and audio latents joined by LTXVConcatAVLatent, stepped
as one by SamplerCustomAdvanced and KSampler, split by LTXVSeparateAVLatent; the official
template's text-to-video graph through the Engine and a live server writing an MP4 with an audio
stream (read back by PyAV); parity with diffusers' LTX2Pipeline on both latents; the nodes' rules."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.av_latent import NestedLatent, pack, unpack
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.ltx2_nodes import LTXVConcatAVLatent, LTXVSeparateAVLatent
from nodeloom.testing.tiny_ltx2 import LTX2_NEGATIVE as NEGATIVE
from nodeloom.testing.tiny_ltx2 import LTX2_POSITIVE as POSITIVE
from nodeloom.testing.tiny_ltx2 import build_tiny_ltx2_av
from nodeloom.testing.tiny_ltx2 import ltx2_t2v_workflow as _workflow
from tests.nodes.diffusion.family_helpers import engine_for, run_ok, run_served

SEED = 10


@pytest.fixture(scope="module")
def ltx2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_ltx2_av(root)


def _pipeline_latents(parts: dict, steps: int = 4) -> tuple[torch.Tensor, ...]:
    """LTX2Pipeline's latents (denormalised, as it returns them) for the same prompts and seed."""
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline

    def stacked(text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Gemma's stacked states of the prompt's tokens, left-padded to 1024 with the padding masked."""
        ids = parts["tokenizer"](text, return_tensors="pt").input_ids
        with torch.no_grad():
            states = torch.stack(parts["gemma"](input_ids=ids, output_hidden_states=True).hidden_states, -1).flatten(2)
        n = states.shape[1]
        mask = torch.zeros(1, 1024, dtype=torch.long)
        mask[:, -n:] = 1
        return torch.cat([states.new_zeros(1, 1024 - n, states.shape[2]), states], 1), mask

    (pe, pm), (ne, nm) = stacked(POSITIVE), stacked(NEGATIVE)
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1,
                                                time_shift_type="exponential")
    video_vae = parts["video_vae"]
    pipe = LTX2Pipeline(scheduler=scheduler, vae=video_vae, audio_vae=parts["audio_vae"], text_encoder=None,
                        tokenizer=None, connectors=parts["connectors"], transformer=parts["transformer"],
                        vocoder=parts["vocoder"])
    out = pipe(prompt_embeds=pe, prompt_attention_mask=pm, negative_prompt_embeds=ne, negative_prompt_attention_mask=nm,
               height=64, width=64, num_frames=9, frame_rate=25.0, num_inference_steps=steps, guidance_scale=3.0,
               audio_guidance_scale=3.0, stg_scale=0.0, audio_stg_scale=0.0, modality_scale=1.0,
               audio_modality_scale=1.0, guidance_rescale=0.0, audio_guidance_rescale=0.0,
               spatio_temporal_guidance_blocks=None, generator=torch.Generator().manual_seed(SEED),
               output_type="latent", return_dict=False)
    return out[0], out[1], video_vae


def test_template_graph_writes_an_mp4_with_audio_and_matches_ltx2_pipeline(tmp_path: Path,
                                                                           ltx2: tuple[Path, dict]) -> None:
    """Noise: float32 ``torch.randn`` from one CPU generator seeded with the noise seed, the video
    latent [1,128,2,2,2] drawn first, then the audio latent [1,8,9,16] (LTX2Pipeline's order with
    ``generator``). Prompts: ours are the projected features of the prompt's tokens, padded with the
    connectors' registers to 1024; the pipeline gets Gemma's states left-padded to 1024, masked.
    The pipeline returns denormalised latents; ours are compared after the same denormalisation."""
    import av

    from nodeloom.diffusion.ltx2_audio import LTX2AudioVae

    root, parts = ltx2
    with engine_for(tmp_path, root) as engine:
        result = run_ok(engine, _workflow(parts))
    video, audio = result.value("80", 0)["samples"], result.value("80", 1)["samples"]
    assert video.shape == (1, 128, 2, 2, 2) and audio.shape == (1, 8, 9, 16)
    with av.open(str(tmp_path / "output" / "video" / "LTX-2_00001_.mp4")) as clip:
        stream = clip.streams.video[0]
        assert len(list(clip.decode(stream))) == 9 and float(stream.average_rate) == 25.0
    with av.open(str(tmp_path / "output" / "video" / "LTX-2_00001_.mp4")) as clip:
        sound = clip.streams.audio[0]
        assert sound.rate == 24000 and sound.channels == 2
        assert sum(frame.samples for frame in clip.decode(sound)) > 0

    ref_video, ref_audio, video_vae = _pipeline_latents(parts)
    mean, std = video_vae.latents_mean.view(1, -1, 1, 1, 1), video_vae.latents_std.view(1, -1, 1, 1, 1)
    assert (video * std + mean - ref_video).abs().max().item() <= 1e-4
    raw_audio = LTX2AudioVae(parts["audio_vae"], parts["vocoder"])._denormalise(audio)
    assert (raw_audio - ref_audio).abs().max().item() <= 1e-4
    assert video.std() > 0.1 and audio.std() > 0.1  # denoised from noise, not passed through


def _model_and_conds(root: Path, parts: dict) -> tuple[object, list, list]:
    from nodeloom.diffusion.split_models import load_diffusion_model, model_value

    module, family = load_diffusion_model(root / "diffusion_models" / parts["unet"])
    gen = torch.Generator().manual_seed(1)
    pos = [[torch.randn(1, 5, 60, generator=gen), {"frame_rate": 25.0}]]
    neg = [[torch.randn(1, 3, 60, generator=gen), {"frame_rate": 25.0}]]
    return model_value(module, family, parts["unet"]), pos, neg


def _joint(frames: int = 2, length: int = 9, mask: torch.Tensor | None = None) -> dict:
    video = {"samples": torch.zeros(1, 128, frames, 2, 2)}
    if mask is not None:
        video["noise_mask"] = mask
    audio = {"samples": torch.zeros(1, 8, length, 16), "type": "audio"}
    return LTXVConcatAVLatent.execute(video, audio)[0]


def test_unet_loader_reads_the_transformer_alone(ltx2: tuple[Path, dict]) -> None:
    root, parts = ltx2
    model, _, _ = _model_and_conds(root, parts)
    assert model.family == "ltx2" and model.extra["joint_latent"]
    ours = model.unet.transformer.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in parts["transformer"].state_dict().items())
    video_conn = model.unet.video_connector.state_dict()
    assert all(torch.equal(video_conn[k[len("video_connector."):]], v)
               for k, v in parts["connectors"].state_dict().items() if k.startswith("video_connector."))


def test_ksampler_steps_the_joint_latent_like_the_custom_sampler(ltx2: tuple[Path, dict]) -> None:
    from nodeloom.diffusion.sampling import sample, sample_sigmas, sampler_sigmas

    root, parts = ltx2
    model, pos, neg = _model_and_conds(root, parts)
    calls, transformer_calls = [], []
    model.unet.video_connector.register_forward_hook(lambda *_: calls.append(1))
    model.unet.transformer.register_forward_hook(lambda *_: transformer_calls.append(1))
    latent = _joint()
    out = sample(model, latent, seed=3, steps=2, cfg=2.0, sampler_name="euler_ancestral", scheduler="simple",
                 positive=pos, negative=neg)
    sigmas = sampler_sigmas(model, "simple", "euler_ancestral", 2)
    ref, _ = sample_sigmas(model, latent, sigmas, seed=3, cfg=2.0, sampler_name="euler_ancestral", positive=pos,
                           negative=neg)
    assert isinstance(out["samples"], NestedLatent)
    video, audio = out["samples"].unbind()
    assert video.shape == (1, 128, 2, 2, 2) and audio.shape == (1, 8, 9, 16)
    assert all(torch.equal(a, b) for a, b in zip(out["samples"].unbind(), ref["samples"].unbind()))
    assert latent["samples"].unbind()[0].abs().sum() == 0  # the input is untouched
    # the prompts (of different lengths) are batched into one call per step, as the pipeline does,
    # and their connector states computed once per run, not at every step
    assert len(transformer_calls) == 4 and len(calls) == 2


def test_image_to_video_keeps_the_encoded_image(ltx2: tuple[Path, dict]) -> None:
    """The i2v template's path: LTXVImgToVideoInplace encodes the image with the LTX-2 video VAE into
    the first latent frame and masks it; through the joint latent that frame stays the image's
    latent exactly, while the other frame and all the audio are generated."""
    from nodeloom.diffusion.ltxv_vae import LtxvVae
    from nodeloom.diffusion.sampling import sample_sigmas
    from nodeloom.nodes.diffusion.ltx_nodes import EmptyLTXVLatentVideo, LTXVImgToVideoInplace

    root, parts = ltx2
    model, pos, neg = _model_and_conds(root, parts)
    vae = LtxvVae(parts["video_vae"])
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(6))
    video = LTXVImgToVideoInplace.execute(vae, image, EmptyLTXVLatentVideo.execute(64, 64, 9, 1)[0], 1.0)[0]
    encoded = vae.encode(image)
    assert torch.equal(video["samples"][:, :, :1], encoded) and video["noise_mask"][0, 0, :, 0, 0].tolist() == [0, 1]
    latent = LTXVConcatAVLatent.execute(video, {"samples": torch.zeros(1, 8, 9, 16), "type": "audio"})[0]
    out, _ = sample_sigmas(model, latent, torch.tensor([1.0, 0.5, 0.0]), seed=4, cfg=1.0, sampler_name="euler",
                           positive=pos, negative=neg)
    sampled, audio = out["samples"].unbind()
    assert torch.allclose(sampled[:, :, :1], encoded, atol=1e-6)
    assert sampled[:, :, 1:].abs().mean() > 0.01 and audio.abs().mean() > 0.01
    separated = LTXVSeparateAVLatent.execute(out)
    assert torch.equal(separated[0]["noise_mask"], video["noise_mask"]) and separated[1]["noise_mask"].eq(1).all()
    assert vae.decode(separated[0]["samples"]).shape == (9, 64, 64, 3)


def test_concat_and_separate_follow_comfyui(ltx2: tuple[Path, dict]) -> None:
    joint = _joint()
    assert isinstance(joint["samples"], NestedLatent) and "noise_mask" not in joint
    video, audio = LTXVSeparateAVLatent.execute(joint)
    assert video["samples"].shape == (1, 128, 2, 2, 2) and audio["samples"].shape == (1, 8, 9, 16)
    assert audio["type"] == "audio"
    # a joint video input keeps its video and takes the new audio, fitted to the old length
    longer = {"samples": torch.ones(1, 8, 12, 16)}
    replaced = LTXVConcatAVLatent.execute(joint, longer)[0]["samples"].unbind()
    assert replaced[1].shape == (1, 8, 9, 16) and replaced[1].eq(1).all()
    shorter = {"samples": torch.ones(1, 8, 6, 16)}
    padded = LTXVConcatAVLatent.execute(joint, shorter)[0]["samples"].unbind()[1]
    assert padded[:, :, :6].eq(1).all() and padded[:, :, 6:].eq(0).all()
    kept = {"samples": torch.ones(1, 8, 6, 16), "noise_mask": torch.zeros(1, 8, 6, 16)}
    mask = LTXVConcatAVLatent.execute(joint, kept)[0]["noise_mask"].unbind()[1]  # the padded tail is generated
    assert mask.shape == (1, 8, 9, 16) and mask[:, :, :6].eq(0).all() and mask[:, :, 6:].eq(1).all()
    # a mask on one side only: the other stream gets ones
    masked = _joint(mask=torch.zeros(1, 1, 2, 1, 1))
    video_mask, audio_mask = masked["noise_mask"].unbind()
    assert video_mask.shape == (1, 1, 2, 1, 1) and audio_mask.shape == (1, 8, 9, 16) and audio_mask.eq(1).all()
    from nodeloom.nodes.diffusion.custom_sampling import DisableNoise, RandomNoise

    noise = RandomNoise.execute(7)[0].generate_noise(joint)  # what packs call on NOISE values
    reference = torch.Generator().manual_seed(7)
    assert torch.equal(noise.unbind()[0], torch.randn(1, 128, 2, 2, 2, generator=reference))
    assert torch.equal(noise.unbind()[1], torch.randn(1, 8, 9, 16, generator=reference))  # video first, then audio
    assert all(not t.any() for t in DisableNoise.execute()[0].generate_noise(joint).unbind())
    from nodeloom.core.cache import nbytes_of

    assert nbytes_of(joint) == (128 * 8 + 8 * 9 * 16) * 4  # the engine's output cache counts both streams
    flat, shapes = pack(joint["samples"].unbind())
    assert flat.shape == (1, 1, 128 * 8 + 8 * 9 * 16)
    assert all(torch.equal(a, b) for a, b in zip(unpack(flat, shapes), joint["samples"].unbind()))


def test_bad_inputs_say_what_was_expected(ltx2: tuple[Path, dict], tmp_path: Path) -> None:
    root, parts = ltx2
    plain_video = {"samples": torch.zeros(1, 128, 2, 2, 2)}
    with pytest.raises(ValidationError, match="not a joint audio-video latent"):
        LTXVSeparateAVLatent.execute(plain_video)
    with pytest.raises(ValidationError, match="batch"):
        LTXVConcatAVLatent.execute(plain_video, {"samples": torch.zeros(2, 8, 9, 16)})
    with pytest.raises(ValidationError, match="length only"):
        LTXVConcatAVLatent.execute(_joint(), {"samples": torch.zeros(1, 4, 9, 16)})
    from nodeloom.diffusion.sampling import sample_sigmas

    model, pos, neg = _model_and_conds(root, parts)
    with pytest.raises(ValidationError, match="LTXVConcatAVLatent"):  # the AV model needs both streams
        sample_sigmas(model, plain_video, torch.tensor([1.0, 0.0]), seed=0, cfg=1.0, sampler_name="euler",
                      positive=pos, negative=None)
    with pytest.raises(ValidationError, match="cannot denoise"):  # a video-only model given a joint latent
        sample_sigmas(model.clone(extra={}), _joint(), torch.tensor([1.0, 0.0]), seed=0, cfg=1.0,
                      sampler_name="euler", positive=pos, negative=None)
    from nodeloom.diffusion.ltx2_text import load_gemma3

    with pytest.raises(ValidationError, match="not a Gemma 3 text encoder"):
        load_gemma3({"model.layers.0.self_attn.q_proj.weight": torch.zeros(4, 4)}, "t5.safetensors")
    from nodeloom.diffusion.split_models import load_text_encoders

    with pytest.raises(ValidationError, match="LTXAVTextEncoderLoader"):  # CLIPLoader names the right loader
        load_text_encoders([root / "text_encoders" / parts["gemma_file"]], "ltxv", [root / "tokenizers"])
    from nodeloom.nodes.diffusion.ltx2_nodes import _projection

    with pytest.raises(ValidationError, match="text feature projection"):
        _projection(root / "text_encoders" / parts["gemma_file"])


def _two_stages(parts: dict, upscaler: str, lora: str, frames: int, rate: float) -> dict:
    """The template's both stages: the first stage's video latent, guides cropped, upscaled 2× by
    the LTX-2 latent upsampler, joined again with the first stage's audio and refined along
    ManualSigmas by the model with a LoRA (the template's distilled LoRA; a random one here); the
    refined estimate is decoded."""
    prompt = _workflow(parts, frames=frames, rate=rate)
    prompt["9"]["inputs"]["steps"] = 2
    prompt.update({
        "81": {"class_type": "LTXVCropGuides", "inputs": {"positive": ["22", 0], "negative": ["22", 1],
                                                          "latent": ["80", 0]}},
        "76": {"class_type": "LatentUpscaleModelLoader", "inputs": {"model_name": upscaler}},
        "84": {"class_type": "LTXVLatentUpsampler", "inputs": {"samples": ["81", 2], "upscale_model": ["76", 0],
                                                               "vae": ["1", 2]}},
        "83": {"class_type": "LTXVConcatAVLatent", "inputs": {"video_latent": ["84", 0], "audio_latent": ["80", 1]}},
        "73": {"class_type": "ManualSigmas", "inputs": {"sigmas": "0.909375, 0.725, 0.421875, 0.0"}},
        "66": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}},
        "67": {"class_type": "RandomNoise", "inputs": {"noise_seed": 0}},
        "68": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name": lora,
                                                               "strength_model": 1.0}},
        "82": {"class_type": "CFGGuider", "inputs": {"model": ["68", 0], "positive": ["81", 0], "negative": ["81", 1],
                                                     "cfg": 1.0}},
        "70": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["67", 0], "guider": ["82", 0],
                                                                 "sampler": ["66", 0], "sigmas": ["73", 0],
                                                                 "latent_image": ["83", 0]}},
        "98": {"class_type": "LTXVSeparateAVLatent", "inputs": {"av_latent": ["70", 1]}},
    })
    prompt["100"]["inputs"]["samples"] = ["98", 0]
    prompt["101"]["inputs"]["samples"] = ["98", 1]
    return prompt


def test_template_two_stages_through_a_live_server(ltx2: tuple[Path, dict], tmp_path: Path) -> None:
    import av

    from nodeloom.testing.tiny_ltx2 import build_tiny_upsamplers

    root, parts = ltx2
    from safetensors.torch import save_file

    upscaler = build_tiny_upsamplers(root)["ltx2"][1]
    (root / "loras").mkdir(exist_ok=True)
    gen = torch.Generator().manual_seed(9)
    save_file({"diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.randn(4, 64, generator=gen),
               "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.randn(64, 4, generator=gen)},
              str(root / "loras" / "ltx2_stage2_lora.safetensors"))
    entry = run_served(tmp_path, root, _two_stages(parts, upscaler, "ltx2_stage2_lora.safetensors", frames=17, rate=24.0))
    files = entry["outputs"]["75"]["images"]
    assert len(files) == 1 and files[0]["filename"].endswith(".mp4")
    with av.open(str(tmp_path / "output" / files[0]["subfolder"] / files[0]["filename"])) as clip:
        video = clip.streams.video[0]
        assert video.frames == 17 and float(video.average_rate) == 24.0
        assert (video.codec_context.width, video.codec_context.height) == (128, 128)  # the 2× stage
        assert clip.streams.audio[0].rate == 24000 and clip.streams.audio[0].channels == 2


def test_comfyui_lora_equals_its_merged_weights(ltx2: tuple[Path, dict], tmp_path: Path) -> None:
    """A LoRA in ComfyUI's LTX-2 layout (``diffusion_model.…``, a video and an audio projection) at
    strength 0.7 (read as LoraLoaderModelOnly reads it) denoises as a file with ``W + 0.7·up·down``
    merged in, on both streams."""
    from safetensors.torch import load_file, save_file

    from tests.nodes.diffusion.family_helpers import lora_pair, write_merged

    root, parts = ltx2
    models = tmp_path / "models"
    for sub in ("diffusion_models", "loras"):
        (models / sub).mkdir(parents=True)
    base = load_file(str(root / "diffusion_models" / parts["unet"]))
    targets = ("transformer_blocks.0.attn1.to_q", "transformer_blocks.1.audio_attn1.to_v")
    lora, merges = {}, {}
    for i, target in enumerate(targets):
        down, up = lora_pair(base, f"model.diffusion_model.{target}.weight", seed=i + 1)
        lora[f"diffusion_model.{target}.lora_A.weight"] = down
        lora[f"diffusion_model.{target}.lora_B.weight"] = up
        merges[f"model.diffusion_model.{target}.weight"] = 0.7 * up @ down
    save_file(lora, str(models / "loras" / "ltx2_lora.safetensors"))
    write_merged(base, merges, models / "diffusion_models" / "merged.safetensors")
    (models / "diffusion_models" / "plain.safetensors").symlink_to(root / "diffusion_models" / parts["unet"])

    from nodeloom.diffusion.lora import LoraPatch, read_lora
    from nodeloom.diffusion.sampling import sample_sigmas
    from nodeloom.diffusion.split_models import load_diffusion_model, model_value

    def latents(unet: Path, lora_file: Path | None) -> NestedLatent:
        module, family = load_diffusion_model(unet)
        model = model_value(module, family, unet.name)
        if lora_file is not None:
            patch = LoraPatch(read_lora(lora_file, module.config, False, "ltx2"), 0.7)
            model = model.clone(loras=(patch,))
        _, pos, neg = _model_and_conds(root, parts)
        out, _ = sample_sigmas(model, _joint(), torch.tensor([1.0, 0.6, 0.0]), seed=2, cfg=2.0, sampler_name="euler",
                               positive=pos, negative=neg)
        return out["samples"]

    dm = models / "diffusion_models"
    with_lora = latents(dm / "plain.safetensors", models / "loras" / "ltx2_lora.safetensors")
    merged = latents(dm / "merged.safetensors", None)
    plain = latents(dm / "plain.safetensors", None)
    for a, b, c in zip(with_lora.unbind(), merged.unbind(), plain.unbind()):
        assert (a - b).abs().max().item() <= 1e-4
        assert (a - c).abs().max().item() > 1e-3  # the LoRA changed both streams
