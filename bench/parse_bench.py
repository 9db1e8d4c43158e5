"""In-process stream parsing: the same SSE bytes through one parser, no network.

    python bench/parse_bench.py IMPL [--tokens N] [--reps R] [--feed event|64k] [--profile FILE]

IMPL:
  callm       callm's openai driver: stream_parser().feed(piece) for every piece, then close()
  callm+acc   the same plus the engine's StreamAccumulator (what a real call also does)
  raw         the floor: split lines with a carry-over buffer, json.loads each `data:` line,
              take choices[0].delta.content
  openai      the official SDK (run with bench/.venv-peers/bin/python): a real
              client.chat.completions.create(stream=True) loop over an httpx.MockTransport
              that yields the same pieces, so it parses exactly what it would off the wire

--feed event hands over one SSE event per piece (what httpx yields for a server that sends
one HTTP chunk per event, as OpenAI-style servers do); 64k hands over 64 KiB slices.
Prints one JSON object: {impl, tokens, feed, reps, times: [...], cpu: [...], text_chars}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sse_server import sse_events


def pieces_for(tokens: int, feed: str) -> list[bytes]:
    events = list(sse_events(tokens))
    if feed == "event":
        return events
    body = b"".join(events)
    size = 64 * 1024
    return [body[i : i + size] for i in range(0, len(body), size)]


def run_callm(pieces: list[bytes]) -> int:
    from callm.drivers import get_driver
    from callm.types import TextDelta

    parser = get_driver("openai").stream_parser()
    feed = parser.feed
    n = 0
    for piece in pieces:
        for ev in feed(piece):
            if type(ev) is TextDelta:
                n += len(ev.text)
    parser.close()
    return n


def run_callm_acc(pieces: list[bytes]) -> int:
    from callm.drivers import get_driver
    from callm.drivers.base import StreamAccumulator

    parser = get_driver("openai").stream_parser()
    acc = StreamAccumulator()
    add = acc.add
    feed = parser.feed
    for piece in pieces:
        for ev in feed(piece):
            add(ev)
    for ev in parser.close():
        add(ev)
    return len(acc.finish().text)


def run_raw(pieces: list[bytes]) -> int:
    loads = json.loads
    pending = b""
    n = 0
    for piece in pieces:
        lines = (pending + piece).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line[:6] != b"data: " or line == b"data: [DONE]":
                continue
            choices = loads(line[6:])["choices"]
            if choices:
                text = choices[0]["delta"].get("content")
                if text:
                    n += len(text)
    return n


def run_openai(pieces: list[bytes]) -> int:
    import httpx
    from openai import OpenAI

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_Stream(pieces),
        )

    class _Stream(httpx.SyncByteStream):
        """The prepared pieces, as an httpx response body."""

        def __init__(self, pieces: list[bytes]) -> None:
            self.pieces = pieces

        def __iter__(self) -> Iterator[bytes]:
            return iter(self.pieces)

    client = OpenAI(
        base_url="http://127.0.0.1:9/v1",
        api_key="sk-bench-FAKE000",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    n = 0
    stream = client.chat.completions.create(
        model="gpt-bench",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices:
            text = chunk.choices[0].delta.content
            if text:
                n += len(text)
    return n


IMPLS: dict[str, Callable[[list[bytes]], int]] = {
    "callm": run_callm,
    "callm+acc": run_callm_acc,
    "raw": run_raw,
    "openai": run_openai,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("impl", choices=sorted(IMPLS))
    ap.add_argument("--tokens", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--feed", choices=("event", "64k"), default="event")
    ap.add_argument("--profile", type=Path, help="write a cProfile .pstats of one run here")
    a = ap.parse_args()
    pieces = pieces_for(a.tokens, a.feed)
    fn = IMPLS[a.impl]
    n = fn(pieces_for(50, a.feed))  # warm up: imports, first-call costs
    times: list[float] = []
    cpu: list[float] = []
    for _ in range(a.reps):
        t, c = time.perf_counter(), time.process_time()
        n = fn(pieces)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    if a.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.runcall(fn, pieces)
        prof.dump_stats(str(a.profile))
    print(
        json.dumps(
            {
                "impl": a.impl,
                "tokens": a.tokens,
                "feed": a.feed,
                "reps": a.reps,
                "times": times,
                "cpu": cpu,
                "text_chars": n,
            }
        )
    )


if __name__ == "__main__":
    main()
