"""The MCP policy sandbox: what an agent may run, read, write and reach.

A :class:`Policy` is loaded from a TOML, YAML or JSON file (or built with defaults) and
checks workflows before they run: allowed/denied node classes and categories, file inputs
confined to the input/output folders, image size, steps, run time, read-only mode and the
MCP servers the tool-call node may reach. Every refusal is a
:class:`~nodeloom.errors.PolicyDeniedError` whose message and ``extra_info["rule"]`` name the
rule. Imports no MCP SDK (the tool-call node reads the same policy).
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeloom.errors import MissingDependencyError, PolicyDeniedError, ValidationError
from nodeloom.limits import LimitError, RunLimits, limit_named_in
from nodeloom.paths import FolderPaths, safe_join

__all__ = ["POLICY_SETTING", "Limits", "Policy", "ServerSpec", "load_policy", "policy_from_settings", "policy_rule"]

#: key of ``Services.settings`` under which an engine carries its MCP policy
POLICY_SETTING = "mcp_policy"

#: inputs whose string value names a file to read (relative to ``input/`` unless annotated)
DEFAULT_READ_INPUTS = (
    "image", "video", "audio", "file", "filename", "path", "mask_file", "input_path",
    "directory", "image_path", "video_path", "audio_path", "file_path",
)
#: inputs whose string value names where to write (relative to ``output/``)
DEFAULT_WRITE_INPUTS = ("filename_prefix", "output_path", "save_path", "output_file", "output_dir", "output_directory")
_ANNOTATIONS = {" [input]": "input", " [output]": "output", " [temp]": "temp"}


@dataclass
class Limits:
    """Numeric limits; ``0`` disables a limit."""

    max_pixels: int = 4096 * 4096
    max_batch: int = 64
    max_memory_mb: int = 4096
    max_steps: int = 200
    max_run_seconds: float = 900.0
    max_queued_jobs: int = 32
    max_wait_seconds: float = 300.0


@dataclass
class ServerSpec:
    """One MCP server the tool-call node may reach: a stdio command or an HTTP URL."""

    name: str
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    tools: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if bool(self.command) == bool(self.url):
            raise ValidationError(
                f"MCP server `{self.name}` needs exactly one of `command` (stdio) or `url` (streamable HTTP)",
                type="invalid_policy",
            )
        if self.timeout <= 0:
            raise ValidationError(f"`mcp_servers.{self.name}.timeout` must be > 0, got {self.timeout}", type="invalid_policy")

    def allows_tool(self, tool: str) -> bool:
        """Whether ``tool`` matches the ``tools`` allow-list (an empty list allows every tool)."""
        return not self.tools or any(fnmatch.fnmatchcase(tool, pat) for pat in self.tools)


@dataclass
class Policy:
    """The sandbox an MCP session runs in (see ``docs/mcp.md`` for the file format).

    Attributes:
        read_only: only discovery and validation tools may be used.
        allow_nodes / deny_nodes: ``class_type`` glob patterns; an empty allow list allows all.
        allow_categories / deny_categories: category prefixes (``image`` covers ``image/mask``).
        read_inputs / write_inputs: input names whose string values are file names to confine.
        limits: numeric limits.
        mcp_servers: servers the MCPToolCall node may reach, by name.
        audit_log: audit log file (``.jsonl`` or ``.sqlite``/``.db``); relative to the user folder.
        example_dirs: extra folders of example workflows.
        allowed_hosts / allowed_origins: extra Host/Origin values the HTTP transport accepts.
        thumbnail_kb / thumbnail_max_side / max_images: the image budget of a tool response.
    """

    read_only: bool = False
    allow_nodes: list[str] = field(default_factory=list)
    deny_nodes: list[str] = field(default_factory=list)
    allow_categories: list[str] = field(default_factory=list)
    deny_categories: list[str] = field(default_factory=list)
    read_inputs: list[str] = field(default_factory=lambda: list(DEFAULT_READ_INPUTS))
    write_inputs: list[str] = field(default_factory=lambda: list(DEFAULT_WRITE_INPUTS))
    limits: Limits = field(default_factory=Limits)
    mcp_servers: dict[str, ServerSpec] = field(default_factory=dict)
    audit_log: str = "mcp_audit.jsonl"
    example_dirs: list[str] = field(default_factory=list)
    allowed_hosts: list[str] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)
    thumbnail_kb: int = 48
    thumbnail_max_side: int = 512
    max_images: int = 4
    source: str | None = None

    # ------------------------------------------------------------------ building
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str | None = None) -> Policy:
        """Build a policy from the parsed config (the file format of ``docs/mcp.md``).

        Raises:
            ValidationError: an unknown section/key or a value of the wrong type.
        """
        data = dict(data)
        known = {"read_only", "nodes", "files", "limits", "mcp_servers", "audit", "examples", "http", "output"}
        _no_unknown(data, known, "the policy file")
        nodes = _section(data, "nodes", {"allow", "deny", "allow_categories", "deny_categories"})
        files = _section(data, "files", {"read_inputs", "write_inputs"})
        limits_data = _section(data, "limits", set(Limits.__dataclass_fields__))
        audit = _section(data, "audit", {"path"})
        examples = _section(data, "examples", {"dirs"})
        http = _section(data, "http", {"allowed_hosts", "allowed_origins"})
        output = _section(data, "output", {"thumbnail_kb", "thumbnail_max_side", "max_images"})
        servers_data = data.get("mcp_servers", {}) or {}
        if not isinstance(servers_data, Mapping):
            raise ValidationError("`mcp_servers` must be a table of server name -> settings", type="invalid_policy")
        limits = Limits(**{k: _number(f"limits.{k}", v) for k, v in limits_data.items()})
        servers = {str(name): _server(str(name), spec) for name, spec in servers_data.items()}
        return cls(
            read_only=bool(data.get("read_only", False)),
            allow_nodes=_strings("nodes.allow", nodes.get("allow", [])),
            deny_nodes=_strings("nodes.deny", nodes.get("deny", [])),
            allow_categories=_strings("nodes.allow_categories", nodes.get("allow_categories", [])),
            deny_categories=_strings("nodes.deny_categories", nodes.get("deny_categories", [])),
            read_inputs=_strings("files.read_inputs", files.get("read_inputs", list(DEFAULT_READ_INPUTS))),
            write_inputs=_strings("files.write_inputs", files.get("write_inputs", list(DEFAULT_WRITE_INPUTS))),
            limits=limits,
            mcp_servers=servers,
            audit_log=str(audit.get("path", "mcp_audit.jsonl")),
            example_dirs=_strings("examples.dirs", examples.get("dirs", [])),
            allowed_hosts=_strings("http.allowed_hosts", http.get("allowed_hosts", [])),
            allowed_origins=_strings("http.allowed_origins", http.get("allowed_origins", [])),
            thumbnail_kb=int(_number("output.thumbnail_kb", output.get("thumbnail_kb", 48))),
            thumbnail_max_side=int(_number("output.thumbnail_max_side", output.get("thumbnail_max_side", 512))),
            max_images=int(_number("output.max_images", output.get("max_images", 4))),
            source=source,
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-safe view for the ``nodeloom://policy`` resource (no server secrets)."""
        return {
            "source": self.source,
            "read_only": self.read_only,
            "nodes": {
                "allow": self.allow_nodes,
                "deny": self.deny_nodes,
                "allow_categories": self.allow_categories,
                "deny_categories": self.deny_categories,
            },
            "files": {"read_inputs": self.read_inputs, "write_inputs": self.write_inputs},
            "limits": dict(self.limits.__dict__),
            "mcp_servers": {n: {"transport": "stdio" if s.command else "http", "tools": s.tools} for n, s in self.mcp_servers.items()},
            "output": {"thumbnail_kb": self.thumbnail_kb, "thumbnail_max_side": self.thumbnail_max_side, "max_images": self.max_images},
        }

    # ------------------------------------------------------------------ checks
    def check_writable(self, action: str) -> None:
        """Refuse ``action`` (a tool name) in read-only mode.

        Raises:
            PolicyDeniedError: rule ``read_only``.
        """
        if self.read_only:
            raise _deny("read_only", f"`{action}` is not allowed: the server runs in read-only mode (discovery and validation only)")

    def node_allowed(self, class_type: str, category: str | None) -> str | None:
        """The rule that refuses ``class_type`` (None when allowed)."""
        if any(fnmatch.fnmatchcase(class_type, p) for p in self.deny_nodes):
            return "nodes.deny"
        cat = category or ""
        if any(_category_match(cat, p) for p in self.deny_categories):
            return "nodes.deny_categories"
        if self.allow_nodes and not any(fnmatch.fnmatchcase(class_type, p) for p in self.allow_nodes):
            return "nodes.allow"
        if self.allow_categories and not any(_category_match(cat, p) for p in self.allow_categories):
            return "nodes.allow_categories"
        return None

    def check_prompt(self, prompt: Mapping[str, Any], paths: FolderPaths, category_of: Callable[[str], str | None]) -> None:
        """Check an API-format prompt against every static rule.

        Args:
            prompt: ``{node_id: {"class_type", "inputs"}}``.
            paths: the engine folders that file inputs are confined to.
            category_of: ``class_type`` -> category (None when unknown).

        Raises:
            PolicyDeniedError: the first rule broken, naming the node and input.
        """
        for node_id, node in prompt.items():
            if not isinstance(node, Mapping):
                continue
            class_type = str(node.get("class_type", ""))
            rule = self.node_allowed(class_type, category_of(class_type))
            if rule is not None:
                raise _deny(rule, f"node `{node_id}` ({class_type}) is not allowed by the policy rule `{rule}`", node_id=str(node_id))
            inputs = node.get("inputs") or {}
            if isinstance(inputs, Mapping):
                self._check_inputs(str(node_id), class_type, inputs, paths)

    def _check_inputs(self, node_id: str, class_type: str, inputs: Mapping[str, Any], paths: FolderPaths) -> None:
        for name, value in inputs.items():
            if not isinstance(value, str):
                continue
            if name in self.read_inputs:
                self.resolve_read(value, paths, where=f"node `{node_id}` ({class_type}) input `{name}`")
            elif name in self.write_inputs:
                self.resolve_write(value, paths, where=f"node `{node_id}` ({class_type}) input `{name}`")
        steps = inputs.get("steps")
        if self.limits.max_steps and isinstance(steps, int) and not isinstance(steps, bool) and steps > self.limits.max_steps:
            raise _deny("limits.max_steps", f"node `{node_id}` ({class_type}) input `steps` is {steps}; the policy allows at most {self.limits.max_steps}", node_id=node_id)
        for w_name, h_name in _size_pairs(inputs):
            w, h = inputs[w_name], inputs[h_name]
            self.check_pixels(int(w), int(h), where=f"node `{node_id}` ({class_type}) inputs `{w_name}`×`{h_name}`")

    def run_limits(self) -> RunLimits:
        """The per-run resource limits of this policy (``Engine.run(limits=...)``): checked
        before a job runs and on every image, mask and latent a node creates, so neither a
        batch size nor an upscale inside the graph gets past ``max_pixels``."""
        return RunLimits(max_pixels=int(self.limits.max_pixels), max_batch=int(self.limits.max_batch),
                         max_memory=int(self.limits.max_memory_mb) * 2**20)

    def check_run_limits(self, prompt: Mapping[str, Any], lookup: Callable[[str], type | None]) -> None:
        """Estimate what the prompt will create (sizes, batches, scale factors along links)
        against :meth:`run_limits`, before it is queued.

        Raises:
            PolicyDeniedError: rule ``limits.max_pixels``, ``limits.max_batch`` or ``limits.max_memory_mb``.
        """
        try:
            self.run_limits().check_prompt(prompt, lookup)
        except LimitError as exc:
            raise _deny(policy_rule(limit_named_in(exc.to_dict()) or "max_pixels"), exc.message) from exc

    def check_pixels(self, width: int, height: int, *, where: str) -> None:
        """Refuse an image larger than ``limits.max_pixels``.

        Raises:
            PolicyDeniedError: rule ``limits.max_pixels``.
        """
        if self.limits.max_pixels and width * height > self.limits.max_pixels:
            raise _deny(
                "limits.max_pixels",
                f"{where} is {width}×{height} = {width * height} pixels; the policy allows at most {self.limits.max_pixels}",
            )

    def resolve_read(self, name: str, paths: FolderPaths, *, where: str = "file") -> Path:
        """Resolve a file name to read inside the input (or annotated output/temp) folder.

        Raises:
            PolicyDeniedError: rule ``files.confine`` for ``..``, absolute paths or escaping symlinks.
        """
        kind = "input"
        for suffix, folder in _ANNOTATIONS.items():
            if name.endswith(suffix):
                name, kind = name[: -len(suffix)], folder
        return _confine(paths.directory(kind), name, where)

    def resolve_write(self, name: str, paths: FolderPaths, *, where: str = "file") -> Path:
        """Resolve a file name (or prefix) to write inside the output folder.

        Raises:
            PolicyDeniedError: rule ``files.confine``.
        """
        return _confine(paths.output_dir, name, where)

    def server(self, name: str, tool: str | None = None) -> ServerSpec:
        """The spec of an allowed MCP server (and tool).

        Raises:
            PolicyDeniedError: rule ``mcp_servers`` (unknown server) or ``mcp_servers.<name>.tools``.
        """
        spec = self.mcp_servers.get(name)
        if spec is None:
            allowed = sorted(self.mcp_servers) or "none"
            raise _deny("mcp_servers", f"MCP server `{name}` is not in the policy's `mcp_servers` (allowed: {allowed})")
        if tool is not None and not spec.allows_tool(tool):
            raise _deny(f"mcp_servers.{name}.tools", f"tool `{tool}` of MCP server `{name}` is not in its `tools` allow-list {spec.tools}")
        return spec


