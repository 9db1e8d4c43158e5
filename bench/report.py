"""Turn run_all.py's results into bench/RESULTS.md (and a short summary for the terminal)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

R = dict[str, Any]
DEPS = "typer + sqlite3 + httpx"  # as in sections.py
DEPS_CALLM = "typer + sqlite3 + httpx without its CLI (as callm)"


# ---- small helpers ----------------------------------------------------------------------


def _ms(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v * 1000:.0f} ms" if v < 10 else f"{v:.1f} s"


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def _row(rows: Iterable[R], label: str, key: str = "label") -> R | None:
    for r in rows:
        if r.get(key) == label and r.get("ok", True) and r.get("median_s") is not None:
            return r
    return None


def _ratio(a: R | None, b: R | None, key: str = "median_s") -> float | None:
    if a is None or b is None or not a.get(key) or not b.get(key):
        return None
    return a[key] / b[key]


def _table(head: list[str], body: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in body]
    return out


def _ok(value: float | None, goal: float, op: str) -> bool | None:
    if value is None:
        return None
    return value <= goal if op == "<=" else value >= goal if op == ">=" else value < goal


def _verdict(value: float | None, goal: float, op: str, cpu: float | None = None) -> str:
    """By wall clock (the goal's measure); the CPU-time verdict is added when it differs,
    since other load on the machine inflates wall clock more than CPU time."""
    ok = _ok(value, goal, op)
    if ok is None:
        return "not measured"
    text = "**met**" if ok else "**MISSED**"
    by_cpu = _ok(cpu, goal, op)
    if by_cpu is not None and by_cpu != ok:
        text += f" (by CPU time: {'met' if by_cpu else 'missed'})"
    return text


# ---- targets ------------------------------------------------------------------------------

Target = tuple[str, str, str, str, str]


def _pair(name: str, a: R | None, b: R | None, goal: float, op: str, src: str = "") -> Target:
    """Target `a / b` op goal, by wall clock and by CPU time."""
    wall, cpu = _ratio(a, b), _ratio(a, b, "cpu_s")
    a_s, b_s = (_ms(r["median_s"]) if r else "n/a" for r in (a, b))
    a_c, b_c = (_ms(r.get("cpu_s")) if r else "n/a" for r in (a, b))
    best = _ratio(a, b, "best_s")
    extra = f"; {src}" if src else ""
    return (
        name,
        f"{_x(wall)} ({a_s} / {b_s}{extra}; best runs {_x(best)})",
        f"{_x(cpu)} ({a_c} / {b_c})",
        f"{op} {goal:g}x",
        _verdict(wall, goal, op, cpu),
    )


def targets(res: R) -> list[Target]:
    """(target, measured by wall clock, by CPU time, goal, verdict) for each goal of the issue."""
    out: list[Target] = []
    st = res.get("startup", {})
    own = st.get("rows", [])  # every startup ratio from the same interleaved rounds
    out.append(
        _pair(
            '`callm --help` / `python -c "import typer"`',
            _row(own, "callm --help"),
            _row(own, 'python -c "import typer"'),
            1.3,
            "<=",
        )
    )
    out.append(
        _pair(
            '`callm providers list` (20 providers) / `python -c "import typer, pydantic"`',
            _row(own, "callm providers list (20 providers)"),
            _row(own, 'python -c "import typer, pydantic"'),
            1.3,
            "<=",
        )
    )
    out.append(
        _pair(
            "... the same, first run after the config changed (no validated copy)",
            _row(own, "callm providers list (20 providers) (no validated copy)"),
            _row(own, 'python -c "import typer, pydantic"'),
            1.3,
            "<=",
        )
    )
    ch = res.get("chat", {}).get("rows", [])
    callm_chat = _row(ch, "callm chat")
    floor = _row(ch, "floor: typer + httpx + pydantic, one request")
    out.append(
        _pair(
            "one-shot chat: `callm` / floor (typer + httpx + pydantic, 1 request)",
            callm_chat,
            floor,
            1.25,
            "<=",
        )
    )
    out.append(
        _pair(
            "... the same, first run after the config changed (no validated copy)",
            _row(ch, "callm chat (no validated copy)"),
            floor,
            1.25,
            "<=",
        )
    )
    out.append(_pair("one-shot chat: `llm` 0.36 / `callm`", _row(ch, "llm"), callm_chat, 4, ">="))
    out.append(
        _pair(
            "one-shot chat: openai SDK script / `callm`",
            _row(ch, "openai SDK script"),
            callm_chat,
            4,
            ">=",
        )
    )
    sr = res.get("stream", {}).get("rows", [])
    s_callm, s_raw = (
        _row(sr, "callm chat"),
        _row(sr, "floor: typer + httpx + pydantic, one request"),
    )
    out.append(
        _pair(
            "200k-chunk stream: `callm` / raw httpx + `json.loads` loop",
            s_callm,
            s_raw,
            1.0,
            "<=",
        )
    )
    tp = res.get("typer_pin", {})
    if tp.get("rows"):
        extra = tp["rows"][0]["extra_cpu_ms"]
        v = tp.get("versions", {})
        out.append(
            (
                f"typer pin: newest typer {v.get('latest', '?')} - pinned {v.get('pinned', '?')},"
                " CPU per 12-option command (bench/typer_pin.py)",
                f"{tp['rows'][0]['extra_ms']:+.0f} ms",
                f"{extra:+.0f} ms",
                f"pin stays only while > {tp.get('limit_ms', 50):g} ms",
                tp.get("verdict", ""),
            )
        )
    else:
        out.append(
            (
                "typer pin: newest typer's extra cost per command",
                "n/a",
                "",
                "> 50 ms keeps the pin",
                "script not present" if tp.get("missing") else str(tp.get("error", "not run")),
            )
        )
    pr = [r for r in res.get("parse", {}).get("rows", []) if r["feed"] == "event"]
    c, raw, sdk = (_row(pr, k, "impl") for k in ("callm", "raw", "openai"))
    v, vc = _ratio(c, raw, "us_per_chunk"), _ratio(c, raw, "cpu_us_per_chunk")
    out.append(
        (
            "stream parsing in process: callm / raw `json.loads` loop",
            f"{_x(v)} ({_us(c)} / {_us(raw)} per chunk)",
            _x(vc),
            "<= 1.3x",
            _verdict(v, 1.3, "<=", vc),
        )
    )
    v, vc = _ratio(sdk, c, "us_per_chunk"), _ratio(sdk, c, "cpu_us_per_chunk")
    out.append(
        (
            "stream parsing in process: openai SDK / callm",
            f"{_x(v)} ({_us(sdk)} / {_us(c)} per chunk)",
            _x(vc),
            ">= 2x",
            _verdict(v, 2, ">=", vc),
        )
    )
    rr = res.get("render", {}).get("mixed", [])
    v, vc = _render_ratio(rr), _render_ratio(rr, "cpu")
    out.append(
        (
            "render: 20k-token / 10k-token reply (total time)",
            _x(v),
            _x(vc),
            "<= 2.3",
            _verdict(v, 2.3, "<=", vc),
        )
    )
    fan = res.get("fanout", {})
    fv = _first(fan.get("medians", []), "callm providers verify")
    out.append(
        (
            "verify fan-out, 10 providers x 500 ms",
            _ms(fv),
            "",
            "< 1 s",
            "script not present" if fan.get("missing") else _verdict(fv, 1.0, "<"),
        )
    )
    rep = res.get("report", {})
    rv = _first(rep.get("medians", []), "usage report --by model")
    out.append(
        (
            "`usage report --by model` on 1M rows (whole command)",
            _ms(rv),
            "",
            "< 0.5 s",
            "script not present" if rep.get("missing") else _verdict(rv, 0.5, "<"),
        )
    )
    rss = callm_chat["max_rss_mib"] if callm_chat else None
    out.append(
        (
            "one-shot chat peak RSS",
            "n/a" if rss is None else f"{rss:.1f} MiB",
            "",
            "<= 60 MiB",
            _verdict(rss, 60, "<="),
        )
    )
    return out


def _us(r: R | None) -> str:
    return "n/a" if r is None else f"{r['us_per_chunk']:.1f} µs"


def _first(medians: list[R], needle: str) -> float | None:
    """The median of the line labelled exactly `needle`, else of the first containing it."""
    for m in medians:
        if m["label"].strip() == needle:
            return m["median_s"]
    for m in medians:
        if needle in m["label"]:
            return m["median_s"]
    return None


def _render_ratio(rows: list[R], key: str = "times") -> float | None:
    by = {r["tokens"]: statistics.median(r[key]) for r in rows}
    if 10_000 in by and 20_000 in by:
        return by[20_000] / by[10_000]
    return None


# ---- sections -----------------------------------------------------------------------------


def _series_table(
    rows: list[R], base: R | None, base_name: str, extra: R | None = None, extra_name: str = ""
) -> list[str]:
    head = ["command", "median", "best", "CPU", "peak RSS", f"x {base_name}"]
    if extra is not None:
        head.append(f"x {extra_name}")
    body = []
    for r in rows:
        if not r.get("ok"):
            body.append(
                [
                    f"`{r['label']}`",
                    "failed",
                    "",
                    "",
                    "",
                    f"exit {r.get('rcs')}: {(r.get('stderr_tail') or '').strip()[-120:]!r}",
                ]
                + ([""] if extra else [])
            )
            continue
        cells = [
            f"`{r['label']}`",
            _ms(r["median_s"]),
            _ms(r["best_s"]),
            _ms(r["cpu_s"]),
            f"{r['max_rss_mib']:.0f} MiB",
            _x(_ratio(r, base)),
        ]
        if extra is not None:
            cells.append(_x(_ratio(r, extra)))
        body.append(cells)
    return _table(head, body)


def _startup(res: R) -> list[str]:
    st = res.get("startup")
    if not st:
        return []
    own = st.get("rows", [])
    out = ["## Cold start", ""]
    if st.get("script_rows"):
        out += [
            "From `bench/startup.py` (its own interleaved rounds, 20 providers configured):",
            "",
        ]
        typer = _row(st["script_rows"], 'python -c "import typer"')
        out += _table(
            ["command", "median", "best", "CPU", "x typer"],
            [
                [
                    f"`{r['label']}`",
                    _ms(r["median_s"]),
                    _ms(r["best_s"]),
                    _ms(r["cpu_s"]),
                    _x(_ratio(r, typer)),
                ]
                for r in st["script_rows"]
            ],
        )
        out += ["", "With the peers, in this runner's own interleaved rounds:", ""]
    elif st.get("script"):
        out += [f"`bench/startup.py` failed: {st['script'].get('stderr', '')[-300:]!r}", ""]
    out += _series_table(
        own,
        _row(own, 'python -c "import typer"'),
        "typer floor",
        _row(own, "callm --help"),
        "callm --help",
    )
    return [*out, ""]


def _chat(res: R) -> list[str]:
    ch = res.get("chat")
    if not ch:
        return []
    rows = ch["rows"]
    out = [
        "## One-shot chat, end to end",
        "",
        f"`{ch['tokens']}` tokens streamed from the loopback server (OpenAI chunks, usage, "
        '[DONE]); prompt "hi"; stdout to /dev/null. Each client\'s output was checked once '
        "against the expected text: " + ", ".join(f"{k}: {v}" for k, v in ch["checks"].items()),
        "",
    ]
    out += _series_table(
        rows,
        _row(rows, "floor: typer + httpx + pydantic, one request"),
        "floor",
        _row(rows, "callm chat"),
        "callm",
    )
    return [*out, ""]


def _stream(res: R) -> list[str]:
    st = res.get("stream")
    if not st:
        return []
    n = st["chunks"]
    base = _row(st["rows"], "floor: typer + httpx + pydantic, one request")
    head = ["client", "runs", "median", "chunks/s", "CPU", "peak RSS", "x raw httpx loop"]
    body = []
    for r in st["rows"]:
        label = (
            "raw httpx + json.loads over iter_lines"
            if r["label"].startswith("floor")
            else r["label"]
        )
        if not r["ok"]:
            body.append(
                [label, str(len(r["walls"])), "failed", "", "", "", str(r["stderr_tail"][-120:])]
            )
            continue
        body.append(
            [
                label,
                str(len(r["walls"])),
                _ms(r["median_s"]),
                f"{n / r['median_s']:,.0f}",
                _ms(r["cpu_s"]),
                f"{r['max_rss_mib']:.0f} MiB",
                _x(_ratio(r, base)),
            ]
        )
    return [
        "## Streaming throughput, end to end",
        "",
        f"{n:,} chunks (one token each, then finish, usage, [DONE]), one HTTP chunk per SSE "
        "event, piped to /dev/null; every client writes and flushes each token.",
        "",
        *_table(head, body),
        "",
    ]


def _parse(res: R) -> list[str]:
    pr = res.get("parse")
    if not pr:
        return []
    names = {
        "callm": "callm `stream_parser().feed`",
        "callm+acc": "callm parser + StreamAccumulator",
        "raw": "raw: split lines + `json.loads`",
        "openai": "openai SDK (MockTransport)",
    }
    body = []
    for feed in ("event", "64k"):
        rows = [r for r in pr["rows"] if r["feed"] == feed]
        raw = _row(rows, "raw", "impl")
        for r in rows:
            body.append(
                [
                    names.get(r["impl"], r["impl"]),
                    "one event" if feed == "event" else "64 KiB",
                    f"{r['tokens']:,}",
                    str(r["runs"]),
                    _ms(r["median_s"]),
                    f"{r['us_per_chunk']:.2f}",
                    f"{r['cpu_us_per_chunk']:.2f}",
                    _x(_ratio(r, raw, "us_per_chunk")),
                ]
            )
    return [
        "## Stream parsing in process",
        "",
        "The same SSE bytes (as the server sends them) handed over one event per call (what "
        "the transport yields for a chunked stream) or in 64 KiB slices; one process per run, "
        "interleaved. The SDK runs fewer chunks (it is slow); compare per chunk.",
        "",
        *_table(
            ["parser", "feed", "chunks", "runs", "median", "µs/chunk", "CPU µs/chunk", "x raw"],
            body,
        ),
        "",
    ]


def _render(res: R) -> list[str]:
    rd = res.get("render")
    if not rd:
        return []
    body = []
    for r in rd["mixed"]:
        if "tokens" not in r:
            continue
        med = statistics.median(r["times"])
        body.append(
            [
                "mixed Markdown",
                f"{r['tokens']:,}",
                f"{r['chars']:,}",
                str(len(r["times"])),
                _ms(med),
                f"{med / r['tokens'] * 1e6:.0f}",
                _ms(statistics.median(r["cpu"])),
                str(r["draws"]),
                str(r["commits"]),
            ]
        )
    done = {r["tokens"] for r in rd["fence"]}
    for r in rd["fence"]:
        med = statistics.median(r["times"])
        body.append(
            [
                "one fenced code block",
                f"{r['tokens']:,}",
                f"{r['chars']:,}",
                "1",
                _ms(med),
                f"{med / r['tokens'] * 1e6:.0f}",
                _ms(statistics.median(r["cpu"])),
                str(r["draws"]),
                str(r["commits"]),
            ]
        )
    for n in rd["fence_sizes"]:
        if n not in done:
            body.append(
                [
                    "one fenced code block",
                    f"{n:,}",
                    "",
                    "",
                    f"did not finish ({rd['fence_note']})",
                    "",
                    "",
                    "",
                    "",
                ]
            )
    ratio = _render_ratio(rd["mixed"])
    out = [
        "## Terminal rendering",
        "",
        "`MarkdownSink` with a rich Console forced to be a terminal (force_terminal=True, "
        "width 100, /dev/null), one TextDelta per word-sized token, default 50 ms redraw "
        "interval.",
        "",
        *_table(
            [
                "reply",
                "tokens",
                "chars",
                "runs",
                "median",
                "µs/token",
                "CPU",
                "redraws",
                "blocks committed",
            ],
            body,
        ),
        "",
        f"Ratio 20k/10k (mixed): **{_x(ratio)}** (goal <= 2.3).",
    ]
    if rd.get("mixed_note"):
        out.append(f"Note: {rd['mixed_note']}")
    probe = rd.get("draw_probe") or []
    if probe:
        cells = ", ".join(f"{p['chars'] // 1000} KB: {p['ms']:.0f} ms" for p in probe)
        out += [
            "",
            "One redraw of the unfinished block (a code fence stays unfinished until "
            f"it closes) costs, by the block's size: {cells}.",
        ]
        if done != set(rd["fence_sizes"]):
            out.append(
                "In `callm.render.stream.MarkdownSink.__call__` the 50 ms redraw interval is "
                "counted from the start of the previous redraw, and `_draw` renders the whole "
                "unfinished block: once one redraw takes longer than 50 ms, every token "
                "triggers another full redraw, so a long code block costs (tokens x redraw "
                "cost) and grows quadratically."
            )
    return [*out, ""]


def _external(res: R, key: str, title: str, script: str) -> list[str]:
    d = res.get(key)
    if not d:
        return []
    if d.get("missing"):
        why = d.get("why", f"`bench/{script}` is not present")
        return [f"## {title}", "", f"{why}; not measured.", ""]
    out = [
        f"## {title}",
        "",
        f"Output of `bench/{script} {' '.join(d['args'])}` (exit {d['rc']}):",
        "",
        "```",
        d["stdout"].rstrip() or "(no output)",
        "```",
    ]
    if d["rc"] != 0 and d.get("stderr"):
        out += ["", "stderr (tail):", "", "```", d["stderr"].rstrip()[-1200:], "```"]
    return [*out, ""]


def _profile(res: R) -> list[str]:
    pf = res.get("profile")
    if not pf:
        return []
    imports = pf.get("imports", [])
    out = [
        "## Where the time goes",
        "",
        'What the floors are made of (`python -c "import ..."`, interleaved):',
        "",
        *_series_table(imports, _row(imports, "import typer"), "import typer"),
        "",
        *_bound(res),
        "",
    ]
    for key, what in (
        ("importtime_chat", "one `callm chat`"),
        ("importtime_help", "`callm --help`"),
    ):
        it = pf.get(key) or {}
        if not it:
            continue
        total = (it.get("total_ms") or [{}])[0].get("cumulative_ms", 0)
        out += [
            f"Imports of {what} (`-X importtime`, which inflates every figure; "
            f"{total:.0f} ms in all): self time summed per package, and the top-level "
            "imports with everything they pulled in:",
            "",
        ]
        pk, top = it.get("packages", []), it.get("top", [])
        body = [
            [
                f"`{p['module']}`" if p else "",
                f"{p['cumulative_ms']:.1f}" if p else "",
                f"`{t['module']}`" if t else "",
                f"{t['cumulative_ms']:.1f}" if t else "",
            ]
            for p, t in _zip_longest(pk, top)
        ]
        out += [*_table(["package", "self ms", "top-level import", "cumulative ms"], body), ""]
    phases = pf.get("phases_chat") or {}
    if phases:
        out += [
            "Phases of one `callm chat` in one process (`bench/chat_phases.py`, median of 7). "
            "Not included: the interpreter's own start (`python -c pass` in the cold-start "
            "table) and its shutdown. Nested rows are part of the rows below them "
            "(`transport._open` is in `_one_call`, which is in `engine.call`, which is in "
            "the app run):",
            "",
            *_table(["phase", "ms"], [[k, f"{v:.1f}"] for k, v in phases.items()]),
            "",
        ]
    mods = (pf.get("importtime_chat") or {}).get("callm_modules") or []
    if mods:
        out += [
            "callm's own modules by import self time (`-X importtime`, inflated):",
            "",
            *_table(
                ["module", "ms"], [[f"`{m['module']}`", f"{m['cumulative_ms']:.1f}"] for m in mods]
            ),
            "",
        ]
    for key, title in (
        ("cprofile_chat", "cProfile of one `callm chat` (200 tokens), by cumulative time"),
        ("cprofile_stream", "cProfile of `callm chat` on 200,000 chunks, by own time"),
    ):
        if pf.get(key):
            out += [f"{title}:", "", "```", *pf[key], "```", ""]
    return out


def _zip_longest(a: list[R], b: list[R]) -> list[tuple[R | None, R | None]]:
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(n)]


def _bound(res: R) -> list[str]:
    """How callm's one-shot chat compares with its floor, explained from the import figures:
    the least a CLI on callm's imports can cost when the target is missed, else why it is met."""
    imports = res.get("profile", {}).get("imports", [])
    chat = res.get("chat", {}).get("rows", [])
    deps = _row(imports, f"import {DEPS_CALLM}") or _row(imports, f"import {DEPS}")
    httpx_ = _row(imports, "import httpx")
    client = _row(imports, "import httpx + httpx.Client()")
    floor = _row(chat, "floor: typer + httpx + pydantic, one request")
    callm = _row(chat, "callm chat")
    if not (deps and httpx_ and floor and callm):
        return []
    key = "cpu_s"
    if callm[key] / floor[key] <= 1.25:
        if not client:
            return []
        return [
            "Why the one-shot chat target is met (CPU time):",
            "",
            f"- The floor spends {_ms(client[key])} importing httpx and building its client "
            f"(`import httpx` alone: {_ms(httpx_[key])}, with its command-line tool); everything "
            f"callm's chat path imports ({DEPS_CALLM}) takes {_ms(deps[key])}. "
            f"The whole `callm chat` (parse, config, key, request, stream, ledger row, output) "
            f"takes {_ms(callm[key])} against the floor's {_ms(floor[key])}.",
        ]
    request = floor[key] - httpx_[key]  # the floor minus its import: client, request, parse
    least = deps[key] + request
    return [
        "Lower bound for the one-shot chat target (<= 1.25x the floor), CPU time:",
        "",
        f"- floor {_ms(floor[key])} = import httpx {_ms(httpx_[key])} + client, request and "
        f"output {_ms(request)}. Importing what callm's chat path needs ({DEPS_CALLM}) takes "
        f"{_ms(deps[key])}, so a CLI built on them needs at least {_ms(least)} = "
        f"**{_x(least / floor[key])} the floor** before any work of its own; callm chat takes "
        f"{_ms(callm[key])}.",
    ]


def render(res: R) -> str:
    meta = res.get("meta", {})
    reps = meta.get("reps", {})
    flag = " --quick" if meta.get("mode") == "quick" else ""
    m = meta
    lines = [
        "# callm benchmarks",
        "",
        f"Generated by `python bench/run_all.py{flag}` "
        f"on {meta.get('date')} in {meta.get('elapsed_s', 0):.0f} s. Do not edit by hand.",
        "",
        f"- machine: {m.get('cpu')}, {m.get('memory')}, {m.get('os')}, {m.get('python')}",
        f"- load average before / after: {meta.get('load_before')} / {meta.get('load_after')} "
        "(other work on this 2-core machine shows up as noise; CPU columns move less)",
        f"- callm: {meta.get('git')}; "
        + ", ".join(f"{k} {v}" for k, v in meta.get("callm_versions", {}).items()),
        "- peers (bench/.venv-peers): "
        + (
            ", ".join(f"{k} {v}" for k, v in meta.get("peer_versions", {}).items())
            or "not installed"
        ),
        f"- repetitions: {reps.get('light')} per cold-start / one-shot command (after a warm-up "
        f"round, interleaved), {reps.get('heavy')} per 200k stream "
        f"({reps.get('sdk_stream')} for the openai SDK), {reps.get('inproc')} in-process; "
        "figures are medians, wall clock, unless "
        "marked CPU (user + sys of that process)",
        "- everything runs against 127.0.0.1 (bench/sse_server.py) with fake keys",
        "",
        "## Targets",
        "",
        *_table(
            ["target", "measured (wall clock)", "by CPU time", "goal", "result"],
            [list(t) for t in targets(res)],
        ),
        "",
    ]
    for part in (_startup, _chat, _stream, _parse, _render):
        lines += part(res)
    lines += _external(res, "fanout", "Verify fan-out", "verify_fanout.py")
    lines += _external(res, "report", "Usage report on 1M rows", "usage_report.py")
    lines += _external(
        res, "report_pg", "Usage report on 1M rows: SQLite and PostgreSQL", "usage_report_pg.py"
    )
    lines += _profile(res)
    if res.get("errors"):
        lines += [
            "## Sections that failed",
            "",
            *[f"- {k}: {v}" for k, v in res["errors"].items()],
            "",
        ]
    analysis = res.get("analysis")
    if analysis:
        lines += ["## Analysis of the misses", "", analysis.rstrip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def summary(res: R) -> str:
    rows = targets(res)
    width = max(len(t[0]) for t in rows)
    return "\n".join(f"{t[0]:<{width}}  {t[1]:<46} {t[3]:<9} {t[4].replace('*', '')}" for t in rows)
