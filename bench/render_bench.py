"""Terminal rendering: a long Markdown reply through callm's MarkdownSink, token by token.

    python bench/render_bench.py [--tokens 10000 20000] [--reps R] [--doc mixed|fence]
                                 [--profile FILE]

The console is a real rich Console forced to act as a terminal (force_terminal=True, width
100) writing to /dev/null, so everything a terminal user pays for is paid: Markdown parsing,
layout, ANSI output, Live redraws (every `min_interval`, as in `callm chat`).

--doc mixed   a typical long answer: headings, paragraphs, lists, short code blocks, tables
--doc fence   one long fenced code block (the worst case for a block-at-a-time renderer)

Prints one JSON object per size: {doc, tokens, times, cpu, draws, commits}; with
--draw-probe, one more: {draw_probe: [{chars, ms}]}, the cost of one redraw of an unfinished
block of that many characters.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

PARA = (
    "The parser keeps a small amount of state between reads, so a frame split across two "
    "network packets is joined before it is decoded. This matters for **throughput** and for "
    "`latency`: every token that arrives is shown at once, and nothing is buffered longer "
    "than the renderer needs to decide where a block ends."
)
CODE = [
    "def stream(parser, chunks):",
    "    for chunk in chunks:",
    "        for event in parser.feed(chunk):",
    "            if event.kind == 'text':",
    "                yield event.text",
    "    yield from parser.close()",
]


def section(i: int) -> str:
    """About 240 tokens of typical Markdown."""
    rows = "\n".join(
        f"| row {i}.{r} | {r * 3} ms | {'ok' if r % 2 else 'slow'} |" for r in range(4)
    )
    items = "\n".join(
        f"- item {k} of section {i}: check the `value_{k}` field first" for k in range(5)
    )
    code = "\n".join(f"{line}  # {i}" if n == 0 else line for n, line in enumerate(CODE))
    return (
        f"## Section {i}: what happens next\n\n{PARA}\n\n{items}\n\n"
        f"```python\n{code}\n```\n\n{PARA}\n\n"
        f"| case | time | status |\n| --- | --- | --- |\n{rows}\n\n"
    )


_TOKEN = re.compile(r"\s*\S+|\s+")


def text_of(doc: str, n: int) -> str:
    """At least n tokens of the given kind of reply."""
    parts: list[str] = ["```python\n"] if doc == "fence" else []
    count = i = 0
    while count < n:
        i += 1
        part = (
            f"    value_{i} = compute(value_{i - 1}, step={i})  # keep going\n"
            if doc == "fence"
            else section(i)
        )
        parts.append(part)
        count += len(_TOKEN.findall(part))
    if doc == "fence":
        parts.append("```\n")
    return "".join(parts)


def tokens_of(doc: str, n: int) -> list[str]:
    """Word-sized tokens (leading whitespace attached, as LLM tokens come), cut to n."""
    return _TOKEN.findall(text_of(doc, n))[:n]


def run(tokens: list[str]) -> tuple[float, float, int, int]:
    from rich.console import Console

    from callm.render.stream import MarkdownSink
    from callm.types import TextDelta

    with open(os.devnull, "w", encoding="utf-8") as devnull:
        console = Console(file=devnull, force_terminal=True, width=100, color_system="truecolor")
        events = [TextDelta(t) for t in tokens]
        t0, c0 = time.perf_counter(), time.process_time()
        sink = MarkdownSink(console)
        counts = {"draw": 0, "commit": 0}
        _count(sink, "_draw", counts, "draw")
        _count(sink, "_commit", counts, "commit")
        for ev in events:
            sink(ev)
        sink.close()
        return time.perf_counter() - t0, time.process_time() - c0, counts["draw"], counts["commit"]


def draw_probe(sizes: list[int]) -> list[dict[str, float]]:
    """What one redraw of the unfinished block costs as it grows (a long code fence stays
    unfinished until it closes): the sink's own _draw on a pending block of each size."""
    from rich.console import Console

    from callm.render.stream import MarkdownSink

    text = text_of("fence", max(sizes))
    out = []
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        console = Console(file=devnull, force_terminal=True, width=100, color_system="truecolor")
        sink = MarkdownSink(console)
        try:
            for chars in sizes:
                sink.pending = text[:chars]
                t = time.perf_counter()
                sink._draw()
                out.append({"chars": chars, "ms": (time.perf_counter() - t) * 1000})
        finally:
            sink.pending = ""
            sink.close()
    return out


def _count(sink: Any, name: str, counts: dict[str, int], key: str) -> None:
    """Instrument one method of the sink instance (a counter, nothing else changes)."""
    inner = getattr(sink, name)

    def wrapper(*args: Any) -> Any:
        counts[key] += 1
        return inner(*args)

    setattr(sink, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[10_000, 20_000])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--doc", choices=("mixed", "fence"), default="mixed")
    ap.add_argument("--profile", type=Path, help="cProfile the largest size once, to this file")
    ap.add_argument(
        "--draw-probe",
        type=int,
        nargs="*",
        metavar="CHARS",
        help="also time one redraw of an unfinished code block of these sizes",
    )
    a = ap.parse_args()
    sys.setrecursionlimit(10000)
    run(tokens_of(a.doc, 300))  # warm up imports
    docs = {n: tokens_of(a.doc, n) for n in a.tokens}
    res = {n: {"times": [], "cpu": [], "draws": 0, "commits": 0} for n in a.tokens}
    for rep in range(a.reps):  # sizes alternate, so a change in load hits all of them
        for n, toks in docs.items():
            wall, cpu, draws, commits = run(toks)
            r = res[n]
            r["times"].append(wall)
            r["cpu"].append(cpu)
            r["draws"], r["commits"] = draws, commits
            if rep == a.reps - 1:
                print(
                    json.dumps({"doc": a.doc, "tokens": n, "chars": sum(map(len, toks)), **r}),
                    flush=True,
                )
    if a.draw_probe:
        print(json.dumps({"draw_probe": draw_probe(a.draw_probe)}), flush=True)
    if a.profile:
        import cProfile

        cProfile.runctx(
            "run(toks)",
            globals(),
            {"run": run, "toks": tokens_of(a.doc, max(a.tokens))},
            filename=str(a.profile),
        )


if __name__ == "__main__":
    main()
