"""``folder_paths``: ComfyUI's folder functions, reading the active engine's FolderPaths.

Every call looks up the engine active in the calling context
(``nodeloom.core.context.current_services()``), so two engines in one process keep their
own folders. Module attributes ComfyUI exposes as globals (``models_dir``,
``output_directory``, ``folder_names_and_paths``...) are computed on access.
User-given names never escape their folder (``..`` and absolute paths are refused).
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

from nodeloom.core.context import current_services
from nodeloom.errors import ValidationError
from nodeloom.paths import MODEL_EXTENSIONS, FolderPaths, safe_join

__all__ = [
    "add_model_folder_path",
    "annotated_filepath",
    "exists_annotated_filepath",
    "filter_files_content_types",
    "filter_files_extensions",
    "folder_names_and_paths",
    "get_annotated_filepath",
    "get_directory_by_type",
    "get_filename_list",
    "get_folder_paths",
    "get_full_path",
    "get_full_path_or_raise",
    "get_input_directory",
    "get_output_directory",
    "get_save_image_path",
    "get_temp_directory",
    "get_user_directory",
    "supported_pt_extensions",
]

supported_pt_extensions: set[str] = set(MODEL_EXTENSIONS)
_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif", ".jxl"}
_VIDEO_EXTS = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif"}
_AUDIO_EXTS = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac"}


def _paths() -> FolderPaths:
    return current_services().paths


class _FolderTable(MutableMapping[str, tuple[list[str], set[str]]]):
    """``folder_names_and_paths``: ``{folder: ([paths], {extensions})}`` of the active engine."""

    def __getitem__(self, folder: str) -> tuple[list[str], set[str]]:
        paths = _paths()
        if folder == "custom_nodes":
            return _custom_nodes_dirs(paths), set()
        if folder not in paths.folders:
            raise KeyError(folder)
        exts = paths.extensions.get(folder)
        return [str(p) for p in paths.folders[folder]], set(exts) if exts else set(supported_pt_extensions)

    def __setitem__(self, folder: str, value: Any) -> None:
        folders, exts = (value[0], value[1]) if isinstance(value, tuple) else (value, None)
        paths = _paths()
        paths.folders[folder] = []
        for entry in folders:
            paths.add_model_path(folder, entry)
        paths.extensions[folder] = frozenset(exts) if exts else None

    def __delitem__(self, folder: str) -> None:
        paths = _paths()
        del paths.folders[folder]
        paths.extensions.pop(folder, None)

    def __iter__(self) -> Iterator[str]:
        return iter([*_paths().folders, "custom_nodes"])

    def __len__(self) -> int:
        return len(_paths().folders) + 1


def _custom_nodes_dirs(paths: FolderPaths) -> list[str]:
    """Where custom nodes load from: ``BASE/custom_nodes`` first, then the extra folders."""
    found = [str(Path(paths.base_dir) / "custom_nodes")]
    found += [str(d) for d in paths.custom_nodes_dirs if str(d) not in found]
    return found


folder_names_and_paths = _FolderTable()


def __getattr__(name: str) -> Any:
    """ComfyUI's module-level directory globals, read from the active engine."""
    paths = {
        "models_dir": lambda p: p.models_dir,
        "output_directory": lambda p: p.output_dir,
        "input_directory": lambda p: p.input_dir,
        "temp_directory": lambda p: p.temp_dir,
        "user_directory": lambda p: p.user_dir,
        "base_path": lambda p: p.base_dir,
    }
    if name in paths:
        return str(paths[name](_paths()))
    raise AttributeError(f"module 'folder_paths' has no attribute {name!r}")


def get_output_directory() -> str:
    return str(_paths().output_dir)


def get_input_directory() -> str:
    return str(_paths().input_dir)


def get_temp_directory() -> str:
    return str(_paths().temp_dir)


def get_user_directory() -> str:
    return str(_paths().user_dir)


def get_directory_by_type(type_name: str) -> str | None:
    """The folder of ``"output"``, ``"input"`` or ``"temp"``; None for anything else."""
    try:
        return str(_paths().directory(type_name))
    except ValidationError:
        return None


def get_folder_paths(folder_name: str) -> list[str]:
    return [str(p) for p in _paths().model_folders(folder_name)]


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    """Add a search path to a model folder (a new folder name is created)."""
    _paths().add_model_path(folder_name, full_folder_path, first=is_default)


def get_filename_list(folder_name: str) -> list[str]:
    """Model files (relative posix paths) in a model folder."""
    return _paths().get_filename_list(folder_name)


def get_full_path(folder_name: str, filename: str) -> str | None:
    """The path of ``filename`` in a model folder, or None when it is not there."""
    try:
        return str(_paths().get_full_path(folder_name, filename))
    except FileNotFoundError:
        return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    """Like :func:`get_full_path` but raises ``ModelNotFoundError`` (a FileNotFoundError)."""
    return str(_paths().get_full_path(folder_name, filename))


def annotated_filepath(name: str) -> tuple[str, str | None]:
    """Split ``"file.png [output]"`` into the name and its folder (None: no annotation)."""
    for kind in ("output", "input", "temp"):
        suffix = f" [{kind}]"
        if name.endswith(suffix):
            return name[: -len(suffix)], str(_paths().directory(kind))
    return name, None


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    """The path of an annotated name (default folder: ``default_dir`` or the input folder).

    Raises:
        ValidationError: the name escapes its folder.
    """
    plain, base = annotated_filepath(name)
    root = base or default_dir or get_input_directory()
    return str(safe_join(root, plain))


def exists_annotated_filepath(name: str) -> bool:
    """Whether an annotated name points at an existing file inside its folder."""
    try:
        return os.path.exists(get_annotated_filepath(name))
    except ValidationError:
        return False


def get_save_image_path(
    filename_prefix: str, output_dir: str, image_width: int = 0, image_height: int = 0
) -> tuple[str, str, int, str, str]:
    """``(full_output_folder, filename, counter, subfolder, filename_prefix)`` for saving.

    ``output_dir`` must be the engine's output, temp or input folder.

    Raises:
        ValidationError: ``output_dir`` is another folder, or the prefix escapes it.
    """
    paths = _paths()
    wanted = Path(output_dir).resolve()
    kinds = {paths.directory(k): k for k in ("output", "temp", "input")}
    if wanted not in kinds:
        raise ValidationError(f"`output_dir` must be the output, temp or input folder, got `{output_dir}`")
    folder, filename, counter, subfolder = paths.get_save_path(filename_prefix, image_width, image_height, kind=kinds[wanted])
    return str(folder), filename, counter, subfolder, filename_prefix


def filter_files_extensions(files: Iterable[str], extensions: Iterable[str]) -> list[str]:
    """Files whose extension is in ``extensions`` (all files when it is empty), sorted."""
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    return sorted(f for f in files if not exts or os.path.splitext(f)[1].lower() in exts)


def filter_files_content_types(files: Iterable[str], content_types: Iterable[str]) -> list[str]:
    """Files whose media type is one of ``content_types`` (``"image"``, ``"video"``, ``"audio"``)."""
    wanted = set(content_types)
    by_ext = {"image": _IMAGE_EXTS, "video": _VIDEO_EXTS, "audio": _AUDIO_EXTS}
    out = []
    for f in files:
        ext = os.path.splitext(f)[1].lower()
        guessed = (mimetypes.guess_type(f)[0] or "").split("/")[0]
        if guessed in wanted or any(ext in by_ext.get(kind, ()) for kind in wanted):
            out.append(f)
    return out
