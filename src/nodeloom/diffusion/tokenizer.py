"""The CLIP BPE tokenizer, built offline from the vocabulary shipped as package data.

Single-file checkpoints carry no tokenizer, and nodeloom never downloads one: the byte-pair
merges list ``data/bpe_simple_vocab_16e6.txt.gz`` (from OpenAI's CLIP repository, MIT licence,
see ``data/CLIP_VOCAB_LICENSE.txt``) is expanded here into the ``vocab.json`` / ``merges.txt``
pair that ``transformers.CLIPTokenizer`` reads. Imports transformers lazily.
"""

from __future__ import annotations

import functools
import gzip
import json
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from nodeloom.errors import require

__all__ = ["BOS_TOKEN_ID", "EOS_TOKEN_ID", "clip_tokenizer", "write_tokenizer_files"]

#: CLIP's vocabulary has 49408 entries: 256 bytes, 256 end-of-word bytes, 48894 merges, 2 specials.
_N_MERGES = 49152 - 256 - 2
BOS_TOKEN_ID = 49406
EOS_TOKEN_ID = 49407


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def _read_merges() -> list[str]:
    data = resources.files("nodeloom.diffusion").joinpath("data/bpe_simple_vocab_16e6.txt.gz").read_bytes()
    lines = gzip.decompress(data).decode("utf-8").split("\n")
    return lines[1 : _N_MERGES + 1]


def write_tokenizer_files(folder: str | Path) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and the tokenizer configs CLIP needs into ``folder``.

    Args:
        folder: target folder (created if missing).

    Returns:
        The folder.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    merges = _read_merges()
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {
        "model_max_length": 77,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
        "tokenizer_class": "CLIPTokenizer",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    (out / "special_tokens_map.json").write_text(
        json.dumps({k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}), encoding="utf-8"
    )
    return out


@functools.lru_cache(maxsize=1)
def _tokenizer_folder() -> Path:
    # One expansion per process: the files are immutable once written.
    return write_tokenizer_files(Path(tempfile.mkdtemp(prefix="nodeloom-clip-tok-")))


def clip_tokenizer() -> Any:
    """A ``transformers.CLIPTokenizer`` for CLIP ViT-L/OpenCLIP text encoders (same BPE).

    Returns:
        The tokenizer (max length 77, pads with ``<|endoftext|>``).
    """
    transformers = require("transformers", "diffusion")
    return transformers.CLIPTokenizer.from_pretrained(str(_tokenizer_folder()), local_files_only=True)
