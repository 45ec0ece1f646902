"""Prompt expansion templates: a short idea in, a detailed image prompt and negative prompt out.

A template is an instruction for the language model plus a default negative prompt. The
model is asked to answer with the prompt, then a line starting ``Negative:``;
:func:`parse_expansion` splits that answer, and the template's negative is used when the
model gives none. Must not import the engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from nodeloom.errors import ValidationError
from nodeloom.text.generate import GenerationResult, GenerationSettings, StreamUpdate, generate_text
from nodeloom.text.llm import LLM

__all__ = ["TEMPLATES", "PromptTemplate", "expand_idea", "parse_expansion", "render_request"]

_FORMAT = (
    " Answer with the prompt on one line: a comma-separated list of subject, setting, composition, "
    "lighting, colours, style and quality terms. Then write a second line that starts with "
    "'Negative:' and lists what the image must avoid. Write nothing else."
)


@dataclass(frozen=True)
class PromptTemplate:
    """How to expand an idea.

    Attributes:
        instruction: the system instruction (the answer format is appended).
        negative: the negative prompt used when the model writes none.
    """

    instruction: str
    negative: str


TEMPLATES: dict[str, PromptTemplate] = {
    "photographic": PromptTemplate(
        "You turn short ideas into detailed prompts for a photorealistic image generator. Name the camera, "
        "lens, lighting and mood.",
        "blurry, out of focus, low quality, jpeg artifacts, watermark, text, cartoon, painting, deformed, extra limbs",
    ),
    "illustration": PromptTemplate(
        "You turn short ideas into detailed prompts for a digital illustration. Name the medium, line work, "
        "palette and artistic influences.",
        "photo, photorealistic, blurry, low quality, watermark, text, signature, messy lines, deformed",
    ),
    "cinematic": PromptTemplate(
        "You turn short ideas into prompts for a cinematic film still. Describe the shot type, framing, "
        "colour grading, atmosphere and light sources.",
        "flat lighting, amateur, low quality, blurry, watermark, text, oversaturated, deformed",
    ),
    "anime": PromptTemplate(
        "You turn short ideas into prompts for an anime-style image. Describe characters, expressions, "
        "background, palette and the studio-like finish.",
        "photorealistic, 3d render, low quality, blurry, watermark, text, bad anatomy, extra fingers",
    ),
    "minimal": PromptTemplate(
        "You turn short ideas into concise, clear image prompts of at most twenty words.",
        "low quality, blurry, watermark, text",
    ),
}


def render_request(idea: str, style: str = "") -> str:
    """The user turn for one idea (and an optional style note).

    Raises:
        ValidationError: the idea is empty.
    """
    idea = idea.strip()
    if not idea:
        raise ValidationError("`ideas` must contain at least one non-empty idea")
    return f"Idea: {idea}" + (f"\nStyle: {style.strip()}" if style.strip() else "")


def _clean(text: str) -> str:
    text = re.sub(r"^\s*(prompt|positive)\s*:\s*", "", text.strip(), flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", text).strip(" ,;")


def parse_expansion(text: str, template: PromptTemplate) -> tuple[str, str]:
    """Split a model answer into ``(prompt, negative)``.

    Everything before the first ``Negative:`` (any case) is the prompt; the rest of that
    line onward is the negative. Labels and extra whitespace are stripped. A missing or
    empty negative falls back to the template's.
    """
    match = re.search(r"negative(\s+prompt)?\s*:", text, flags=re.IGNORECASE)
    if match is None:
        return _clean(text), template.negative
    negative = _clean(text[match.end():])
    return _clean(text[: match.start()]), negative or template.negative


def expand_idea(
    llm: LLM,
    idea: str,
    template: PromptTemplate,
    settings: GenerationSettings,
    *,
    style: str = "",
    on_update: Callable[[StreamUpdate], None] | None = None,
) -> tuple[str, str, GenerationResult]:
    """Expand one idea with the model.

    Returns:
        ``(prompt, negative, result)``; ``prompt`` is the idea itself when the model's answer
        holds no prompt text (so a downstream encoder never gets an empty prompt).

    Raises:
        ValidationError: empty idea.
    """
    request = render_request(idea, style)
    result = generate_text(llm, request, settings, system_prompt=template.instruction + _FORMAT, on_update=on_update)
    prompt, negative = parse_expansion(result.text, template)
    return prompt or idea.strip(), negative, result
