"""A tiny random-weight Whisper folder built offline: a byte-level BPE tokenizer with Whisper's
special and timestamp tokens, a 1-layer model, and the generation config Whisper's timestamp
decoding needs. Saved with save_pretrained so the real loading path runs."""

from __future__ import annotations

from pathlib import Path

LANGS = ("en", "de", "fr")


def build_tiny_whisper(folder: Path, seed: int = 0, sizes: dict | None = None) -> Path:
    """Save the model to ``folder``; ``sizes`` overrides WhisperConfig's layer sizes (benchmarks)."""
    import torch
    from tokenizers import AddedToken
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperTokenizer)
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    eot = "<|endoftext|>"
    tok = WhisperTokenizer(vocab=vocab, merges=merges, unk_token=eot, bos_token=eot, eos_token=eot, pad_token=eot)
    specials = (["<|startoftranscript|>"] + [f"<|{lang}|>" for lang in LANGS]
                + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"])
    tok.add_special_tokens({"additional_special_tokens": [AddedToken(s, special=True, normalized=False) for s in specials]})
    tok.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", special=False, normalized=False) for i in range(1501)])
    ids = {s: tok.convert_tokens_to_ids(s) for s in [eot, *specials]}
    cfg = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, d_model=8, max_source_positions=1500,
        max_target_positions=96, pad_token_id=ids[eot], bos_token_id=ids[eot], eos_token_id=ids[eot],
        decoder_start_token_id=ids["<|startoftranscript|>"], begin_suppress_tokens=[220, ids[eot]], suppress_tokens=[])
    for key, value in (sizes or {}).items():
        setattr(cfg, key, value)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(cfg).eval()
    gen = GenerationConfig.from_model_config(cfg)
    gen._from_model_config = False
    gen.lang_to_id = {f"<|{lang}|>": ids[f"<|{lang}|>"] for lang in LANGS}
    gen.task_to_id = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
    gen.is_multilingual = True
    gen.no_timestamps_token_id = ids["<|notimestamps|>"]
    gen.prev_sot_token_id = ids["<|startofprev|>"]
    gen.max_initial_timestamp_index = 50
    model.generation_config = gen
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return folder
