"""How `providers verify` looks: probe estimates first, a live progress display on a terminal
(stderr), then a table; JSON on stdout when piped or with --json. Returns the exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callm.cli.context import State
    from callm.render.output import Output
    from callm.verify import Plan, VerifyResult


def run_verify(st: State, names: list[str], timeout: float, probe: str | None) -> int:
    """Check the providers; 0 when all pass, 1 when any fails (UsageError -> 2, raised)."""
    from callm.errors import EXIT_FAILED, EXIT_OK
    from callm.verify import prepare, verify_many

    cfg = st.config()
    out = st.out
    plan = prepare(cfg, names, probe)
    if not plan.names:
        out.info("no enabled providers to verify; add one with `callm providers add NAME`")
        if out.json_mode or not out.stdout_isatty:
            from callm.outputs import dump

            out.emit_json(dump("providers-verify", []))
        return EXIT_OK
    _show_estimates(out, plan)
    if out.stderr_isatty and not out.quiet:
        results = _with_progress(
            out,
            plan,
            lambda cb: verify_many(cfg, plan.names, timeout, probe, on_result=cb, plan=plan),
        )
    else:
        results = verify_many(cfg, plan.names, timeout, probe, plan=plan)
    if out.json_mode or not out.stdout_isatty:
        from callm.outputs import dump

        out.emit_json(
            dump("providers-verify", [r.as_dict(with_probe=bool(probe)) for r in results])
        )
    else:
        _table(out, results, bool(probe))
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def _money(usd: float | None) -> str:
    if usd is None:
        return "unknown"
    return f"${usd:.6f}" if usd < 0.01 else f"${usd:.4f}"


def _show_estimates(out: Output, plan: Plan) -> None:
    for name, model in plan.probes.items():
        cost, source = plan.estimate(name)
        where = f" ({source})" if source else " (no price known for this model)"
        out.info(f"probe {name}/{model}: 1-token completion, estimated cost {_money(cost)}{where}")


def _with_progress(out: Output, plan: Plan, run: Any) -> list[VerifyResult]:
    """Run `run(callback)` under a live display of each provider's state on stderr."""
    from rich.live import Live
    from rich.spinner import Spinner
    from rich.table import Table
    from rich.text import Text

    spinners = {n: Spinner("dots") for n in plan.names}
    done: dict[str, VerifyResult] = {}

    def render() -> Table:
        grid = Table.grid(padding=(0, 2))
        for n in plan.names:
            r = done.get(n)
            if r is None:
                grid.add_row(spinners[n], Text(n), Text("checking...", style="dim"))
            elif r.ok:
                grid.add_row(Text("ok", style="green"), Text(n), Text(f"{r.latency_ms} ms"))
            else:
                grid.add_row(Text("FAIL", style="red"), Text(n), Text(f"{r.stage}: {r.error}"))
        return grid

    with Live(
        render(), console=out.console(stderr=True), transient=True, refresh_per_second=12
    ) as live:

        def update(r: VerifyResult) -> None:
            done[r.name] = r
            live.update(render())

        return run(update)


def _table(out: Output, results: list[VerifyResult], with_probe: bool) -> None:
    columns = ["name", "ok", "stage", "message", "latency", "models"]
    if with_probe:
        columns.append("probe")
    rows: list[list[str]] = []
    for r in results:
        row = [
            r.name,
            "yes" if r.ok else "no",
            r.stage or "-",
            r.error or "-",
            f"{r.latency_ms} ms" if r.latency_ms is not None else "-",
            str(r.models) if r.models is not None else "-",
        ]
        if with_probe:
            row.append(_probe_cell(r))
        rows.append(row)
    out.table(columns, rows)
    failed = sum(not r.ok for r in results)
    out.info(f"{len(results) - failed} of {len(results)} providers passed")


def _probe_cell(r: VerifyResult) -> str:
    p = r.probe
    if p is None:
        return "-"
    if not p.ok:
        return "failed"
    return f"{p.model}: {p.latency_ms} ms, {_money(p.cost_usd)}"
