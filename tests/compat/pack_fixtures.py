"""Shared pieces of the fixture packs written by the compat tests."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nodeloom.core.graph_builder import GraphBuilder
from nodeloom.engine import Engine

#: An output node that keeps a LATENT (so sampling nodes become outputs of a prompt).
KEEP_LATENT = """
class KeepLatent:
    OUTPUT_NODE = True
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"latent": ("LATENT",)}}
    RETURN_TYPES = ()
    FUNCTION = "keep"
    CATEGORY = "test"

    def keep(self, latent):
        return {"ui": {"shape": list(latent["samples"].shape)}}
"""


def pack_engine(tmp_path: Path, name: str, source: str, models_dir: Path) -> Iterator[Engine]:
    """An engine over ``models_dir`` with one pack ``name`` whose ``__init__.py`` is ``source``."""
    pack = tmp_path / "custom_nodes" / name
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(textwrap.dedent(source) + textwrap.dedent(KEEP_LATENT) +
                                      "\nNODE_CLASS_MAPPINGS['KeepLatent'] = KeepLatent\n")
    with Engine(base_dir=tmp_path / "base", models_dir=models_dir, custom_nodes_dirs=[tmp_path / "custom_nodes"]) as eng:
        yield eng


def sample_tiny(g: GraphBuilder, model: Any, clip: Any) -> Any:
    """A 2-step CFG 5 KSampler run on a 32² empty latent, kept by ``KeepLatent``; returns the sampler node."""
    pos = g.node("CLIPTextEncode", text="a cat", clip=clip)
    neg = g.node("CLIPTextEncode", text="", clip=clip)
    empty = g.node("EmptyLatentImage", width=32, height=32, batch_size=1)
    out = g.node("KSampler", model=model, seed=1, steps=2, cfg=5.0, sampler_name="euler", scheduler="normal",
                 positive=pos.out(0), negative=neg.out(0), latent_image=empty.out(0), denoise=1.0)
    g.node("KeepLatent", latent=out.out(0))
    return out
