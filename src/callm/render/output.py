"""Decides once how output looks (rich on a terminal, plain when piped, JSON on --json) and
carries stdout/stderr so tests can swap them. rich is imported only when a table or a
rendered reply is actually drawn."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import IO, Any

# C0 controls but tab and newline, DEL and C1: what lets a reply set the window title, clear
# the screen or move the cursor. Text that came from a server loses them on a terminal.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    return _CONTROLS.sub("", text)


def for_stream(stream: IO[str], text: str) -> str:
    """`text` as it may reach `stream`: cleaned when that is a terminal, untouched in a pipe."""
    return clean(text) if _CONTROLS.search(text) and _isatty(stream) else text


@dataclass
class Output:
    json_mode: bool = False
    quiet: bool = False
    verbose: bool = False
    no_color: bool = False
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)

    def __post_init__(self) -> None:
        if os.environ.get("NO_COLOR"):
            self.no_color = True

    # ---- decisions, made from the streams we were given ----
    @property
    def stdout_isatty(self) -> bool:
        return _isatty(self.stdout)

    @property
    def stderr_isatty(self) -> bool:
        return _isatty(self.stderr)

    @property
    def rich_stdout(self) -> bool:
        """Draw with rich: stdout is a terminal and no machine output was asked for."""
        return self.stdout_isatty and not self.json_mode

    # ---- writers ----
    def data(self, text: str) -> None:
        """Payload on stdout (plain)."""
        text = for_stream(self.stdout, text)
        self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    def emit_json(self, obj: Any) -> None:
        self.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
        self.stdout.flush()

    def info(self, text: str) -> None:
        """A diagnostic line on stderr, unless --quiet."""
        if not self.quiet:
            self.stderr.write(for_stream(self.stderr, text) + "\n")
            self.stderr.flush()

    def warn(self, text: str) -> None:
        self.stderr.write(for_stream(self.stderr, f"warning: {text}\n"))
        self.stderr.flush()

    def error(self, text: str, hint: str | None = None) -> None:
        self.stderr.write(for_stream(self.stderr, f"error: {text}\n"))
        if hint:
            self.stderr.write(for_stream(self.stderr, f"hint: {hint}\n"))
        self.stderr.flush()

    def console(self, stderr: bool = False) -> Any:
        """A rich Console bound to our stream (imported on first use)."""
        from rich.console import Console

        stream = self.stderr if stderr else self.stdout
        return Console(
            file=stream,
            no_color=self.no_color,
            force_terminal=_isatty(stream) or None,
            highlight=False,
            soft_wrap=False,
        )

    def table(self, columns: list[str], rows: list[list[str]], title: str | None = None) -> None:
        """A table: rich on a terminal, tab-separated with a header row when piped."""
        if self.rich_stdout:
            from rich.table import Table

            t = Table(title=title, show_edge=False, header_style="bold")
            for c in columns:
                t.add_column(c, overflow="fold")
            for r in rows:
                t.add_row(*(clean(c) for c in r))
            self.console().print(t)
        else:
            lines = ["\t".join(columns)] + ["\t".join(r) for r in rows]
            self.data("\n".join(lines))


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
