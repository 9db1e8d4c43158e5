"""Where streamed replies go: raw text to a pipe, rendered Markdown to a terminal.

The terminal renderer keeps cost linear in the reply length: finished Markdown blocks
(separated by a blank line outside code fences) are rendered once and printed for good; only
the block still being written is redrawn, and at most every `min_interval` seconds.
"""

from __future__ import annotations

import time
from typing import IO, Any

from callm.errors import OutputClosed
from callm.render.output import clean
from callm.types import RefusalDelta, StreamEvent, TextDelta


class PipeClosed(OutputClosed):
    """The reader went away (`| head -1`): stop quietly."""


class PlainSink:
    """Raw text, written and flushed chunk by chunk, no ANSI codes."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = _isatty(stream)
        self.wrote_any = False
        self.ends_with_newline = True

    def __call__(self, ev: StreamEvent) -> None:
        t = type(ev)
        if t is TextDelta or t is RefusalDelta:
            text = ev.text  # type: ignore[union-attr]
            if self.tty:  # plain text to a terminal (--no-color...): still no escapes
                text = clean(text)
            if not text:
                return
            try:
                self.stream.write(text)
                self.stream.flush()
            except BrokenPipeError:
                raise PipeClosed from None
            self.wrote_any = True
            self.ends_with_newline = text.endswith("\n")

    def close(self) -> None:
        if self.wrote_any and not self.ends_with_newline:
            try:
                self.stream.write("\n")
                self.stream.flush()
            except BrokenPipeError:
                raise PipeClosed from None


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def split_stable(text: str) -> tuple[str, str]:
    """Split Markdown into (finished blocks, block in progress). A block is finished once a
    blank line follows it, unless we are inside a ``` fence."""
    cut = 0
    in_fence = False
    pos = 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            in_fence = not in_fence
        pos += len(line)
        if not in_fence and stripped == "" and line.endswith("\n"):
            cut = pos
    return text[:cut], text[cut:]


class MarkdownSink:
    """Rendered Markdown on a terminal, redrawing only the unfinished block."""

    def __init__(self, console: Any, min_interval: float = 0.05) -> None:
        from rich.live import Live

        self.console = console
        self.min_interval = min_interval
        self.pending = ""  # the block not yet printed for good (starts outside any fence)
        self.live = Live(console=console, auto_refresh=False, transient=True)
        self.live.start()
        self.last_draw = 0.0
        self.interval = min_interval

    def __call__(self, ev: StreamEvent) -> None:
        t = type(ev)
        if t is not TextDelta and t is not RefusalDelta:
            return
        text = clean(ev.text)  # type: ignore[union-attr]  # a terminal: no escapes from a reply
        self.pending += text
        if "\n" in text:
            done, rest = split_stable(self.pending)
            if done:
                self._commit(done)
                self.pending = rest
                self.interval = self.min_interval
        if time.monotonic() - self.last_draw >= self.interval:
            began = time.monotonic()
            self._draw()
            self.last_draw = time.monotonic()
            # A redraw costs time proportional to the unfinished block (a long code block is
            # re-highlighted each time): wait at least twice that long before the next one,
            # so drawing never takes more than a third of the time and stays linear overall.
            self.interval = max(self.min_interval, 2 * (self.last_draw - began))

    def _markdown(self, text: str) -> Any:
        from rich.markdown import Markdown

        return Markdown(text)

    def _commit(self, text: str) -> None:
        # printed above the live area; it never changes again
        self.live.update("", refresh=False)
        self.live.console.print(self._markdown(text))

    def _draw(self) -> None:
        self.live.update(self._markdown(self.pending) if self.pending.strip() else "", refresh=True)

    def close(self) -> None:
        """Print what is left for good (also on errors and Ctrl-C: the text stays)."""
        self.live.update("", refresh=True)
        self.live.stop()
        if self.pending.strip():
            self.console.print(self._markdown(self.pending))
        self.pending = ""
