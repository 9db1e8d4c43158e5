"""Copies of what pydantic made of a file (the config, the catalog's data files), so that a
command whose files have not changed skips parsing and pydantic: importing pydantic and
building the validators took ~100 ms of every start-up, more than the rest of `callm
providers list` or of a one-shot chat's own work.

A copy holds the file's exact text beside the plain values validation gave for it; it is
used only when the text is the same and the copy was made by the same schemas (callm's
version and the modules whose checks decide what is valid). Anything else, or any trouble
reading it, is a miss: the file is validated as usual and the copy rewritten. Copies live in
the user's cache folder (0600 in a 0700 folder) and are ignored unless the user owns them and
nobody else can write them, since they stand in for the files."""

from __future__ import annotations

import json
import os
import stat
import sys
import zlib
from pathlib import Path
from typing import Any

_FORMAT = 1
# The modules whose checks decide what is valid, relative to the package.
_SCHEMAS = (
    "config/schema.py",
    "config/fields.py",
    "catalog/schema.py",
    "drivers/__init__.py",
    "ledger/backend.py",
)


def cache_dir() -> Path:
    """CALLM_CACHE_DIR > the platform's cache dir."""
    env = os.environ.get("CALLM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform.startswith("linux") or os.environ.get("XDG_CACHE_HOME"):
        base = os.environ.get("XDG_CACHE_HOME")
        return (Path(base) if base else Path.home() / ".cache") / "callm"
    import platformdirs

    return Path(platformdirs.user_cache_dir("callm"))


def name_for(path: Path) -> str:
    """The copy's name for a file of the user's (the config); a collision of two paths only
    costs a miss, since the text decides."""
    return f"{path.stem}-{zlib.crc32(str(path).encode()):08x}"


def _file(name: str) -> Path:
    return cache_dir() / f"{name}.json"


def _stamp() -> list[Any]:
    """What decided validity: callm's version and the checking modules' files."""
    import callm

    package = Path(callm.__file__).parent
    stamp: list[Any] = [_FORMAT, callm.__version__]
    for module in _SCHEMAS:
        try:
            st = os.stat(package / module)
        except OSError:
            return []  # cannot tell: never use a copy
        stamp += [st.st_size, st.st_mtime_ns]
    return stamp


def lookup(name: str, text: str) -> Any | None:
    """The plain values validation gave for exactly this text, or None."""
    try:
        fd = os.open(_file(name), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
        if not mine or st.st_mode & 0o022 or not stat.S_ISREG(st.st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            saved = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    if not isinstance(saved, dict) or saved.get("text") != text:
        return None
    stamp = _stamp()
    if not stamp or saved.get("stamp") != stamp:
        return None
    return saved.get("value")


def remember(name: str, text: str, value: Any) -> None:
    """Save the copy; best effort (a read-only cache folder only costs the next start-up)."""
    stamp = _stamp()
    if not stamp:
        return
    try:
        body = json.dumps({"stamp": stamp, "text": text, "value": value})
    except (TypeError, ValueError):  # a TOML date in template options, say: not JSON
        return
    import tempfile  # only when a copy is written, not on the path that reads one

    target = _file(name)
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=target.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp made it 0600
            fh.write(body)
        os.replace(tmp, target)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
