"""Prompt expansion: parsing the model's answer and the PromptExpand node's list handling."""

from __future__ import annotations

import pytest

from nodeloom.errors import ValidationError
from nodeloom.text.prompt_expand import TEMPLATES, PromptTemplate, parse_expansion, render_request

TEMPLATE = PromptTemplate("write prompts", "ugly, blurry")


def test_parse_splits_prompt_and_negative():
    text = "Prompt:  a red fox,  snowy forest, dawn light\nNegative: blurry, watermark"
    assert parse_expansion(text, TEMPLATE) == ("a red fox, snowy forest, dawn light", "blurry, watermark")


def test_parse_falls_back_to_the_template_negative():
    assert parse_expansion("a fox, forest,", TEMPLATE) == ("a fox, forest", "ugly, blurry")
    assert parse_expansion("a fox\nnegative prompt:  ", TEMPLATE) == ("a fox", "ugly, blurry")


def test_render_request():
    assert render_request(" fox ", "ink") == "Idea: fox\nStyle: ink"
    with pytest.raises(ValidationError, match="non-empty idea"):
        render_request("  ")


def test_every_template_has_an_instruction_and_negative():
    assert {"photographic", "illustration", "cinematic", "anime", "minimal"} <= set(TEMPLATES)
    assert all(t.instruction and t.negative for t in TEMPLATES.values())
