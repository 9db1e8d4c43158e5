"""Shell completions: the committed files are what the app generates now, and they work."""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPLETIONS = ROOT / "completions"
BASH = shutil.which("bash")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_completions", ROOT / "scripts" / "gen_completions.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen = _generator()


@pytest.mark.parametrize("name", sorted(gen.FILES.values()))
def test_committed_completions_are_current(name: str) -> None:
    fresh = gen.render_all()[name]
    committed = (COMPLETIONS / name).read_text(encoding="utf-8")
    assert committed == fresh, (
        f"completions/{name} is stale: run `python scripts/gen_completions.py` and commit it"
    )


def test_spec_covers_every_command_and_option() -> None:
    cmds = {c.path: c for c in gen.spec()}
    assert {"", "chat", "providers", "models", "usage"} <= set(cmds)
    assert {"add", "list", "show", "remove", "enable", "disable", "set-key", "catalog",
            "verify"} <= {n for n, _ in cmds["providers"].subcommands}  # fmt: skip
    root = {n: o for o in cmds[""].options for n in o.names}
    assert root["--config"].takes_value and root["--config"].files
    assert not root["--json"].takes_value
    assert {"-h", "--help", "-q", "--quiet", "--version"} <= set(root)
    add = {n: o for o in cmds["providers add"].options for n in o.names}
    assert add["--driver"].takes_value and not add["--no-verify"].takes_value
    assert "--json" not in add  # a global option belongs right after `callm` only


# ---- bash, for real ------------------------------------------------------------------------


