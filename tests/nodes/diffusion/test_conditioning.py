"""CLIPTextEncode: weighting moves exactly the weighted tokens, long prompts chunk, SDXL pools."""

import torch

from nodeloom.diffusion.prompt import apply_weights
from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode, ConditioningCombine
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple, CLIPSetLastLayer


def _encode(text, ckpt="tiny_sd1.safetensors", clip=None):
    clip = clip or CheckpointLoaderSimple.execute(ckpt)[1]
    return CLIPTextEncode.execute(text, clip)[0][0]


def test_weight_changes_only_the_weighted_tokens_by_comfyui_rule(diffusion_services):
    plain, _ = _encode("a cat photo")
    weighted, _ = _encode("a (cat:1.5) photo")
    empty, _ = _encode("")
    assert plain.shape == weighted.shape == (1, 77, 32)
    # tokens: <start> a cat photo <end> ... — only position 2 (cat) moves
    expected = apply_weights(plain, empty, torch.tensor([[1.0, 1.0, 1.5] + [1.0] * 74]))
    assert torch.allclose(weighted, expected, atol=1e-5)
    changed = (weighted - plain).abs().amax(dim=-1)[0]
    assert changed[2] > 1e-4 and torch.all(changed[[0, 1, 3, 4]] < 1e-6)


def test_emphasis_and_deemphasis_follow_the_11_factor(diffusion_services):
    plain, _ = _encode("a cat photo")
    empty, _ = _encode("")
    up, _ = _encode("a (cat) photo")
    down, _ = _encode("a [cat] photo")
    for got, w in ((up, 1.1), (down, 1 / 1.1)):
        expected = apply_weights(plain, empty, torch.tensor([[1.0, 1.0, w] + [1.0] * 74]))
        assert torch.allclose(got, expected, atol=1e-5)


def test_weight_one_is_identity(diffusion_services):
    assert torch.equal(_encode("a (cat:1.0) photo")[0], _encode("a cat photo")[0])


def test_long_prompt_is_encoded_in_77_token_chunks(diffusion_services):
    cond, extra = _encode(" ".join(["cat"] * 100))
    assert cond.shape == (1, 154, 32)
    assert extra["pooled_output"].shape == (1, 32)


def test_sdxl_concatenates_both_encoders_and_pools_the_second(diffusion_services):
    cond, extra = CLIPTextEncode.execute("a cat", CheckpointLoaderSimple.execute("tiny_sdxl.safetensors")[1])[0][0]
    assert cond.shape == (1, 77, 32 + 64)
    assert extra["pooled_output"].shape == (1, 32)


def test_clip_set_last_layer_changes_the_encoding_without_touching_the_input(diffusion_services):
    clip = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")[1]
    skipped = CLIPSetLastLayer.execute(clip, -2)[0]
    assert clip.layer is None and skipped.layer == -2
    assert not torch.allclose(_encode("a cat", clip=clip)[0], _encode("a cat", clip=skipped)[0])


def test_conditioning_combine_keeps_both_entries(diffusion_services):
    clip = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")[1]
    a, b = CLIPTextEncode.execute("a", clip)[0], CLIPTextEncode.execute("b", clip)[0]
    assert len(ConditioningCombine.execute(a, b)[0]) == 2


def test_textual_inversion_embedding_stands_in_for_its_vectors(diffusion_services):
    from safetensors.torch import save_file

    from nodeloom.diffusion.tokenizer import clip_tokenizer

    clip = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")[1]
    table = clip.encoders[0].embeddings.token_embedding.weight
    ids = clip_tokenizer()("red car", add_special_tokens=False).input_ids
    folder = diffusion_services.paths.models_dir / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": table[ids].detach().clone()}, str(folder / "redcar.safetensors"))
    via_embedding, _ = _encode("a embedding:redcar, (embedding:redcar:1.2)", clip=clip)
    via_words, _ = _encode("a red car, (red car:1.2)", clip=clip)
    assert torch.allclose(via_embedding, via_words, atol=1e-6)
    assert clip.encoders[0].embeddings.token_embedding.num_embeddings == 49408  # the table is restored


def test_missing_embedding_names_it_and_the_folder(diffusion_services):
    import pytest

    from nodeloom.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="nothere") as info:
        _encode("embedding:nothere")
    assert "embeddings" in str(info.value)
