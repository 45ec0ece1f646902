"""PromptExpand: turn a list of short ideas into detailed image prompts and negative prompts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Combo, Node, NodeOutput, Output, Schema, String, services
from nodeloom.nodes.text._common import llm_input, sampling_inputs, settings_from, stream_reporter
from nodeloom.text.llm import LLM
from nodeloom.text.prompt_expand import TEMPLATES, PromptTemplate, expand_idea

__all__ = ["PromptExpand"]


def _first(value: Any, name: str) -> Any:
    """A widget value under INPUT_IS_LIST arrives as a list; its first item is the setting."""
    if isinstance(value, list):
        if not value:
            raise ValidationError(f"`{name}` received an empty list")
        return value[0]
    return value


def _ideas(values: Any) -> list[str]:
    items = values if isinstance(values, list) else [values]
    out = [line.strip() for item in items for line in str(item).splitlines() if line.strip()]
    if not out:
        raise ValidationError("`ideas` must contain at least one non-empty idea (one per line or a list)")
    return out


class PromptExpand(Node):
    """Expand short ideas into detailed image prompts, each with a negative prompt.

    Give one idea per line, or wire a list of strings (e.g. from String to Prompt List):
    every idea is expanded in turn and the outputs are lists in the same order. Idea i
    uses seed + i, so a batch is reproducible and the ideas do not all read alike.
    """

    SCHEMA = Schema(
        node_id="PromptExpand",
        display_name="Prompt Expand (LLM)",
        category="text/llm",
        input_is_list=True,
        inputs=[
            llm_input(),
            String("ideas", "", multiline=True, tooltip="Short ideas, one per line (or a list of strings)."),
            Combo("template", [*TEMPLATES, "custom"], default="photographic",
                  tooltip="How to expand: the instruction and default negative prompt; custom uses `instruction`."),
            String("style", "", optional=True, tooltip="An optional style note added to every idea."),
            String("instruction", "", multiline=True, optional=True,
                   tooltip="The instruction for the `custom` template (what kind of prompt to write)."),
            String("negative", "", multiline=True, optional=True,
                   tooltip="Default negative prompt for the `custom` template (used when the model gives none)."),
            *sampling_inputs(max_new_tokens=96),
        ],
        outputs=[
            Output(IO.STRING, "prompt", is_list=True, tooltip="One detailed prompt per idea."),
            Output(IO.STRING, "negative", is_list=True, tooltip="One negative prompt per idea."),
        ],
    )

    @classmethod
    def _template(cls, name: str, instruction: str, negative: str) -> PromptTemplate:
        if name != "custom":
            if name not in TEMPLATES:
                raise ValidationError(f"`template` must be one of {[*TEMPLATES, 'custom']}, got {name!r}")
            return TEMPLATES[name]
        if not instruction.strip():
            raise ValidationError("`instruction` must be given when `template` is `custom`")
        return PromptTemplate(instruction.strip(), negative.strip())

    @classmethod
    def execute(cls, llm: Any, ideas: Any, template: Any, style: Any = "", instruction: Any = "",
                negative: Any = "", **sampling: Any) -> NodeOutput:
        model: LLM = _first(llm, "llm")
        chosen = cls._template(_first(template, "template"), _first(instruction, "instruction"),
                               _first(negative, "negative"))
        base = settings_from(**{k: _first(v, k) for k, v in sampling.items()})
        items = _ideas(ideas)
        style_note = _first(style, "style")
        prompts: list[str] = []
        negatives: list[str] = []
        with services().models.device_lock:
            for index, idea in enumerate(items):
                on_update, finish = stream_reporter(base.max_new_tokens, label=f"idea {index + 1}/{len(items)}")
                settings = replace(base, seed=(base.seed + index) & 0xFFFF_FFFF_FFFF_FFFF)
                prompt, neg, result = expand_idea(model, idea, chosen, settings, style=style_note, on_update=on_update)
                finish(result.text, len(result.token_ids))
                prompts.append(prompt)
                negatives.append(neg)
        return NodeOutput(prompts, negatives, ui={"text": prompts})
