"""Locate, load and atomically save the config file."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callm.errors import CallmError, ConfigError

if TYPE_CHECKING:
    from callm.config.schema import Config


def _toml() -> Any:
    """The TOML reader, imported when a file is parsed (not when its validated copy is read)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib


_HANDS_OFF = "fix the file by hand; callm will not overwrite it"


_BOM = "\ufeff"  # some editors start UTF-8 files with it; TOML does not allow it, we skip it


def check_regular(path: Path) -> bool:
    """True if `path` (followed through symlinks) is a regular file, False if it does not
    exist; a directory, FIFO or device is refused before anything opens it (a FIFO would
    block the open, a device would be replaced by the save)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if stat.S_ISREG(mode):
        return True
    kind = (
        "a directory"
        if stat.S_ISDIR(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a file"
    )
    raise ConfigError(f"{path} is {kind}, not a regular file", hint="point --config at a file")


def read_text(path: Path) -> str:
    """The config's text ("" when missing), BOM skipped."""
    if not check_regular(path):
        return ""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    return text[1:] if text.startswith(_BOM) else text


def read_toml(path: Path, text: str | None = None) -> dict[str, Any]:
    """The raw TOML table (of `text`, the file's when None); a syntax error names the file,
    line and column."""
    text = read_text(path) if text is None else text
    tomllib = _toml()
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib says "... (at line 3, column 7)"
        raise ConfigError(f"{path}: invalid TOML: {exc}", hint=_HANDS_OFF) from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply", hint=_HANDS_OFF) from None


def load(path: Path) -> Config:
    """Load and validate; a missing file is an empty config. A file that validated before,
    unchanged since, is taken from callm.config.cache."""
    from callm import validated_cache as cache

    text = read_text(path)
    copy, config = cache.name_for(path), None
    plain = cache.lookup(copy, text)
    if plain is not None:
        config = _rebuilt(plain)
    if config is None:
        config = _validated(path, text)
        cache.remember(copy, text, config.plain())
    from callm.secrets import env_name, key_variable_clash

    clash = key_variable_clash(list(config.providers))
    if clash:  # one provider's key would go to the other's host
        raise ConfigError(
            f"{path}: providers {clash[0]!r} and {clash[1]!r} both read {env_name(clash[0])}",
            hint="rename one of them",
        )
    return config


def _rebuilt(plain: Any) -> Config | None:
    from callm.config.schema import Config

    try:
        return Config.rebuilt(plain)
    except Exception:  # a copy of another shape: validate instead
        return None


def _validated(path: Path, text: str) -> Config:
    from callm.config.schema import UNKNOWN_KEY, Config, SchemaError

    raw = read_toml(path, text)
    try:
        return Config.from_dict(raw)
    except SchemaError as exc:
        loc, msg = exc.problems[0]
        where = ".".join(loc) or "(top level)"
        msg = f"unknown key {where!r}" if msg == UNKNOWN_KEY else f"{where}: {msg}"
        more = len(exc.problems) - 1
        raise ConfigError(
            f"{path}: {msg}" + (f" (and {more} more)" if more else ""), hint=_HANDS_OFF
        ) from None


def save(path: Path, config: Config) -> None:
    """Write atomically: temp file in the same directory, fsync, rename. On any failure
    (full disk, permissions) the old file is untouched and the temp file is removed."""
    with locked(path):
        write_atomic(path, render(path, config))


