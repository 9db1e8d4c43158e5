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


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, test = setup_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line.strip() for line in ci.splitlines() if line.strip()[:1] not in ("", "#")]
    assert commands[-1] == test  # the last thing it does, so its exit code is CI's
    assert "set -euo pipefail" in ci
