"""LLMLoader and TextGenerate: load a local causal LM and generate text with a chosen KV cache."""

from __future__ import annotations

from typing import Any

from nodeloom.errors import NodeloomError
from nodeloom.node_api import IO, Boolean, Combo, Node, NodeOutput, Output, Schema, String, model_key, services
from nodeloom.nodes.text._common import llm_input, sampling_inputs, settings_from, stream_reporter
from nodeloom.text.generate import generate_text
from nodeloom.text.llm import DEVICES, DTYPES, LLM, load_llm, resolve_device, resolve_dtype

__all__ = ["LLMLoader", "TextGenerate"]


def _llm_names() -> list[str]:
    try:
        return services().paths.get_filename_list("llm")
    except NodeloomError:
        return []  # no engine active (e.g. class inspection outside a run)


class LLMLoader(Node):
    """Load a causal language model folder (transformers format) from the `llm` model folder.

    Loading is offline only: the folder must hold config.json, the weights and the tokenizer
    files. Loaded models are kept by the model manager, so running again is instant.
    """

    SCHEMA = Schema(
        node_id="LLMLoader",
        display_name="LLM Loader",
        category="text/llm",
        inputs=[
            Combo("model_name", _llm_names, tooltip="A model folder under models/llm/ (config.json, weights, tokenizer)."),
            Combo("dtype", list(DTYPES), default="auto",
                  tooltip="Weight precision; auto is bfloat16/float16 on CUDA and float32 on the CPU."),
            Combo("device", list(DEVICES), default="auto", tooltip="Where the model runs; auto follows the engine."),
        ],
        outputs=[Output(IO.LLM, "llm", tooltip="The loaded model and tokenizer.")],
    )

    @classmethod
    def execute(cls, model_name: str, dtype: str = "auto", device: str = "auto") -> tuple[LLM]:

        svc = services()
        path = svc.paths.get_full_path("llm", model_name)
        torch_device = resolve_device(device, svc.models.device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        key = model_key(path, "llm", str(torch_dtype), str(torch_device))
        llm = svc.models.load(key, lambda: load_llm(path, device=torch_device, dtype=torch_dtype))
        return (llm,)


class TextGenerate(Node):
    """Generate text from a prompt with a local language model.

    Uses the tokenizer's chat template (with the optional system prompt) when it has one.
    Tokens stream as progress and `nodeloom.text_stream` events; the run can be interrupted
    between tokens. The cache mode changes speed and memory; with none, dynamic, static, or a
    sliding window longer than the text, greedy output is the same (quantized caches are lossy).
    """

    SCHEMA = Schema(
        node_id="TextGenerate",
        display_name="Text Generate (LLM)",
        category="text/llm",
        inputs=[
            llm_input(),
            String("prompt", "", multiline=True, tooltip="What to ask or continue."),
            *sampling_inputs(),
            String("stop", "", multiline=True,
                   tooltip="Stop strings, one per line (\\n for a newline); the text ends before the first one."),
            Boolean("use_chat_template", True,
                    tooltip="Format as a chat turn when the tokenizer has a chat template; off feeds the raw prompt."),
            String("system_prompt", "", multiline=True, optional=True,
                   tooltip="Instructions for the model (a system turn, or a prefix without a chat template)."),
        ],
        outputs=[Output(IO.STRING, "text", tooltip="The generated text.")],
    )

    @classmethod
    def execute(cls, llm: LLM, prompt: str, stop: str = "", use_chat_template: bool = True,
                system_prompt: str = "", **sampling: Any) -> NodeOutput:
        settings = settings_from(stop=stop, **sampling)
        on_update, finish = stream_reporter(settings.max_new_tokens)
        with services().models.device_lock:
            result = generate_text(llm, prompt, settings, system_prompt=system_prompt,
                                   use_chat_template=use_chat_template, on_update=on_update)
        finish(result.text, len(result.token_ids))
        return NodeOutput(result.text, ui={"text": [result.text]})