def complete(words: list[str], cwd: Path | None = None) -> list[str]:
    """Candidates bash offers for the last word of `words` (the word being typed)."""
    script = "; ".join(
        [
            f"source {shlex.quote(str(COMPLETIONS / 'callm.bash'))}",
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})",
            f"COMP_CWORD={len(words) - 1}",
            f"COMP_LINE={shlex.quote(' '.join(words))}",
            "_callm",
            'printf "%s\\n" "${COMPREPLY[@]}"',
        ]
    )
    assert BASH
    proc = subprocess.run(
        [BASH, "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return [line for line in proc.stdout.splitlines() if line]


needs_bash = pytest.mark.skipif(BASH is None, reason="bash is not installed")


@needs_bash
def test_bash_registers_the_function() -> None:
    script = f"source {shlex.quote(str(COMPLETIONS / 'callm.bash'))}; complete -p callm"
    out = subprocess.run([BASH or "bash", "--norc", "-c", script], capture_output=True, text=True)
    assert "-F _callm" in out.stdout


@needs_bash
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["callm", ""],
         ["chat", "providers", "models", "usage", "serve", "routes", "schema", "logs",
           "templates", "ledger"]),
        (["callm", "pro"], ["providers"]),
        (["callm", "providers", ""],
         ["add", "list", "show", "remove", "enable", "disable", "set-key", "catalog", "verify",
          "import", "key"]),
        (["callm", "providers", "s"], ["show", "set-key"]),
        (["callm", "models", "d"], ["default"]),
        (["callm", "--json", "providers", "v"], ["verify"]),
        (["callm", "--config", "my.toml", "us"], ["usage"]),
        (["callm", "--config", "=", "my.toml", "us"], ["usage"]),
        (["callm", "--ver"], ["--verbose", "--version"]),
        (
            ["callm", "providers", "add", "--key-"],
            ["--key-env", "--key-stdin", "--key-header", "--key-prefix"],
        ),
        (["callm", "providers", "add", "--driver", "sim", "--no-"], ["--no-key", "--no-verify"]),
        (["callm", "providers", "remove", "-"], ["--yes", "-y", "--help", "-h"]),
        (["callm", "usage", "report", "--by", ""], ["provider", "model", "day", "token"]),
        (["callm", "usage", "report", "--by", "m"], ["model"]),
        (["callm", "chat", "-m", "sim", "--max-"], ["--max-tokens", "--max-cost"]),
        (["callm", "providers", "add", "--driver", ""], []),  # a free value: nothing to offer
        (["callm", "providers", "list", ""], []),  # a leaf command
        (["callm", "nosuch", ""],
         ["chat", "providers", "models", "usage", "serve", "routes", "schema", "logs",
           "templates", "ledger"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0] == "callm" else None,
)  # fmt: skip
def test_bash_completes(words: list[str], expected: list[str]) -> None:
    assert complete(words) == expected


@needs_bash
def test_bash_completes_global_options_only_at_the_top() -> None:
    top = complete(["callm", "--"])
    assert {"--config", "--json", "--quiet", "--no-color", "--verbose", "--version"} <= set(top)
    assert "--json" not in complete(["callm", "providers", "list", "--"])


@needs_bash
def test_bash_completes_file_names_for_config(tmp_path: Path) -> None:
    (tmp_path / "work.toml").write_text("")
    (tmp_path / "other.txt").write_text("")
    assert complete(["callm", "--config", "wo"], cwd=tmp_path) == ["work.toml"]


# ---- zsh and fish, where installed -------------------------------------------------------

ZSH, FISH = shutil.which("zsh"), shutil.which("fish")
needs_zsh = pytest.mark.skipif(ZSH is None, reason="zsh is not installed")
needs_fish = pytest.mark.skipif(FISH is None, reason="fish is not installed")

# compsys itself needs a terminal; these stand-ins print what _callm hands to it instead.
ZSH_STUBS = """
compdef() { :; }
_describe() { local arr=${@[-1]}; print -l -- ${(P)arr%%:*}; }
compadd() { shift; print -l -- "$@"; }
_files() { print -- '<files>'; }
_message() { print -- '<value>'; }
"""


def zsh_complete(words: list[str]) -> list[str]:
    """What _callm offers (before compsys filters by prefix) for the last of `words`."""
    script = "\n".join(
        [
            ZSH_STUBS,
            f"source {shlex.quote(str(COMPLETIONS / '_callm'))}",
            f"words=({' '.join(shlex.quote(w) for w in words)})",
            f"CURRENT={len(words)}",
            f"PREFIX={shlex.quote(words[-1])}",
            "_callm",
        ]
    )
    proc = subprocess.run([ZSH or "zsh", "-f", "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout.splitlines()


@needs_zsh
def test_zsh_script_parses() -> None:
    proc = subprocess.run([ZSH or "zsh", "-n", str(COMPLETIONS / "_callm")], capture_output=True)
    assert proc.returncode == 0, proc.stderr


@needs_zsh
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (
            ["callm", ""],
            [
                "chat",
                "providers",
                "models",
                "usage",
                "serve",
                "routes",
                "schema",
                "logs",
                "templates",
                "ledger",
            ],
        ),
        (["callm", "--json", "models", ""], ["sync", "list", "show", "default"]),
        (["callm", "--config", "x.toml", "usage", ""], ["report", "budget"]),
        (["callm", "--config", ""], ["<files>"]),
        (["callm", "usage", "report", "--by", ""], ["provider", "model", "day", "token"]),
        (["callm", "providers", "add", "--driver", ""], ["<value>"]),
        (["callm", "providers", "set-key", "-"], ["--key-stdin", "--help", "-h"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0] == "callm" else None,
)
def test_zsh_completes(words: list[str], expected: list[str]) -> None:
    assert zsh_complete(words) == expected


def fish_complete(line: str) -> list[str]:
    """Candidates fish offers for the command line `line` (cursor at its end)."""
    script = (
        f"source {shlex.quote(str(COMPLETIONS / 'callm.fish'))}; complete -C{shlex.quote(line)}"
    )
    proc = subprocess.run(
        [FISH or "fish", "--no-config", "-c", script], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return sorted(line.split("\t")[0] for line in proc.stdout.splitlines())


@needs_fish
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "callm ",
            [
                "chat",
                "ledger",
                "logs",
                "models",
                "providers",
                "routes",
                "schema",
                "serve",
                "templates",
                "usage",
            ],
        ),
        ("callm --json providers s", ["set-key", "show"]),
        ("callm --config x.toml us", ["usage"]),
        ("callm usage report --by ", ["day", "model", "provider", "token"]),
        ("callm providers remove -", ["--help", "--yes", "-h", "-y"]),
        ("callm providers list --", ["--help"]),
    ],
)
def test_fish_completes(line: str, expected: list[str]) -> None:
    assert fish_complete(line) == expected
