"""Text in, text out: prompt formatting, stop strings and streaming over :class:`DecodeLoop`.

:func:`generate_text` formats the prompt (the tokenizer's chat template when it has one
and the caller wants it), runs the loop, decodes the text after every token, cuts at the
first stop string and reports each step to a callback. Text that might be the start of a
stop string (or an unfinished multi-byte character) is held back from the stream until it
is complete, so each update's text extends the previous one. Must not import
the engine; the node layer turns the callback into progress ticks and events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nodeloom.errors import ValidationError
from nodeloom.ops.strings import unescape
from nodeloom.text.decode import DecodeLoop
from nodeloom.text.kv_cache import CacheSpec, cache_bytes
from nodeloom.text.llm import LLM
from nodeloom.text.sampling import SamplingSettings

__all__ = ["GenerationResult", "GenerationSettings", "StreamUpdate", "format_prompt", "generate_text", "parse_stop_strings"]


@dataclass(frozen=True)
class GenerationSettings:
    """Everything that decides the generated text besides the model and prompt."""

    max_new_tokens: int = 64
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    seed: int = 0
    cache: CacheSpec = field(default_factory=CacheSpec)
    stop_strings: tuple[str, ...] = ()
    stop_at_eos: bool = True


@dataclass(frozen=True)
class StreamUpdate:
    """One step of a running generation, as reported to the callback.

    Attributes:
        index: tokens generated so far (1-based).
        total: ``max_new_tokens``.
        token_id: the token just chosen.
        text: the text so far that is safe to show (no partial stop string or character).
        delta: what ``text`` gained since the previous update (the whole text in the rare case
            where decoding more tokens changed earlier text).
    """

    index: int
    total: int
    token_id: int
    text: str
    delta: str


@dataclass
class GenerationResult:
    """What a generation produced.

    Attributes:
        text: the generated text (cut before the first stop string; special tokens dropped).
        token_ids: generated ids (including an eos that ended it).
        stop_reason: ``"eos"``, ``"stop_string"`` or ``"max_new_tokens"``.
        prompt_tokens: length of the encoded prompt.
        step_seconds: wall time of each step (the first includes the prompt's prefill).
        cache_bytes: bytes the KV cache held at the end.
    """

    text: str
    token_ids: list[int]
    stop_reason: str
    prompt_tokens: int
    step_seconds: list[float]
    cache_bytes: int


def parse_stop_strings(text: str) -> tuple[str, ...]:
    r"""Stop strings from a widget: one per line; ``\n`` and ``\t`` escapes are understood.

    Empty lines are ignored, so a stop string cannot be empty.
    """
    out = []
    for line in text.splitlines():
        if line == "":
            continue
        out.append(unescape(line))
    return tuple(dict.fromkeys(out))


def format_prompt(llm: LLM, prompt: str, system_prompt: str = "", use_chat_template: bool = True) -> str:
    """The text the model sees.

    With a chat template (and ``use_chat_template``), the system and user turns are
    rendered by the tokenizer's template with the assistant turn opened. Otherwise the
    system prompt, a blank line and the prompt are concatenated.
    """
    if use_chat_template and llm.has_chat_template:
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append({"role": "user", "content": prompt})
        return llm.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return f"{system_prompt}\n\n{prompt}" if system_prompt else prompt


def _encode(llm: LLM, text: str, templated: bool) -> Any:
    # a rendered chat template already carries its special tokens
    ids = llm.tokenizer(text, return_tensors="pt", add_special_tokens=not templated).input_ids
    if ids.shape[1] == 0:
        bos = llm.tokenizer.bos_token_id if llm.tokenizer.bos_token_id is not None else llm.tokenizer.eos_token_id
        if bos is None:
            raise ValidationError("`prompt` is empty and the tokenizer has no BOS/EOS token to start from")
        ids = ids.new_tensor([[bos]])
    return ids


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best


def _find_stop(text: str, stops: Sequence[str]) -> int:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else -1


def generate_text(
    llm: LLM,
    prompt: str,
    settings: GenerationSettings,
    *,
    system_prompt: str = "",
    use_chat_template: bool = True,
    on_update: Callable[[StreamUpdate], None] | None = None,
) -> GenerationResult:
    """Generate a continuation of ``prompt``.

    Args:
        llm: the loaded model.
        prompt: the user prompt.
        settings: sampling, cache, stop and length settings.
        system_prompt: an optional system instruction.
        use_chat_template: format with the tokenizer's chat template when it has one.
        on_update: called after every token; may raise (e.g. ``Interrupted``) to stop.

    Returns:
        The :class:`GenerationResult`.

    Raises:
        ValidationError: empty prompt without BOS, or a sequence beyond the model's positions.
    """
    templated = use_chat_template and llm.has_chat_template
    input_ids = _encode(llm, format_prompt(llm, prompt, system_prompt, use_chat_template), templated)
    eos = llm.tokenizer.eos_token_id
    loop = DecodeLoop(
        llm.model, input_ids, max_new_tokens=settings.max_new_tokens, sampling=settings.sampling,
        seed=settings.seed, cache=settings.cache,
        eos_ids=[eos] if settings.stop_at_eos and eos is not None else [],
    )
    stops = settings.stop_strings
    ids: list[int] = []
    shown, reason, text = "", "max_new_tokens", ""
    for token in loop:
        ids.append(token)
        text = llm.tokenizer.decode(ids, skip_special_tokens=True)
        cut = _find_stop(text, stops) if stops else -1
        if cut >= 0:
            text, reason = text[:cut], "stop_string"
        elif token in loop.eos_ids:
            reason = "eos"
        # hold back a possible stop-string start and an unfinished multi-byte character ("\ufffd")
        safe = text if reason != "max_new_tokens" else text[: len(text) - _held_back(text, stops)].rstrip("\ufffd")
        if on_update is not None:
            delta = safe[len(shown):] if safe.startswith(shown) else safe
            on_update(StreamUpdate(len(ids), settings.max_new_tokens, token, safe, delta))
        shown = safe
        if reason != "max_new_tokens":
            break
    return GenerationResult(
        text=text, token_ids=ids, stop_reason=reason, prompt_tokens=int(input_ids.shape[1]),
        step_seconds=list(loop.step_seconds), cache_bytes=cache_bytes(loop.cache),
    )