# ---------------------------------------------------------------------- loading


def load_policy(path: str | os.PathLike[str] | None) -> Policy:
    """Load a policy file (``.toml``, ``.yaml``/``.yml`` or ``.json``); ``None`` gives the defaults.

    Raises:
        ValidationError: the file cannot be read or parsed, or holds unknown keys.
    """
    if path is None:
        return Policy()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"cannot read policy file `{p}`: {exc}", type="invalid_policy") from exc
    suffix = p.suffix.lower()
    try:
        if suffix == ".toml":
            data = _toml().loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ValidationError(f"policy file `{p}` must end in .toml, .yaml, .yml or .json", type="invalid_policy")
    except ValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - every parser has its own error class
        raise ValidationError(f"cannot parse policy file `{p}`: {exc}", type="invalid_policy") from exc
    if not isinstance(data, Mapping):
        raise ValidationError(f"policy file `{p}` must hold a mapping at the top level", type="invalid_policy")
    return Policy.from_mapping(data, source=str(p))


def policy_from_settings(settings: Mapping[str, Any]) -> Policy:
    """The policy an engine carries in ``settings["mcp_policy"]`` (a Policy, a mapping or a file path).

    Falls back to the ``NODELOOM_MCP_POLICY`` environment variable, then to the defaults
    (which allow no MCP server).
    """
    value = settings.get(POLICY_SETTING)
    if isinstance(value, Policy):
        return value
    if isinstance(value, Mapping):
        return Policy.from_mapping(value)
    if isinstance(value, (str, os.PathLike)):
        return load_policy(value)
    env = os.environ.get("NODELOOM_MCP_POLICY")
    return load_policy(env) if env else Policy()