def real_path(path: Path) -> Path:
    """The file a (chain of) symlink(s) points to: saves replace that file, not the link."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def locked(path: Path) -> Any:
    """The lock every read-modify-write of the config at `path` holds (see callm.locking)."""
    from callm.locking import dir_lock

    real = real_path(path)
    return dir_lock(real.parent, f"the config {path}")


def update(path: Path, change: Callable[[Config], Config]) -> Config:
    """Read, change and save under the lock, so concurrent updates all survive."""
    with locked(path):
        old = load(path)
        new = change(old)
        text = _appended(path, old, new)
        write_atomic(path, text if text is not None else render(path, new))
    return new


def _appended(path: Path, old: Config, new: Config) -> str | None:
    """When `new` only adds providers, the new text is the old one plus their tables: tomlkit
    need not parse the whole file (20,000 providers took 20 s). None when that does not apply
    or does not give `new` back (an inline `providers = {...}` table, say)."""
    from dataclasses import replace

    import tomlkit

    from callm.config.schema import Config, ProviderConfig, SchemaError

    added = [n for n in new.providers if n not in old.providers]
    if not added or replace(new, providers=old.providers) != old:
        return None
    if any(new.providers[n] != pc for n, pc in old.providers.items()):
        return None
    part = Config(providers={n: new.providers[n] for n in added})
    doc = tomlkit.document()
    _sync(doc, part.to_toml_dict(), part.to_dict(), depth=0)
    text = read_text(path)
    sep = "" if not text or text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"
    text += sep + tomlkit.dumps(doc)
    tomllib = _toml()
    try:  # check: same providers, in the file's own syntax
        got = tomllib.loads(text).get("providers", {})
    except tomllib.TOMLDecodeError:
        return None
    try:
        same = len(got) == len(new.providers) and all(
            ProviderConfig.from_dict(got.get(n)) == new.providers[n] for n in added
        )
    except SchemaError:
        return None
    return text if same else None


def render(path: Path, config: Config) -> str:
    """The new text of the config file. The file on disk is updated in place rather than
    rewritten, so the user's comments, layout and explicit defaults survive; only values that
    changed are replaced, new ones appended, removed ones dropped."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    old = read_text(path)
    try:
        doc = tomlkit.parse(old)
    except (ParseError, RecursionError) as exc:  # load() refuses such a file first
        raise ConfigError(f"{path}: invalid TOML: {exc}", hint=_HANDS_OFF) from None
    full = config.to_dict()
    _sync(doc, config.to_toml_dict(), full, depth=0)
    return tomlkit.dumps(doc)


_ABSENT = object()


def _sync(table: Any, want: dict[str, Any], full: dict[str, Any], depth: int) -> None:
    """Make `table` (tomlkit) hold `want` (non-default values). A key that `want` lacks is
    dropped, unless the user wrote it with its default value (as found in `full`)."""
    for key in [k for k in table if k not in want]:
        have, default = table[key], full.get(key, _ABSENT)
        if isinstance(have, dict) and isinstance(default, dict):
            _sync(have, {}, default, depth + 1)
            if not have:
                del table[key]
        elif default is _ABSENT or _plain(have) != default:
            del table[key]
    for key, value in want.items():
        have = table.get(key)
        if isinstance(value, dict) and isinstance(have, dict):
            sub = full.get(key)
            _sync(have, value, sub if isinstance(sub, dict) else {}, depth + 1)
        elif have is None or _plain(have) != value:
            from tomlkit.items import InlineTable

            # inside a table the user wrote inline (`providers = {...}`), stay inline
            table[key] = _item(value, depth + 1, inline=isinstance(table, InlineTable))


def _plain(value: Any) -> Any:
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def _item(value: Any, depth: int, inline: bool = False) -> Any:
    """Tables for the top two levels ([providers.lab], [aliases]); inline below (headers)."""
    import tomlkit

    if not isinstance(value, dict):
        return value
    inline = inline or depth > 2
    table = tomlkit.inline_table() if inline else tomlkit.table()
    for k, v in value.items():
        table[k] = _item(v, depth + 1, inline)
    return table


def write_atomic(path: Path, text: str) -> None:
    shown, path = path, real_path(path)
    check_regular(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CallmError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # read-only folder: the user's setup, not a transient failure
        raise ConfigError(
            f"cannot save {shown}: its folder {path.parent} is not writable "
            f"({exc.strerror or exc})",
            hint="make the folder writable, or point --config at a writable file",
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        # exit 1, not 2: the config is fine, the file system refused (full disk, permissions)
        raise CallmError(
            f"could not save {shown}: {exc.strerror or exc}; the previous config is unchanged"
        ) from None
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
