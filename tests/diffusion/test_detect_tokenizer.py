import pytest
import torch

from nodeloom.diffusion.detect import detect_checkpoint
from nodeloom.diffusion.tokenizer import clip_tokenizer, write_tokenizer_files
from nodeloom.errors import ValidationError
from nodeloom.testing.tiny_sd import _ldm_state_dict, tiny_components


@pytest.mark.parametrize(("kind", "family", "inpaint"),
                         [("sd1", "sd1", False), ("sd1_inpaint", "sd1", True), ("sd2", "sd2", False), ("sdxl", "sdxl", False)])
def test_detect_family_and_exact_configs(kind, family, inpaint):
    parts = tiny_components(kind)
    info = detect_checkpoint(_ldm_state_dict(parts), f"{kind}.safetensors")
    assert (info.family, info.inpaint) == (family, inpaint)
    unet = parts["unet"].config
    for key in ("block_out_channels", "layers_per_block", "in_channels", "cross_attention_dim", "down_block_types",
                "up_block_types", "use_linear_projection"):
        assert list(info.configs["unet"][key]) == list(unet[key]) if isinstance(unet[key], (list, tuple)) else info.configs["unet"][key] == unet[key]
    assert info.configs["vae"]["block_out_channels"] == list(parts["vae"].config.block_out_channels)
    assert info.configs["text_encoder"]["hidden_size"] == parts["text_encoder"].config.hidden_size
    assert info.latent_scale == (0.13025 if family == "sdxl" else 0.18215)


def test_not_a_checkpoint_is_rejected_with_its_name():
    with pytest.raises(ValidationError, match="lora.safetensors"):
        detect_checkpoint({"lora_unet_x.lora_up.weight": torch.zeros(1)}, "lora.safetensors")


def test_tokenizer_is_clip_bpe_built_offline(tmp_path):
    tok = clip_tokenizer()
    assert len(tok) == 49408
    assert tok("a photo of an astronaut").input_ids == [49406, 320, 1125, 539, 550, 18376, 49407]
    folder = write_tokenizer_files(tmp_path / "tok")
    assert (folder / "vocab.json").is_file() and (folder / "merges.txt").read_text().startswith("#version")
