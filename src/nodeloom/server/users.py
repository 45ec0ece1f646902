"""Users, their settings and their data files, stored on disk under the user folder.

Layout follows ComfyUI: ``<user dir>/users.json`` (multi-user mode), ``<user dir>/<user>/``
per user with ``comfy.settings.json`` and free-form files (workflows, ...). Every path a
client names goes through :func:`nodeloom.paths.safe_join`, so nothing leaves the user's own
folder. Files are stored as bytes and never executed.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from pathlib import Path
from typing import Any

from nodeloom.errors import PolicyDeniedError, ValidationError
from nodeloom.paths import safe_join, write_atomic

__all__ = ["SETTINGS_FILE", "UserStore", "file_info"]

log = logging.getLogger(__name__)

SETTINGS_FILE = "comfy.settings.json"


def file_info(path: Path, root: Path) -> dict[str, Any]:
    """ComfyUI's ``{path, size, modified, created}`` for a user file."""
    st = path.stat()
    return {"path": path.relative_to(root).as_posix(), "size": st.st_size, "modified": st.st_mtime,
            "created": st.st_ctime}


class UserStore:
    """The users of one server.

    Args:
        root: the user folder.
        multi_user: honour the ``comfy-user`` header; otherwise everyone is ``default``.
    """

    def __init__(self, root: Path, *, multi_user: bool = False) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.multi_user = multi_user
        self._lock = threading.Lock()
        self.users: dict[str, str] = {"default": "default"}
        if multi_user:
            self.users = self._read_users()

    def _users_file(self) -> Path:
        return self.root / "users.json"

    def _read_users(self) -> dict[str, str]:
        try:
            data = json.loads(self._users_file().read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as exc:
            log.error("cannot read %s (%s); starting with no users", self._users_file(), exc)
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    # ------------------------------------------------------------------ users
    def user_id(self, header: str | None) -> str:
        """The user a request acts as.

        Raises:
            PolicyDeniedError: the ``comfy-user`` header names an unknown user.
        """
        user = header if (self.multi_user and header) else "default"
        if user not in self.users:
            raise PolicyDeniedError(f"unknown user `{user}`", type="unknown_user")
        return user

    def add_user(self, name: str) -> str:
        """Create a user and return its id.

        Raises:
            ValidationError: empty or duplicate name.
        """
        name = name.strip()
        if not name:
            raise ValidationError("`username` must not be empty", type="invalid_username")
        with self._lock:
            if name in self.users.values():
                raise ValidationError(f"user `{name}` already exists", type="duplicate_username")
            user_id = re.sub(r"[^a-zA-Z0-9_-]+", "-", name) + "_" + uuid.uuid4().hex
            self.users[user_id] = name
            if self.multi_user:
                write_atomic(self._users_file(), json.dumps(self.users).encode("utf-8"))
        return user_id

    def user_root(self, user: str) -> Path:
        return safe_join(self.root, user)

    def user_path(self, user: str, rel: str) -> Path:
        """A file or folder inside the user's folder.

        Raises:
            ValidationError: ``rel`` is empty or escapes the user's folder.
        """
        if not rel or not rel.strip():
            raise ValidationError("the user data path must not be empty", type="invalid_path")
        return safe_join(self.user_root(user), rel)

    # ------------------------------------------------------------------ settings
    def settings(self, user: str) -> dict[str, Any]:
        path = self.user_root(user) / SETTINGS_FILE
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.error("settings file %s is unreadable (%s); using empty settings", path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def save_settings(self, user: str, settings: dict[str, Any]) -> None:
        path = self.user_root(user) / SETTINGS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(settings, indent=4).encode("utf-8"))

    def update_settings(self, user: str, changes: dict[str, Any]) -> None:
        with self._lock:
            self.save_settings(user, {**self.settings(user), **changes})
