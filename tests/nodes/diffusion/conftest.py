import pytest

from nodeloom.testing.diffusion_fixtures import *  # noqa: F401,F403


@pytest.fixture(autouse=True)
def _guards(no_network, single_thread):
    yield
