"""README opens with the two set-up commands, and CI runs exactly its test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_commands() -> list[str]:
    """The lines of README's first code block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```[a-z]*\n(.*?)```", text, re.S)
    assert match, "README.md has no code block"
    assert text.index("```") < text.index("\n## "), "the commands must come before any section"
    return [line.strip() for line in match.group(1).splitlines() if line.strip()]


def test_readme_opens_with_install_and_test_commands() -> None:
    install, test = setup_commands()
    assert install.startswith("pip install .") and 'callm chat -m sim "hello"' in install
    assert "pytest" in test


def ci_commands() -> list[str]:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in ci
    return [line.strip() for line in ci.splitlines() if line.strip()[:1] not in ("", "#")]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """Verbatim, once, with its status kept and given back when it failed: the CLI tests on
    the newest typer that follow it cannot turn a failure into a pass."""
    _, test = setup_commands()
    commands = ci_commands()
    assert commands.count(test) == 1
    i = commands.index(test)
    assert commands[i - 1 : i + 3] == ["set +e", test, "readme_status=$?", "set -e"]
    assert commands[-2:] == [
        'if [ "$readme_status" -ne 0 ]; then exit "$readme_status"; fi',
        'exit "$latest_status"',
    ]


def test_ci_also_runs_the_cli_tests_on_the_newest_typer() -> None:
    commands = ci_commands()
    run = next(c for c in commands if c.startswith(".venv-typer-latest/bin/python -m pytest"))
    assert any("'typer>=0.29'" in c for c in commands)
    i = commands.index(run)
    # the command goes on over a few lines; its last one keeps the status
    tail = commands[i : commands.index('exit "$latest_status"')]
    assert any(c.endswith("|| latest_status=$?") for c in tail)
    files = [w for c in tail for w in c.split() if w.startswith("tests/")]
    assert files and all((ROOT / f).is_file() for f in files), files
    assert "tests/test_startup.py" not in files  # importing pydantic for --help is the cost
