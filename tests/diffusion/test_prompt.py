import pytest
import torch

from nodeloom.diffusion.prompt import CHUNK, apply_weights, parse_weights, tokenize_weighted
from nodeloom.diffusion.tokenizer import BOS_TOKEN_ID, EOS_TOKEN_ID, clip_tokenizer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a cat", [("a cat", 1.0)]),
        ("a (cat:1.3) dog", [("a ", 1.0), ("cat", 1.3), (" dog", 1.0)]),
        ("(cat)", [("cat", 1.1)]),
        ("((cat))", [("cat", pytest.approx(1.21))]),
        ("[cat]", [("cat", pytest.approx(1 / 1.1))]),
        ("(a (b:2.0))", [("a ", 1.1), ("b", 2.0)]),
        (r"\(literal\)", [("(literal)", 1.0)]),
        ("(time: 10:30)", [("time: 10", 30.0)]),  # ComfyUI's rule: the last colon's number is the weight
        ("unclosed (paren", [("unclosed (paren", 1.0)]),
    ],
)
def test_parse_weights(text, expected):
    assert parse_weights(text) == expected


def test_tokenize_pads_and_chunks_without_splitting_words():
    tok = clip_tokenizer()
    chunks = tokenize_weighted(tok, "a (red:1.5) cat", pad_id=EOS_TOKEN_ID, bos_id=BOS_TOKEN_ID, eos_id=EOS_TOKEN_ID)
    assert len(chunks) == 1 and len(chunks[0]) == CHUNK + 2
    ids = [t for t, _ in chunks[0]]
    assert ids[:5] == [BOS_TOKEN_ID, 320, 736, 2368, EOS_TOKEN_ID]  # <start> a red cat <end>
    assert [w for _, w in chunks[0]][:5] == [1.0, 1.0, 1.5, 1.0, 1.0]
    long = tokenize_weighted(tok, "cat " * 80, pad_id=0, bos_id=BOS_TOKEN_ID, eos_id=EOS_TOKEN_ID)
    assert len(long) == 2 and all(len(c) == CHUNK + 2 for c in long)
    assert long[1][1 + 5 + 1][0] == 0  # second chunk: 5 cats, end, then OpenCLIP pads with 0


def test_apply_weights_moves_away_from_empty():
    z, empty = torch.ones(1, 3, 2) * 3.0, torch.ones(1, 3, 2)
    out = apply_weights(z, empty, torch.tensor([[1.0, 2.0, 0.5]]))
    assert out[0, :, 0].tolist() == [3.0, 5.0, 2.0]
