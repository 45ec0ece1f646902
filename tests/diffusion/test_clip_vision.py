"""CLIP-vision loading: layouts, sizes from shapes, ComfyUI's output attributes, errors."""

import pytest
import torch
from safetensors.torch import save_file

from nodeloom.errors import ValidationError
from nodeloom.diffusion.clip_vision import load_clip_vision
from nodeloom.testing.tiny_clip_vision import save_vision_file, tiny_vision_model


def _reference(model, image, mean, std):
    """Run the transformers model directly on an image already at the model's size."""
    px = ((image * 255).round() / 255 - torch.tensor(mean)) / torch.tensor(std)
    with torch.no_grad():
        return model(pixel_values=px.movedim(-1, 1), output_hidden_states=True)


@pytest.mark.parametrize("kind,layout,act", [("clip_h", "transformers", "gelu"), ("clip_h", "openclip", "gelu"),
                                             ("clip_l", "openclip", "quick_gelu")])
def test_clip_files_encode_exactly_as_the_transformers_model(tmp_path, kind, layout, act):
    model = tiny_vision_model(kind, seed=1)
    cv = load_clip_vision(save_vision_file(model, tmp_path / "cv.safetensors", layout))
    assert cv.spec.config["hidden_act"] == act and cv.image_size == 28
    assert cv.spec.config["num_hidden_layers"] == model.config.num_hidden_layers
    img = torch.rand(2, 28, 28, 3, generator=torch.Generator().manual_seed(2))
    out = cv.encode_image(img)
    ref = _reference(model, img, cv.image_mean, cv.image_std)
    assert len(ref.hidden_states) == model.config.num_hidden_layers + 1  # embeddings, then each layer
    assert out.last_hidden_state.shape == (2, 17, 32) and out.image_embeds.shape == (2, 24)
    torch.testing.assert_close(out.last_hidden_state, ref.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.penultimate_hidden_states, ref.hidden_states[-2], atol=1e-5, rtol=0)
    torch.testing.assert_close(out["image_embeds"], ref.image_embeds, atol=1e-5, rtol=0)
    assert out.mm_projected is None


def test_siglip_follows_comfyuis_output_conventions(tmp_path):
    model = tiny_vision_model("siglip", seed=3)
    cv = load_clip_vision(save_vision_file(model, tmp_path / "sigclip.safetensors"))
    assert cv.spec.model_type == "siglip_vision_model" and cv.image_mean == [0.5, 0.5, 0.5]
    img = torch.rand(1, 28, 28, 3, generator=torch.Generator().manual_seed(4))
    out = cv.encode_image(img)
    ref = _reference(model, img, cv.image_mean, cv.image_std)
    torch.testing.assert_close(out.last_hidden_state, ref.last_hidden_state, atol=1e-5, rtol=0)
    assert out.all_hidden_states.shape == (1, 3, 16, 32)
    torch.testing.assert_close(out.all_hidden_states, torch.stack(ref.hidden_states[1:], dim=1), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.penultimate_hidden_states, ref.hidden_states[-2], atol=1e-5, rtol=0)
    assert out.image_embeds is out.last_hidden_state


def test_a_llava_projector_in_the_file_gives_mm_projected(tmp_path):
    model = tiny_vision_model("clip_h", seed=5)
    path = save_vision_file(model, tmp_path / "llava.safetensors")
    from safetensors.torch import load_file

    sd = load_file(str(path))
    gen = torch.Generator().manual_seed(0)
    proj = {"multi_modal_projector.linear_1.weight": torch.randn(40, 32, generator=gen),
            "multi_modal_projector.linear_1.bias": torch.randn(40, generator=gen),
            "multi_modal_projector.linear_2.weight": torch.randn(40, 40, generator=gen),
            "multi_modal_projector.linear_2.bias": torch.randn(40, generator=gen)}
    save_file({**sd, **proj}, str(path))
    out = load_clip_vision(path).encode_image(torch.rand(1, 28, 28, 3))
    pen = out.penultimate_hidden_states[:, 1:]
    hidden = torch.nn.functional.gelu(pen @ proj["multi_modal_projector.linear_1.weight"].T + proj["multi_modal_projector.linear_1.bias"])
    want = hidden @ proj["multi_modal_projector.linear_2.weight"].T + proj["multi_modal_projector.linear_2.bias"]
    torch.testing.assert_close(out.mm_projected, want, atol=1e-4, rtol=1e-4)


def test_larger_images_are_resized_before_encoding(tmp_path):
    cv = load_clip_vision(save_vision_file(tiny_vision_model("clip_h"), tmp_path / "cv.safetensors"))
    out = cv.encode_image(torch.rand(3, 64, 100, 3), crop=False)
    assert out.last_hidden_state.shape == (3, 17, 32)


def test_a_file_that_is_not_clip_vision_is_named_with_a_hint(tmp_path):
    path = tmp_path / "RealESRGAN_x4plus.safetensors"
    save_file({"conv_first.weight": torch.zeros(8, 3, 3, 3), "body.0.rdb1.conv1.weight": torch.zeros(4, 8, 3, 3)}, str(path))
    with pytest.raises(ValidationError) as info:
        load_clip_vision(path)
    assert "`RealESRGAN_x4plus.safetensors` is not a CLIP-vision model" in str(info.value)
    assert "UpscaleModelLoader" in str(info.value)


def test_a_file_missing_tensors_names_them(tmp_path):
    model = tiny_vision_model("clip_h")
    path = save_vision_file(model, tmp_path / "partial.safetensors")
    from safetensors.torch import load_file

    sd = {k: v for k, v in load_file(str(path)).items() if "layers.1.mlp" not in k}
    save_file(sd, str(path))
    with pytest.raises(ValidationError, match="`partial.safetensors` lacks 4 tensor"):
        load_clip_vision(path)


def test_dinov2_files_encode_as_comfyui_reads_them(tmp_path):
    model = tiny_vision_model("dinov2", seed=6)
    path = save_vision_file(model, tmp_path / "dino.safetensors")
    from safetensors.torch import load_file

    assert "encoder.layer.0.attention.attention.query.weight" in load_file(str(path))  # the released layout
    cv = load_clip_vision(path)
    assert cv.spec.model_type == "dinov2" and cv.image_size == 28 and cv.image_mean == [0.485, 0.456, 0.406]
    assert cv.spec.config["num_attention_heads"] == 2 and cv.spec.config["mlp_ratio"] == 2
    img = torch.rand(2, 28, 28, 3, generator=torch.Generator().manual_seed(7))
    out = cv.encode_image(img)
    ref = _reference(model, img, cv.image_mean, cv.image_std)
    torch.testing.assert_close(out.last_hidden_state, ref.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.penultimate_hidden_states, ref.hidden_states[-2], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.image_embeds, ref.last_hidden_state[:, 0], atol=1e-5, rtol=0)


def test_dinov2_giant_swiglu_width_gives_its_mlp_ratio():
    from nodeloom.diffusion.clip_vision_layout import _swiglu_ratio

    assert _swiglu_ratio(1536, 8192) == 4  # ViT-g/14: weights_in is [8192, 1536]
    assert _swiglu_ratio(1536, 1000) is None
