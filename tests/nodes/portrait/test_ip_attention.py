"""IP-Adapter attention at the UNet level: parity with diffusers' IP-Adapter processors on the
same file, the style and composition types on an SDXL-layout UNet (11 transformer layers), and
the processors restored after a run."""

import copy

import pytest
import torch
from diffusers import UNet2DConditionModel

from nodeloom.diffusion.ip_adapter import _read, image_tokens, load_ip_adapter
from nodeloom.diffusion.ip_attention import IPAdapterPatch, transformer_layers
from nodeloom.testing import tiny_sd
from nodeloom.testing.diffusion_fixtures import no_network, single_thread  # noqa: F401
from nodeloom.testing.tiny_ip_adapter import save_tiny_ip_adapter, tiny_plus_projection

EMBED = 24


@pytest.fixture(autouse=True)
def _guards(no_network, single_thread):  # noqa: F811
    yield


def _embeds(adapter, seed=0):
    out = {"image_embeds": torch.randn(1, EMBED, generator=torch.Generator().manual_seed(seed))}
    return image_tokens(adapter, out, None)


def _patch(adapter, weight_type="linear", weight=1.0, sdxl=False, **kw):
    cond, uncond = _embeds(adapter)
    return IPAdapterPatch(adapter, cond, uncond, weight, weight_type, 1e9, 0.0, sdxl=sdxl, **kw)


def test_unet_output_matches_diffusers_ip_adapter_processors(tmp_path):
    unet = tiny_sd.tiny_components("sd1")["unet"].eval()
    path = save_tiny_ip_adapter(unet, tmp_path / "ipa.safetensors", EMBED, seed=2)
    adapter = load_ip_adapter(path)
    reference = copy.deepcopy(unet)
    reference._load_ip_adapter_weights([_read(path)])
    gen = torch.Generator().manual_seed(1)
    x, ctx = torch.randn(2, 4, 8, 8, generator=gen), torch.randn(2, 7, 32, generator=gen)
    embeds = torch.randn(1, EMBED, generator=gen)
    t = torch.tensor(500.0)
    with torch.no_grad():  # diffusers batches [uncond, cond]; its uncond image embedding is zeros
        expected = reference(x, t, ctx, added_cond_kwargs={"image_embeds": [
            torch.cat([torch.zeros_like(embeds), embeds])[:, None]]}).sample
        cond, uncond = image_tokens(adapter, {"image_embeds": embeds}, None)
        patch = IPAdapterPatch(adapter, cond, uncond, 1.0, "linear", 1e9, 0.0)
        patch.before_call(14.6, [True, False])
        with patch.installed(unet):
            got = unet(x, t, ctx).sample
        plain = unet(x, t, ctx).sample
    assert (expected - plain).abs().max() > 1e-3
    assert (got - expected).abs().max() <= 1e-4


def _sdxl_layout_unet():
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 32, 64), layers_per_block=2, norm_num_groups=8, cross_attention_dim=32,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 2), attention_head_dim=8).eval()


def _touched(unet, patch):
    """The transformer layers whose cross-attention output the patch changes."""
    modules = dict(unet.named_modules())
    cross = [n for n in modules if n.endswith(".attn2")]
    base = {n: modules[n].processor for n in cross}
    touched = set()

    def hook(name):
        def fn(module, args, kwargs, output):
            again = base[name](module, args[0], kwargs.get("encoder_hidden_states"))
            if not torch.equal(again, output):
                touched.add(name.split(".transformer_blocks.")[0])
        return fn

    handles = [modules[n].register_forward_hook(hook(n), with_kwargs=True) for n in cross]
    gen = torch.Generator().manual_seed(4)
    try:
        with torch.no_grad(), patch.installed(unet):
            patch.before_call(5.0, [False])
            unet(torch.randn(1, 4, 8, 8, generator=gen), torch.tensor(400.0), torch.randn(1, 5, 32, generator=gen))
    finally:
        for h in handles:
            h.remove()
    return touched


@pytest.mark.parametrize(("weight_type", "layers"), [
    ("style transfer", {"up_blocks.0.attentions.1"}),
    ("composition", {"down_blocks.2.attentions.1"}),
    ("style and composition", {"up_blocks.0.attentions.1", "down_blocks.2.attentions.1"}),
])
def test_style_and_composition_touch_only_their_sdxl_layers(tmp_path, weight_type, layers):
    unet = _sdxl_layout_unet()
    assert len(transformer_layers(unet)) == 11
    adapter = load_ip_adapter(save_tiny_ip_adapter(unet, tmp_path / "xl.safetensors", EMBED, seed=3))
    processors = {n: m.processor for n, m in unet.named_modules() if n.endswith(".attn2")}
    assert _touched(unet, _patch(adapter, weight_type, sdxl=True)) == layers
    assert _touched(unet, _patch(adapter, "linear", sdxl=True)) == {n for n, _ in transformer_layers(unet)}
    assert {n: m.processor for n, m in unet.named_modules() if n.endswith(".attn2")} == processors


def test_uncond_rows_get_the_uncond_tokens_and_a_wrong_family_is_an_error(tmp_path):
    unet = tiny_sd.tiny_components("sd1")["unet"].eval()
    adapter = load_ip_adapter(save_tiny_ip_adapter(unet, tmp_path / "a.safetensors", EMBED))
    patch = _patch(adapter)
    patch.before_call(1.0, [True, False])
    layer = next(iter(patch.layers(unet).values()))
    rows = patch.batch_tokens(layer, 4)
    assert torch.equal(rows[:2], patch.uncond.expand(2, -1, -1)) and torch.equal(rows[2:], patch.cond.expand(2, -1, -1))
    other = load_ip_adapter(save_tiny_ip_adapter(_sdxl_layout_unet(), tmp_path / "xl.safetensors", EMBED))
    with pytest.raises(Exception, match="cross-attention layers"):
        _patch(other).layers(unet)


def test_a_plus_file_in_the_released_layout_loads_as_its_resampler(tmp_path):
    unet = tiny_sd.tiny_components("sd1")["unet"]
    adapter = load_ip_adapter(save_tiny_ip_adapter(unet, tmp_path / "plus.bin", 32, seed=6, plus=True))
    module, _ = tiny_plus_projection(32, 32, seed=6)
    hidden = torch.randn(2, 17, 32)
    assert adapter.plus
    with torch.no_grad():
        assert torch.equal(adapter.projection(hidden), module(hidden))
    cond, uncond = image_tokens(adapter, {"penultimate_hidden_states": hidden}, {"penultimate_hidden_states": hidden[:1]})
    assert cond.shape == (1, 8, 32) and uncond.shape == (1, 4, 32)  # two images' tokens side by side
