"""PromptExpand called directly: list semantics, per-idea seeds, custom templates."""

from __future__ import annotations

import pytest

from nodeloom.errors import ValidationError
from nodeloom.nodes.text import NODE_CLASS_MAPPINGS

PromptExpand = NODE_CLASS_MAPPINGS["PromptExpand"]
LLMLoader = NODE_CLASS_MAPPINGS["LLMLoader"]
SAMPLED = dict(max_new_tokens=[10], temperature=[1.0], top_k=[0], top_p=[1.0], repetition_penalty=[1.0],
               seed=[3], cache_mode=["dynamic"], sliding_window=[256])


def _expand(ideas, **overrides):
    llm = LLMLoader.execute(model_name="llama", dtype="float32", device="cpu")[0]
    kwargs = dict(SAMPLED, llm=[llm], ideas=ideas, template=["illustration"])
    kwargs.update(overrides)
    out = PromptExpand.execute(**kwargs)
    return out.values


def test_is_a_list_node():
    assert PromptExpand.INPUT_IS_LIST is True
    assert PromptExpand.OUTPUT_IS_LIST == (True, True)


def test_one_prompt_per_idea_reproducibly(svc):
    prompts, negatives = _expand(["a fox\na lighthouse", "a bowl of fruit"])
    assert len(prompts) == len(negatives) == 3
    assert (prompts, negatives) == tuple(_expand(["a fox\na lighthouse", "a bowl of fruit"]))
    assert all(isinstance(p, str) and p for p in prompts)


def test_idea_index_shifts_the_seed(svc):
    # the same idea twice gets seeds 3 and 4, so the sampled expansions differ
    prompts, _ = _expand(["a fox", "a fox"], max_new_tokens=[16])
    assert prompts[0] != prompts[1]


def test_custom_template_needs_an_instruction(svc):
    with pytest.raises(ValidationError, match="`instruction` must be given"):
        _expand(["a fox"], template=["custom"])
    prompts, negatives = _expand(["a fox"], template=["custom"], instruction=["Write a haiku."], negative=["dull"])
    assert len(prompts) == 1 and negatives[0]


def test_empty_ideas_are_refused(svc):
    with pytest.raises(ValidationError, match="`ideas` must contain at least one non-empty idea"):
        _expand(["  \n "])
