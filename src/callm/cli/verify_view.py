"""How `providers verify` looks: probe estimates first, a live progress display on a terminal
(stderr), then a table; JSON on stdout when piped or with --json. Returns the exit code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callm.cli.context import State
    from callm.render.output import Output
    from callm.verify import Plan, VerifyResult
    from callm.verify_models import Chain, ModelPlan


@dataclass
class VerifyOptions:
    timeout: float = 10.0
    probe: str | None = None
    models: bool = False  # also probe every model the config reaches
    models_file: str | None = None
    max_cost: float | None = None
    junit: str | None = None


def run_verify(
    st: State,
    names: list[str],
    timeout: float = 10.0,
    probe: str | None = None,
    opts: VerifyOptions | None = None,
) -> int:
    """Check the providers; 0 when all pass, 1 when any fails (UsageError -> 2, raised)."""
    import time

    opts = opts or VerifyOptions(timeout, probe)
    from callm.errors import EXIT_FAILED, EXIT_OK
    from callm.verify import prepare, verify_many

    started = time.time()
    cfg = st.config()
    out = st.out
    plan = prepare(cfg, names, opts.probe)
    mplan = _model_plan(st, plan.names if names else None, opts)
    if not plan.names and mplan is None:
        out.info("no enabled providers to verify; add one with `callm providers add NAME`")
        if out.json_mode or not out.stdout_isatty:
            from callm.outputs import dump

            out.emit_json(dump("providers-verify", []))
        _ci_outputs(st, opts, [], None, started)
        return EXIT_OK
    _show_estimates(out, plan)
    _check_cost(out, plan, mplan, opts.max_cost)

    json_out = out.json_mode or not out.stdout_isatty
    schema = "providers-verify" if mplan is None else "providers-verify-models"

    def run(cb: Any = None) -> list[VerifyResult]:
        # JSON goes out through pydantic: import it and build the output's model while the
        # checks wait for their answers, not after.
        ready = (lambda: _output_model(schema)) if json_out else None
        return verify_many(
            cfg, plan.names, opts.timeout, opts.probe, on_result=cb, plan=plan, on_start=ready
        )

    probing = _start_probes(cfg, mplan, opts.timeout)  # alongside the provider checks
    if out.stderr_isatty and not out.quiet and plan.names:
        results = _with_progress(out, plan, run)
    else:
        results = run()
    if probing is not None:
        probing.join()
    if json_out:
        from callm.outputs import dump

        rows = [r.as_dict(with_probe=bool(opts.probe)) for r in results]
        if mplan is None:
            out.emit_json(dump("providers-verify", rows))
        else:
            out.emit_json(
                dump(
                    "providers-verify-models",
                    {
                        "providers": rows,
                        "models": [c.as_dict() for c in mplan.checks.values()],
                        "fallbacks": [c.as_dict() for c in mplan.chains],
                    },
                )
            )
    else:
        if results:
            _table(out, results, bool(opts.probe))
        if mplan is not None:
            _models_table(out, mplan)
    _ci_outputs(st, opts, results, mplan, started)
    ok = all(r.ok for r in results) and (mplan is None or all(c.ok for c in mplan.checks.values()))
    return EXIT_OK if ok else EXIT_FAILED


def _output_model(name: str) -> None:
    from callm.outputs import SCHEMAS

    SCHEMAS[name].model_rebuild()  # builds what defer_build left for the first use


def _start_probes(cfg: Any, mplan: ModelPlan | None, timeout: float) -> Any:
    if mplan is None:
        return None
    import threading

    from callm.verify_models import probe_all

    t = threading.Thread(target=probe_all, args=(cfg, mplan, timeout), daemon=True)
    t.start()
    return t


def _model_plan(st: State, providers: list[str] | None, opts: VerifyOptions) -> ModelPlan | None:
    if not (opts.models or opts.models_file):
        return None
    from callm.verify_models import prepare

    return prepare(st.config(), providers, opts.models_file)


def _check_cost(out: Output, plan: Plan, mplan: ModelPlan | None, max_cost: float | None) -> None:
    """Print the run's estimated total; with --max-cost, refuse (exit 5) before any probe
    when it is higher or cannot be known."""
    from callm.errors import BudgetError

    total, unknown = 0.0, []
    for name, model in plan.probes.items():
        cost = plan.estimate(name)[0]
        if cost is None:
            unknown.append(f"{name}/{model}")
        else:
            total += cost
    if mplan is not None:
        more, missing = mplan.total_estimate()
        total += more
        unknown += missing
        n = len(mplan.checks)
        extra = f"; no price known for {len(unknown)}" if unknown else ""
        out.info(
            f"probing {n} model{'s' * (n != 1)} (1-token completions):"
            f" estimated total {_money(total)}{extra}"
        )
    if max_cost is None:
        return
    if unknown:
        raise BudgetError(
            f"cannot check --max-cost ${max_cost:g}: no price known for {', '.join(unknown)}",
            hint='set [pricing."provider/model"] in the config, or run `callm models sync`',
        )
    if total > max_cost + 1e-12:
        raise BudgetError(
            f"the probes may cost {_money(total)}, more than --max-cost ${max_cost:g}",
            hint="raise --max-cost, or verify fewer models (PROVIDER names, --models-file)",
        )


def _ci_outputs(
    st: State,
    opts: VerifyOptions,
    results: list[VerifyResult],
    mplan: ModelPlan | None,
    started: float,
) -> None:
    from callm import ci_report

    if not opts.junit and not ci_report.on_github():
        return
    all_cases = ci_report.cases(results, mplan)
    if opts.junit:
        ci_report.write_junit(opts.junit, all_cases, started)
    if ci_report.on_github():
        chains = [_chain_line(c) for c in mplan.chains] if mplan else []

        def write(line: str) -> None:
            st.out.stderr.write(line)
            st.out.stderr.flush()

        ci_report.github_report(all_cases, chains, write)


def _chain_line(chain: Chain) -> str:
    what = {
        "usable": "usable",
        "degraded": f"usable but degraded: {chain.members[0]} does not answer",
        "unusable": "unusable: no member answers",
    }[chain.status]
    return f"fallback {chain.name} ({' -> '.join(chain.members)}): {what}"


def _models_table(out: Output, mplan: ModelPlan) -> None:
    rows = []
    for c in mplan.checks.values():
        p = c.probe
        detail = (
            f"{p.latency_ms} ms, {_money(p.cost_usd)}" if c.ok and p else (c.message or "failed")
        )
        rows.append([c.label, "yes" if c.ok else "no", ", ".join(c.used_by), detail])
    out.table(["model", "ok", "used by", "result"], rows)
    for chain in mplan.chains:
        out.info(_chain_line(chain))
    failed = sum(not c.ok for c in mplan.checks.values())
    n = len(mplan.checks)
    out.info(f"{n - failed} of {n} models answered")


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
