"""`callm usage ...`: what your calls cost. Thin: the SQL lives in callm.ledger.report."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

from typing import Annotated, Any

import typer

from callm.cli.context import state

app = typer.Typer(help="What your calls cost.", no_args_is_help=True)

_BAR_WIDTH = 30


@app.command("report")
def report(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(metavar="WHEN", help="From: 7d, 24h, 2w, today, 2026-11-01, an ISO time."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(metavar="WHEN", help="Up to (a bare date includes that day)."),
    ] = None,
    by: Annotated[
        str, typer.Option(metavar="provider|model|day|token", help="Group by.")
    ] = "model",
    provider: Annotated[str | None, typer.Option(metavar="P", help="Only this provider.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    csv_out: Annotated[
        bool, typer.Option("--csv", help="CSV: a header row, a row per group.")
    ] = False,
) -> None:
    """Requests, failures, tokens, cost, latency and attempts per group, with totals."""
    from callm.errors import UsageError
    from callm.ledger import report as rep

    st = state(ctx)
    json_mode = json_out or st.out.json_mode
    if json_mode and csv_out:
        raise UsageError("--json and --csv do not go together")
    by = by.strip().lower()
    if by not in rep.BY:
        raise UsageError(f"--by {by!r}: use one of {', '.join(rep.BY)}")
    lo = rep.parse_when(since) if since else None
    hi = rep.parse_when(until, until=True) if until else None
    data = rep.report(since=lo, until=hi, by=by, provider=provider)
    if json_mode:
        from callm.outputs import dump

        st.out.emit_json(dump("usage-report", data))
    elif csv_out:
        st.out.stdout.write(rep.to_csv(data))
        st.out.stdout.flush()
    else:
        _human(st.out, data, by, _range(since, until))


def _range(since: str | None, until: str | None) -> str:
    if not since and not until:
        return "all time"
    return f"{'since ' + since if since else 'from the start'}{' until ' + until if until else ''}"


def _usd(v: float | None) -> str:
    from callm.pricing import format_usd

    return "unknown" if v is None else format_usd(v)


def _ms(v: int | None) -> str:
    if v is None:
        return "-"
    return f"{v} ms" if v < 1000 else f"{v / 1000:.2f} s"


def _cells(key: str, g: dict[str, Any], tries: bool) -> list[str]:
    cost = _usd(g["cost_usd"])
    if g["unpriced_requests"] and g["cost_usd"] is not None:
        cost += f" (+{g['unpriced_requests']} unpriced)"
    return [
        key,
        str(g["requests"]),
        str(g["failures"]),
        f"{g['input_tokens']:,}",
        f"{g['output_tokens']:,}",
        cost,
        _ms(g["p50_latency_ms"]),
        _ms(g["p95_latency_ms"]),
        *((str(g["attempts"]), str(g["failed_attempts"])) if tries else ()),
    ]


def _human(out: Any, data: dict[str, Any], by: str, span: str) -> None:
    groups, totals = data["groups"], data["totals"]
    if not groups:
        out.info(f"no calls recorded ({span})")
        return
    columns = [by, "requests", "failed", "tokens in", "tokens out", "cost", "p50", "p95"]
    # Attempts of each provider, whichever answered; when none failed, every call was answered
    # by its first model and they repeat `requests` (the JSON and CSV always have them).
    tries = bool(totals["failed_attempts"])
    if tries:
        columns += ["attempts", "failed attempts"]
    rows = [_cells(g["key"], g, tries) for g in groups] + [_cells("total", totals, tries)]
    out.table(columns, rows, title=f"usage by {by}, {span}" if out.rich_stdout else None)
    if out.rich_stdout:
        _chart(out, groups)


def _chart(out: Any, groups: list[dict[str, Any]]) -> None:
    """Cost per group as horizontal bars (terminal only)."""
    from rich.table import Table

    top = max((g["cost_usd"] or 0.0) for g in groups)
    if top <= 0:
        return
    t = Table(title="cost", show_header=False, show_edge=False, box=None, padding=(0, 1))
    t.add_column(justify="right", overflow="fold")
    t.add_column()
    t.add_column(justify="right")
    for g in groups:
        cost = g["cost_usd"] or 0.0
        n = cost / top * _BAR_WIDTH
        bar = "█" * int(n) + ("▌" if n - int(n) >= 0.5 else "")
        t.add_row(g["key"], f"[cyan]{bar or '▏'}[/]", _usd(g["cost_usd"]))
    out.console().print(t)


@app.command("budget")
def budget(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Each [budgets] limit: spent, held by calls in flight, limit, left, period end."""
    from callm.budgets import status

    st = state(ctx)
    cfg = st.config()
    rows = status(cfg)
    for name in sorted(set(cfg.budgets.providers) - {*cfg.providers, "sim"}):
        st.out.warn(f"budgets.providers.{name}: no provider {name!r} is configured")
    if json_out or st.out.json_mode:
        from callm.outputs import dump

        st.out.emit_json(dump("usage-budget", rows))
        return
    if not rows:
        st.out.info("no budgets configured; add daily/monthly limits under [budgets]")
        return
    _budget_table(st.out, rows)


def _budget_table(out: Any, rows: list[dict[str, Any]]) -> None:
    from callm.budgets import usd

    columns = ["budget", "spent", "held", "limit", "left", "used", "period ends"]
    cells = []
    for r in rows:
        used = f"{r['used']:.0%}" + (" !" if r["alert"] else "")
        if out.rich_stdout:  # a bar on a terminal
            n = int(min(r["used"], 1.0) * 10)
            colour = "red" if r["used"] >= 1 else "yellow" if r["alert"] else "green"
            used = f"[{colour}]{'█' * n}{'░' * (10 - n)}[/] {r['used']:.0%}"
        cells.append(
            [
                r["budget"],
                usd(r["spent_usd"]),
                usd(r["reserved_usd"]),
                usd(r["limit_usd"]),
                usd(r["left_usd"]),
                used,
                r["period_end"][:16].replace("T", " "),
            ]
        )
    out.table(columns, cells)
