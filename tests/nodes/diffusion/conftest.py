import pytest

from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
from nodeloom.nodes.diffusion.latent import EmptyLatentImage
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple

from nodeloom.testing.diffusion_fixtures import *  # noqa: F401,F403


@pytest.fixture(autouse=True)
def _guards(no_network, single_thread):
    yield


@pytest.fixture
def chain(diffusion_services):
    """A tiny SD 1.x model with a positive and a negative prompt and an empty 64² latent (a test
    file may define its own ``chain``)."""
    model, clip, _ = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    pos = CLIPTextEncode.execute("a lighthouse at dusk", clip)[0]
    neg = CLIPTextEncode.execute("blurry", clip)[0]
    return model, pos, neg, EmptyLatentImage.execute(64, 64, 1)[0]
