"""Edit the config in the user's editor, safely: the editor works on a copy, and the copy
replaces the config (atomically) only if it still loads; otherwise the config is unchanged
and the edit is kept for the user to fix."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from callm.errors import CallmError, ConfigError, UsageError

# Editors that take +LINE to open the file at a line.
_LINE_AWARE = {"vi", "vim", "nvim", "nano", "emacs", "micro", "kak", "hx", "code", "subl"}


def edit_config(path: Path, marker: str) -> None:
    from callm.config.store import load, locked, write_atomic

    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except OSError as exc:
        raise CallmError(f"cannot read {path}: {exc.strerror or exc}") from None
    fd, tmp = tempfile.mkstemp(prefix="callm-config-", suffix=".toml")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    line = next((i + 1 for i, ln in enumerate(text.splitlines()) if marker in ln), None)
    try:
        _run_editor(Path(tmp), line)
        new = Path(tmp).read_text(encoding="utf-8")
    except BaseException:
        os.unlink(tmp)  # nothing is saved: no copy of the config is left behind either
        raise
    if new == text:
        os.unlink(tmp)
        return
    try:
        load(Path(tmp))
    except ConfigError as exc:
        raise ConfigError(
            f"not saved: {exc.message}",
            hint=f"{path} is unchanged; your edit is in {tmp}",
        ) from None
    with locked(path):  # another callm may have saved while the editor was open
        now = path.read_text(encoding="utf-8") if path.exists() else ""
        if now != text:
            raise ConfigError(
                f"not saved: {path} changed while you were editing",
                hint=f"your edit is in {tmp}; merge it by hand",
            )
        write_atomic(path, new)
    os.unlink(tmp)


def _run_editor(file: Path, line: int | None) -> None:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        argv = shlex.split(editor)
    except ValueError as exc:
        raise UsageError(f"cannot read $EDITOR {editor!r}: {exc}") from None
    if not argv:
        raise UsageError("$EDITOR is empty")
    if line and Path(argv[0]).name in _LINE_AWARE:
        argv.append(f"+{line}")
    try:
        code = subprocess.call([*argv, str(file)])
    except OSError as exc:
        raise UsageError(f"cannot run the editor {argv[0]!r}: {exc.strerror or exc}") from None
    if code != 0:
        raise CallmError(f"the editor exited with status {code}; nothing saved")
