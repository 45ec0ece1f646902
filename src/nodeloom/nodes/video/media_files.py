"""Media-file helpers of the video pack, also used by the audio pack: input listings, ComfyUI's
``"name [output]"`` annotations, exclusive output files and the workflow metadata to embed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nodeloom.errors import NodeloomError
from nodeloom.node_api import safe_join, services

__all__ = ["AUDIO_EXTENSIONS", "VIDEO_EXTENSIONS", "InputFileChecks", "claim_files", "input_files", "mtime", "resolve_input", "workflow_tags"]

VIDEO_EXTENSIONS = (".webm", ".mp4", ".mkv", ".gif", ".mov", ".webp", ".avi", ".m4v")
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".wma")


def input_files(extensions: tuple[str, ...]) -> list[str]:
    """Files directly in the input folder with one of ``extensions``, sorted (empty with no engine)."""
    try:
        folder = services().paths.input_dir
    except NodeloomError:  # INPUT_TYPES read with no engine active: no folder to list
        return []
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions)


def resolve_input(name: str) -> Path:
    """Path of an input file name, honouring ComfyUI's ``"name [output]"`` / ``[temp]`` / ``[input]``."""
    paths = services().paths
    for kind in ("output", "input", "temp"):
        suffix = f" [{kind}]"
        if name.endswith(suffix):
            return safe_join(paths.directory(kind), name[: -len(suffix)])
    return safe_join(paths.input_dir, name)


def mtime(name: str) -> str:
    """A cheap change fingerprint of an input file (its path and modification time)."""
    path = resolve_input(name)
    return f"{path}:{path.stat().st_mtime_ns}" if path.is_file() else name


def claim_files(folder: Path, name: str, counter: int, exts: list[str], suffix: str = "") -> tuple[list[Path], int]:
    """Create ``{name}_{counter:05}{suffix}.{ext}`` files exclusively, so parallel branches never share a counter."""
    while True:
        claimed: list[Path] = []
        try:
            for ext in exts:
                target = folder / f"{name}_{counter:05}{suffix}.{ext}"
                with open(target, "xb"):
                    claimed.append(target)
            return claimed, counter
        except FileExistsError:
            for p in claimed:
                os.unlink(p)
            counter += 1


def workflow_tags(prompt: Any, extra_pnginfo: Any) -> dict[str, Any]:
    """The prompt and the frontend's extra info (the workflow) as one tag dict."""
    meta: dict[str, Any] = {}
    if prompt is not None:
        meta["prompt"] = prompt
    if isinstance(extra_pnginfo, dict):
        meta.update(extra_pnginfo)
    return meta


class InputFileChecks:
    """Cache fingerprint and validation for a loader whose one input names a file in the input folder.

    Set ``FILE_KIND`` ("video", "audio") for the message ComfyUI gives: ``Invalid video file: x``.
    """

    FILE_KIND = "media"

    @classmethod
    def fingerprint_inputs(cls, **inputs: Any) -> str:
        return mtime(str(next(iter(inputs.values()))))

    @classmethod
    def validate_inputs(cls, **inputs: Any) -> bool | str:
        name = str(next(iter(inputs.values())))
        if not resolve_input(name).is_file():
            return f"Invalid {cls.FILE_KIND} file: {name}"
        return True
