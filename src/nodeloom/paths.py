"""Where files live: input/output/temp folders, model folders and ComfyUI's extra paths YAML.

Owns every path decision packs make (listing model files for combos, resolving a chosen
file, confining a user-given name to its folder) and how files are written: atomically
(:func:`write_atomic`) and with one file mode for outputs and uploads alike
(:func:`default_file_mode`, ``0o666`` less the process umask). Never downloads anything.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from nodeloom.errors import ModelNotFoundError, ValidationError

__all__ = ["MODEL_EXTENSIONS", "FolderPaths", "atomic_target", "custom_node_dirs", "default_file_mode", "safe_join",
           "write_atomic"]

MODEL_EXTENSIONS = frozenset({".safetensors", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".onnx", ".sft", ".gguf"})

#: model folder name -> (sub-folder names under the models root, accepted extensions).
#: An extension set of ``None`` means "directories count too" (diffusers / transformers folders).
DEFAULT_FOLDERS: dict[str, tuple[tuple[str, ...], frozenset[str] | None]] = {
    "checkpoints": (("checkpoints",), None),
    "configs": (("configs",), frozenset({".yaml", ".json"})),
    "loras": (("loras",), MODEL_EXTENSIONS),
    "vae": (("vae",), None),
    "text_encoders": (("text_encoders", "clip"), None),
    "diffusion_models": (("diffusion_models", "unet"), None),
    "clip_vision": (("clip_vision",), MODEL_EXTENSIONS),
    "style_models": (("style_models",), MODEL_EXTENSIONS),
    "ipadapter": (("ipadapter",), MODEL_EXTENSIONS),
    "embeddings": (("embeddings",), MODEL_EXTENSIONS),
    "diffusers": (("diffusers",), None),
    "vae_approx": (("vae_approx",), MODEL_EXTENSIONS),
    "controlnet": (("controlnet", "t2i_adapter"), None),
    "gligen": (("gligen",), MODEL_EXTENSIONS),
    "upscale_models": (("upscale_models",), MODEL_EXTENSIONS),
    "latent_upscale_models": (("latent_upscale_models",), MODEL_EXTENSIONS),
    "model_patches": (("model_patches",), MODEL_EXTENSIONS),
    "hypernetworks": (("hypernetworks",), MODEL_EXTENSIONS),
    "photomaker": (("photomaker",), MODEL_EXTENSIONS),
    "classifiers": (("classifiers",), None),
    "adetailer": (("adetailer", "ultralytics/bbox", "ultralytics/segm"), MODEL_EXTENSIONS),
    "llm": (("llm",), None),
    "tokenizers": (("tokenizers",), None),
    "speech": (("speech",), None),
    "landmarks": (("landmarks",), MODEL_EXTENSIONS),
    "xlabs_ipadapters": (("xlabs/ipadapters",), MODEL_EXTENSIONS),
    "insightface": (("insightface",), None),
}


def custom_node_dirs(base_dir: str | os.PathLike[str], extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """The custom-node folders to load: ``BASE/custom_nodes`` when it exists (as ComfyUI
    loads its own ``custom_nodes/``), then each ``--custom-nodes`` folder, each once."""
    dirs = [Path(d) for d in extra]
    default = Path(base_dir) / "custom_nodes"
    if default.is_dir() and default.resolve() not in {d.resolve() for d in dirs}:
        dirs.insert(0, default)
    return dirs


def safe_join(root: str | os.PathLike[str], *parts: str) -> Path:
    """Join user-given ``parts`` under ``root``, refusing anything that escapes it.

    Absolute parts, ``..`` segments and symlinks that lead outside ``root`` are refused.

    Raises:
        ValidationError: the joined path leaves ``root``, or a part contains a NUL character.
    """
    if any("\x00" in p for p in parts if p):
        raise ValidationError("a file name or folder must not contain a NUL character", type="invalid_path")
    base = Path(root).resolve()
    rel = Path(*[p for p in parts if p])
    if rel.is_absolute() or any(seg == ".." for seg in rel.parts):
        raise ValidationError(f"path `{rel}` must stay inside `{base.name}/`", type="invalid_path")
    full = (base / rel).resolve()
    if full != base and base not in full.parents:
        raise ValidationError(f"path `{rel}` resolves outside `{base.name}/`", type="invalid_path")
    return full


_MODE: list[int] = []


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask is process-wide and racy)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def default_file_mode() -> int:
    """The mode of a new file: ``0o666`` less the umask (what ``open()`` gives), read once."""
    if not _MODE:
        _MODE.append(0o666 & ~_umask())
    return _MODE[0]


#: called with each file's final path just before it appears (see :func:`set_write_journal`)
_WRITE_JOURNAL: list[Callable[[Path], None]] = []


def set_write_journal(callback: Callable[[Path], None] | None) -> None:
    """Have every :func:`atomic_target` write call ``callback(final_path)`` before the file
    appears under its final name (None: stop). A server worker process journals a prompt's
    files this way, so the files of an attempt that died can be removed before it re-runs."""
    _WRITE_JOURNAL[:] = [callback] if callback is not None else []


def write_atomic(path: str | os.PathLike[str], content: bytes | Callable[[IO[bytes]], Any]) -> Path:
    """Write a file under a temporary name in its folder, then rename it into place.

    Readers see the old file or the complete new one, never a partial or 0-byte file (a full
    disk fails the write and leaves nothing behind). The file gets :func:`default_file_mode`.

    Args:
        path: the final file name.
        content: the bytes, or a function that writes them to a binary file object.

    Returns:
        ``path`` as a :class:`Path`.
    """
    target = Path(path)
    with atomic_target(target) as tmp, open(tmp, "wb") as fh:
        if isinstance(content, (bytes, bytearray, memoryview)):
            fh.write(content)
        else:
            content(fh)
    return target


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` (same extension, for writers that pick the format from
    it); on success it gets :func:`default_file_mode` and is renamed to ``path``, on failure it
    is removed.

    Yields:
        The temporary path to write.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem[:40]}.", suffix=f".part{target.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_file_mode())
        for journal in _WRITE_JOURNAL:
            journal(target)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FolderPaths:
    """The folders of one engine.

    Args:
        base_dir: parent of ``input/``, ``output/``, ``temp/``, ``models/`` and ``user/``
            unless those are given explicitly.
        output_dir / input_dir / temp_dir / models_dir / user_dir: explicit folders.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] = ".",
        *,
        output_dir: str | os.PathLike[str] | None = None,
        input_dir: str | os.PathLike[str] | None = None,
        temp_dir: str | os.PathLike[str] | None = None,
        models_dir: str | os.PathLike[str] | None = None,
        user_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        base = Path(base_dir).resolve()
        self.base_dir = base
        self.output_dir = Path(output_dir or base / "output").resolve()
        self.input_dir = Path(input_dir or base / "input").resolve()
        self.temp_dir = Path(temp_dir or base / "temp").resolve()
        self.models_dir = Path(models_dir or base / "models").resolve()
        self.user_dir = Path(user_dir or base / "user").resolve()
        self.folders: dict[str, list[Path]] = {}
        self.extensions: dict[str, frozenset[str] | None] = {}
        self.custom_nodes_dirs: list[Path] = []
        self._save_lock = threading.Lock()
        self._reserved: dict[tuple[str, str], int] = {}
        for name, (subs, exts) in DEFAULT_FOLDERS.items():
            self.folders[name] = [self.models_dir / s for s in subs]
            self.extensions[name] = exts

    # ------------------------------------------------------------------ folders
    def ensure(self) -> None:
        """Create input/output/temp/user folders (model folders are created on demand)."""
        for d in (self.output_dir, self.input_dir, self.temp_dir, self.user_dir):
            d.mkdir(parents=True, exist_ok=True)

    def directory(self, kind: str) -> Path:
        """The folder for ``kind`` in ``{"output", "input", "temp"}`` (ComfyUI's /view types)."""
        dirs = {"output": self.output_dir, "input": self.input_dir, "temp": self.temp_dir}
        if kind not in dirs:
            raise ValidationError(f"folder type `{kind}` must be one of {sorted(dirs)}", type="invalid_folder_type")
        return dirs[kind]

    def add_model_path(self, folder: str, path: str | os.PathLike[str], *, first: bool = False) -> None:
        """Add a search path for a model folder (new folder names are allowed)."""
        paths = self.folders.setdefault(folder, [])
        self.extensions.setdefault(folder, None)
        p = Path(path).resolve()
        if p in paths:
            return
        if first:
            paths.insert(0, p)
        else:
            paths.append(p)

    def model_folders(self, folder: str) -> list[Path]:
        if folder not in self.folders:
            raise ValidationError(
                f"model folder `{folder}` is unknown; known folders: {sorted(self.folders)}", type="invalid_folder"
            )
        return list(self.folders[folder])

    def get_filename_list(self, folder: str) -> list[str]:
        """Files (and model directories) under a model folder, as relative posix paths, sorted."""
        exts = self.extensions.get(folder)
        found: set[str] = set()
        for root in self.model_folders(folder):
            if not root.is_dir():
                continue
            for path in _walk(root):
                rel = path.relative_to(root).as_posix()
                if path.is_dir():
                    if exts is None and _is_model_dir(path):
                        found.add(rel)
                    continue
                if exts is None:
                    if path.suffix.lower() in MODEL_EXTENSIONS and not _inside_model_dir(path, root):
                        found.add(rel)
                elif path.suffix.lower() in exts:
                    found.add(rel)
        return sorted(found)

    def get_full_path(self, folder: str, name: str) -> Path:
        """Resolve a name from :meth:`get_filename_list` to a path.

        Symlinked files and folders inside a model folder are followed wherever they point (the
        folders are the operator's, as in ComfyUI); the name itself must stay inside the folder.

        Raises:
            ValidationError: an absolute name or one with ``..`` segments.
            ModelNotFoundError: naming the file and every folder searched.
        """
        rel = Path(name)
        if rel.is_absolute() or any(seg == ".." for seg in rel.parts):
            raise ValidationError(f"model name `{name}` must stay inside the `{folder}` folder", type="invalid_path")
        searched = []
        for root in self.model_folders(folder):
            searched.append(str(root))
            candidate = Path(root) / rel
            if candidate.exists():
                return candidate
        raise ModelNotFoundError(
            f"`{name}` was not found in the `{folder}` model folder; searched: {', '.join(searched) or '(none)'}",
            extra_info={"folder": folder, "name": name, "searched": searched},
        )

    # ------------------------------------------------------------------ saving
    def get_save_path(
        self, filename_prefix: str, width: int = 0, height: int = 0, *, kind: str = "output", count: int = 1
    ) -> tuple[Path, str, int, str]:
        """ComfyUI's counter scheme: ``(folder, filename, counter, subfolder)``.

        ``filename_prefix`` may contain a subfolder (``"sub/name"``) and the tokens
        ``%width%``, ``%height%``; the counter continues after the highest existing one.
        ``count`` counters are reserved for the caller, so nodes saving at the same time
        with the same prefix never get the same file names.
        """
        root = self.directory(kind)
        prefix = filename_prefix.replace("%width%", str(width)).replace("%height%", str(height))
        subfolder, _, filename = prefix.rpartition("/")
        folder = safe_join(root, subfolder) if subfolder else root
        folder.mkdir(parents=True, exist_ok=True)
        counter = 1
        stem = f"{filename}_"
        with self._save_lock:
            for entry in os.listdir(folder):
                if entry.startswith(stem):
                    digits = entry[len(stem):].split("_", 1)[0].split(".", 1)[0]
                    if digits.isdigit():
                        counter = max(counter, int(digits) + 1)
            key = (str(folder), filename)
            counter = max(counter, self._reserved.get(key, 1))
            self._reserved[key] = counter + max(1, count)
        return folder, filename, counter, subfolder

    # ------------------------------------------------------------------ config
    def load_extra_model_paths(self, config_path: str | os.PathLike[str]) -> None:
        """Read ComfyUI's ``extra_model_paths.yaml`` (``base_path``, ``is_default``, folders, ``custom_nodes``)."""
        import yaml

        cfg_path = Path(config_path).resolve()
        try:
            data = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValidationError(f"cannot read extra model paths config `{cfg_path}`: {exc}") from exc
        if not isinstance(data, dict):
            raise ValidationError(f"extra model paths config `{cfg_path}` must be a mapping of sections")
        for section_name, section in data.items():
            if not isinstance(section, dict):
                raise ValidationError(f"section `{section_name}` of `{cfg_path}` must be a mapping")
            base = Path(os.path.expandvars(os.path.expanduser(str(section.get("base_path", "")))))
            if not base.is_absolute():
                base = cfg_path.parent / base
            is_default = bool(section.get("is_default", False))
            for key, value in section.items():
                if key in ("base_path", "is_default"):
                    continue
                for entry in _split_paths(value):
                    full = Path(os.path.expandvars(os.path.expanduser(entry)))
                    if not full.is_absolute():
                        full = base / full
                    if key == "custom_nodes":
                        self.custom_nodes_dirs.append(full.resolve())
                    else:
                        self.add_model_path(key, full, first=is_default)

    def describe(self) -> dict[str, Any]:
        """Folder table for ``/internal/folder_paths`` and docs."""
        return {name: [[str(p), sorted(e) if e else []] for p in paths] for name, paths in self.folders.items() for e in [self.extensions.get(name)]}


def _split_paths(value: Any) -> Iterable[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v).strip()]
    return [line.strip() for line in str(value).splitlines() if line.strip()]


def _is_model_dir(path: Path) -> bool:
    return any((path / marker).exists() for marker in ("model_index.json", "config.json"))


def _inside_model_dir(path: Path, root: Path) -> bool:
    parent = path.parent
    while parent != root and root in parent.parents:
        if _is_model_dir(parent):
            return True
        parent = parent.parent
    return False


def _walk(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath)
        for d in dirnames:
            yield base / d
        for f in sorted(filenames):
            if not f.startswith("."):
                yield base / f
