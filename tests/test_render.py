"""Stream sinks: raw text to pipes, rendered Markdown to terminals."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from callm.render.stream import MarkdownSink, PipeClosed, PlainSink, split_stable
from callm.types import Finished, ReasoningDelta, RefusalDelta, TextDelta, Usage, UsageReport

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.mark.parametrize(
    ("text", "done", "rest"),
    [
        ("one line", "", "one line"),
        ("para one\n\npara two", "para one\n\n", "para two"),
        ("a\n\nb\n\nc", "a\n\nb\n\n", "c"),
        ("```py\nx = 1\n\ny = 2\n", "", "```py\nx = 1\n\ny = 2\n"),  # blank line inside a fence
        ("```py\nx = 1\n```\n\nafter", "```py\nx = 1\n```\n\n", "after"),
        ("crlf\r\n\r\nnext", "crlf\r\n\r\n", "next"),
    ],
)
def test_split_stable(text: str, done: str, rest: str) -> None:
    assert split_stable(text) == (done, rest)


def test_plain_sink_writes_text_and_refusals_only() -> None:
    out = io.StringIO()
    sink = PlainSink(out)
    for ev in (
        ReasoningDelta("thinking..."),
        TextDelta("Hello"),
        UsageReport(Usage(1, 2)),
        TextDelta(", world"),
        RefusalDelta(" (refused)"),
        Finished("stop"),
    ):
        sink(ev)
    sink.close()
    assert out.getvalue() == "Hello, world (refused)\n"


def test_plain_sink_broken_pipe_is_pipe_closed() -> None:
    class Gone(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError

    with pytest.raises(PipeClosed):
        PlainSink(Gone())(TextDelta("x"))


def _terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=80, color_system="standard"), buf


def test_markdown_sink_renders_every_block_once() -> None:
    console, buf = _terminal()
    sink = MarkdownSink(console, min_interval=0)
    doc = (
        "# Title\n\nSome **bold** text.\n\n- item one\n- item two\n\n"
        "```py\nprint(1)\n```\n\nThe end"
    )
    for i in range(0, len(doc), 3):  # token-sized pieces, cut anywhere
        sink(TextDelta(doc[i : i + 3]))
    sink.close()
    plain = ANSI.sub("", buf.getvalue())
    for words in ("Title", "bold", "item one", "item two", "print(1)", "The end"):
        assert words in plain
    assert "**" not in plain, "Markdown is rendered, not shown raw"
    assert sink.pending == ""


def test_markdown_sink_keeps_text_when_closed_early() -> None:
    """Ctrl-C or a broken stream: close() prints what arrived."""
    console, buf = _terminal()
    sink = MarkdownSink(console)
    sink(TextDelta("partial answer that never finis"))
    sink.close()
    assert "partial answer that never finis" in ANSI.sub("", buf.getvalue())


def test_markdown_sink_backs_off_when_redraws_are_slow() -> None:
    console, _ = _terminal()
    sink = MarkdownSink(console, min_interval=0)
    sink(TextDelta("```\n" + "code line\n" * 2000))
    assert sink.interval > 0, "a costly redraw widens the interval before the next one"
    sink.close()
