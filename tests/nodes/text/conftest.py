"""Fixtures of the text pack tests: tiny random LMs saved under a models/llm folder."""

from __future__ import annotations

import pytest

from nodeloom.core.context import activate_services
from nodeloom.paths import FolderPaths
from nodeloom.services import Services
from nodeloom.testing.tiny_lm import build_tiny_lm

#: the Mistral-shaped model's window is short so the tests run past it
MISTRAL_WINDOW = 16


@pytest.fixture(scope="session")
def llm_base(tmp_path_factory):
    """A base dir whose models/llm holds `gpt2`, `llama` and `mistral` tiny models."""
    base = tmp_path_factory.mktemp("text_base")
    llm_dir = base / "models" / "llm"
    build_tiny_lm(llm_dir / "gpt2", "gpt2", seed=1)
    build_tiny_lm(llm_dir / "llama", "llama", seed=2)
    build_tiny_lm(llm_dir / "mistral", "mistral", seed=3, sliding_window=MISTRAL_WINDOW)
    build_tiny_lm(llm_dir / "plain", "llama", seed=4, chat_template=False)
    return base


@pytest.fixture(scope="session")
def session_services(llm_base):
    """One Services for the session, so loaded models are shared between tests."""
    return Services(FolderPaths(llm_base), settings={})


@pytest.fixture
def svc(session_services):
    """The shared services, active, with a fresh list collecting custom events."""
    events: list[tuple[str, dict]] = []
    session_services.event_sink = lambda kind, data, client: events.append((kind, data))
    session_services.events = events
    with activate_services(session_services):
        yield session_services
    session_services.event_sink = None
