"""`providers import`: find vendor keys people already have, in the environment and in the
configs of tools they already use, and decide what importing each would do. Keys are only
ever shown masked; storing them is the caller's job (keychain via secrets.keychain_set).

Where the tools keep their keys (their documented defaults):
- llm (simonw/llm): keys.json in its user dir: $LLM_USER_PATH, else click's app dir for
  "io.datasette.llm" ($XDG_CONFIG_HOME or ~/.config on Linux, ~/Library/Application
  Support on macOS, %APPDATA% on Windows). A JSON object name -> key.
- aichat (sigoden/aichat): config.yaml in $AICHAT_CONFIG_DIR, else <config dir>/aichat
  ($XDG_CONFIG_HOME or ~/.config on Linux). `clients:` is a list of {type, name?, api_key}.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callm.errors import UsageError

if TYPE_CHECKING:
    from callm.config.schema import Config

# llm's key names (core and its vendor plugins) -> catalog provider
LLM_NAMES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "claude": "anthropic",  # the older llm-claude-3 plugin
    "gemini": "gemini",
    "mistral": "mistral",
    "groq": "groq",
    "openrouter": "openrouter",
    "deepseek": "deepseek",
    "together": "together",
    "fireworks": "fireworks",
    "grok": "xai",  # llm-grok
    "xai": "xai",
}
# aichat client types -> catalog provider (openai-compatible clients go by their `name`)
AICHAT_TYPES = {"openai": "openai", "claude": "anthropic", "gemini": "gemini"}


@dataclass(frozen=True)
class Found:
    provider: str  # a catalog name
    key: str
    source: str  # "env OPENAI_API_KEY", "llm keys.json", ...


@dataclass(frozen=True)
class Step:
    """What importing one found key would do."""

    found: Found
    action: str  # add | store | skip
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        from callm.secrets import mask

        return {
            "provider": self.found.provider,
            "action": self.action,
            "key": mask(self.found.key),
            "source": self.found.source,
            "reason": self.reason or None,
        }


def llm_keys_path() -> Path:
    user = os.environ.get("LLM_USER_PATH")
    if user:
        return Path(user) / "keys.json"
    return _config_base() / "io.datasette.llm" / "keys.json"


def aichat_config_path() -> Path:
    d = os.environ.get("AICHAT_CONFIG_DIR")
    if d:
        return Path(d) / "config.yaml"
    return _config_base() / "aichat" / "config.yaml"


def _config_base() -> Path:
    """The per-user config dir both tools use (click.get_app_dir for llm, Rust's
    dirs::config_dir for aichat): the same three places."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    if os.name == "nt":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def from_env() -> list[Found]:
    from callm.catalog.providers import catalog

    out = []
    for t in catalog().values():
        for var in t.key_env:
            value = os.environ.get(var, "").strip()
            if value and t.key != "none":
                out.append(Found(t.name, value, f"env {var}"))
                break
    return out


def from_llm(path: Path) -> list[Found]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"cannot read llm keys from {path}: {_why(exc)}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object of name -> key (llm's keys.json)")
    where = f"llm {path.name}"
    return [
        Found(LLM_NAMES[name], value.strip(), where)
        for name, value in data.items()
        if name in LLM_NAMES and isinstance(value, str) and value.strip()
    ]


def from_aichat(path: Path) -> list[Found]:
    try:
        import yaml
    except ImportError:
        raise UsageError(
            f"{path} is YAML, and reading it needs PyYAML",
            hint="pip install 'callm[yaml]' (or pyyaml)",
        ) from None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read aichat config {path}: {_why(exc)}") from None
    clients = data.get("clients") if isinstance(data, dict) else None
    if not isinstance(clients, list):
        return []
    from callm.catalog.providers import catalog

    out = []
    where = f"aichat {path.name}"
    for c in clients:
        if not isinstance(c, dict) or not isinstance(c.get("api_key"), str):
            continue
        kind, name = str(c.get("type", "")), str(c.get("name", ""))
        provider = AICHAT_TYPES.get(kind) or (name if name in catalog() else None)
        if provider and c["api_key"].strip():
            out.append(Found(provider, c["api_key"].strip(), where))
    return out


def from_path(path: Path) -> list[Found]:
    """--from PATH: llm's JSON or aichat's YAML, told apart by the file name."""
    if not path.is_file():
        raise UsageError(f"--from {path}: no such file")
    if path.suffix.lower() in (".yaml", ".yml"):
        return from_aichat(path)
    return from_llm(path)


def discover(paths: list[str]) -> list[Found]:
    """--from files when given, else: the environment, llm's keys.json, aichat's config."""
    if paths:
        return [f for p in paths for f in from_path(Path(p).expanduser())]
    found = from_env()
    for path, read in ((llm_keys_path(), from_llm), (aichat_config_path(), from_aichat)):
        if path.is_file():
            found += read(path)
    return found


def plan(cfg: Config, found: list[Found]) -> list[Step]:
    """One step per provider (the first source found wins; later ones say so)."""
    from callm.catalog.providers import template
    from callm.errors import KeychainError
    from callm.secrets import keychain_get

    steps: list[Step] = []
    chosen: dict[str, Found] = {}
    for f in found:
        if f.provider in chosen:
            same = chosen[f.provider].key == f.key
            why = "same key" if same else "a different key"
            steps.append(Step(f, "skip", f"{why} already found in {chosen[f.provider].source}"))
            continue
        chosen[f.provider] = f
        pc = cfg.providers.get(f.provider)
        t = template(f.provider)
        if pc is None:
            if t is None or not t.base_url:
                steps.append(Step(f, "skip", "needs a base URL: add it with `providers add`"))
            else:
                steps.append(Step(f, "add"))
            continue
        if pc.key == "none" or pc.key_env:
            why = "configured without a key" if pc.key == "none" else f"reads {pc.key_env}"
            steps.append(Step(f, "skip", why))
            continue
        try:
            stored = keychain_get(f.provider)
        except KeychainError as exc:
            steps.append(Step(f, "skip", f"keychain unavailable: {exc.message}"))
            continue
        if stored == f.key:
            steps.append(Step(f, "skip", "already stored"))
        elif stored:
            steps.append(Step(f, "skip", "a different key is stored (use set-key to replace)"))
        else:
            steps.append(Step(f, "store"))
    return steps


def _why(exc: BaseException) -> str:
    """The first line only: a YAML error goes on to quote the file, keys and all."""
    from callm.secrets import scrub

    text = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return scrub(text[:160])