# ---------------------------------------------------------------------- helpers


def policy_rule(limit: str) -> str:
    """The policy rule of a :class:`~nodeloom.limits.RunLimits` field (``max_memory`` is set in MB)."""
    return f"limits.{'max_memory_mb' if limit == 'max_memory' else limit}"


def _deny(rule: str, message: str, **extra: Any) -> PolicyDeniedError:
    return PolicyDeniedError(f"policy rule `{rule}`: {message}", extra_info={"rule": rule, **extra})


def _confine(root: Path, name: str, where: str) -> Path:
    if "\0" in name:
        raise _deny("files.confine", f"{where}: file name contains a NUL byte")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise _deny("files.confine", f"{where}: absolute path `{name}` is not allowed; give a name inside `{root.name}/`")
    try:
        return safe_join(root, name.replace("\\", "/"))
    except ValidationError as exc:
        raise _deny("files.confine", f"{where}: {exc.message}") from exc


def _category_match(category: str, pattern: str) -> bool:
    pattern = pattern.rstrip("/")
    return category == pattern or category.startswith(pattern + "/") or fnmatch.fnmatchcase(category, pattern)


def _size_pairs(inputs: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    for name, value in inputs.items():
        if not name.endswith("width") or isinstance(value, bool) or not isinstance(value, int):
            continue
        other = name[: -len("width")] + "height"
        h = inputs.get(other)
        if isinstance(h, int) and not isinstance(h, bool):
            yield name, other


def _toml() -> Any:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError as exc:
            raise MissingDependencyError(
                "reading a TOML policy on Python 3.10 needs `tomli`; install it with `pip install 'nodeloom[mcp]'` or use YAML/JSON",
                extra_info={"module": "tomli", "extra": "mcp"},
            ) from exc
    return tomllib


def _no_unknown(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValidationError(f"unknown key(s) {unknown} in {where}; known: {sorted(known)}", type="invalid_policy")


def _section(data: Mapping[str, Any], name: str, known: set[str]) -> dict[str, Any]:
    value = data.get(name, {}) or {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"policy section `{name}` must be a table", type="invalid_policy")
    _no_unknown(value, known, f"policy section `{name}`")
    return dict(value)


def _strings(key: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"policy key `{key}` must be a list of strings, got {value!r}", type="invalid_policy")
    return list(value)


def _number(key: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValidationError(f"policy key `{key}` must be a number ≥ 0, got {value!r}", type="invalid_policy")
    return value


def _server(name: str, spec: Any) -> ServerSpec:
    if not isinstance(spec, Mapping):
        raise ValidationError(f"`mcp_servers.{name}` must be a table", type="invalid_policy")
    _no_unknown(spec, set(ServerSpec.__dataclass_fields__) - {"name"}, f"`mcp_servers.{name}`")
    kw = dict(spec)
    if "args" in kw:
        kw["args"] = _strings(f"mcp_servers.{name}.args", kw["args"])
    if "tools" in kw:
        kw["tools"] = _strings(f"mcp_servers.{name}.tools", kw["tools"])
    for key in ("env", "headers"):
        if key in kw:
            if not isinstance(kw[key], Mapping):
                raise ValidationError(f"`mcp_servers.{name}.{key}` must be a table of strings", type="invalid_policy")
            kw[key] = {str(k): str(v) for k, v in kw[key].items()}
    if "timeout" in kw:
        kw["timeout"] = float(_number(f"mcp_servers.{name}.timeout", kw["timeout"]))
    return ServerSpec(name=name, **kw)
