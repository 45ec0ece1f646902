"""The text pack: local language models (load, generate, expand prompts, KV-cache report)
and text utilities. Registers like any third-party pack; transformers loads lazily."""

from nodeloom.node_api import mappings
from nodeloom.nodes.text.kv_report import KVCacheReport
from nodeloom.nodes.text.llm import LLMLoader, TextGenerate
from nodeloom.nodes.text.prompt_expand import PromptExpand
from nodeloom.nodes.text.strings import (
    StringToPromptList,
    TextConcatenate,
    TextJSONField,
    TextPreview,
    TextRegexExtract,
    TextReplace,
)

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    LLMLoader,
    TextGenerate,
    PromptExpand,
    KVCacheReport,
    TextConcatenate,
    TextReplace,
    TextRegexExtract,
    TextJSONField,
    StringToPromptList,
    TextPreview,
)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
