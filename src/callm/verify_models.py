"""`providers verify --models`: probe every model the config can reach, the way scripts reach
them: `default_model`, each provider's default, every alias, every fallback chain, every
template's model, and the lines of `--models-file`. Each distinct provider/model gets one
1-token probe (verify.run_probe); probes run concurrently, at most PER_PROVIDER at a time
against one provider. A fallback chain is judged as a chain: usable when any member answers,
degraded when its first member does not."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callm.errors import UsageError

if TYPE_CHECKING:
    from callm.config.schema import Config
    from callm.types import Price
    from callm.verify import ProbeResult

PER_PROVIDER = 4  # concurrent probes against one provider (vendors rate-limit bursts)


@dataclass
class ModelCheck:
    label: str  # provider/model, or the spec as written when it does not resolve
    provider: str | None
    model: str | None
    used_by: list[str] = field(default_factory=list)  # "default_model", "alias fast"...
    price: Price | None = None
    probe: ProbeResult | None = None
    error: str | None = None  # resolution problem (unknown provider, alias loop)

    @property
    def ok(self) -> bool:
        return self.error is None and self.probe is not None and self.probe.ok

    @property
    def message(self) -> str | None:
        if self.error:
            return self.error
        if self.probe is None:
            return "not probed"
        return self.probe.error

    def estimate(self) -> float | None:
        from callm.verify import estimate_probe_cost

        return estimate_probe_cost(self.price)[0] if self.error is None else 0.0

    def as_dict(self) -> dict[str, Any]:
        p = self.probe
        return {
            "model": self.label,
            "provider": self.provider,
            "ok": self.ok,
            "used_by": self.used_by,
            "error": self.message if not self.ok else None,
            "latency_ms": p.latency_ms if p else None,
            "estimated_cost_usd": self.estimate(),
            "cost_usd": p.cost_usd if p else None,
        }


@dataclass
class Chain:
    name: str  # the key under [fallbacks]
    members: list[str]  # labels, first = the model the chain starts with
    status: str = "unknown"  # usable | degraded | unusable

    def as_dict(self) -> dict[str, Any]:
        return {"fallback": self.name, "members": self.members, "status": self.status}


@dataclass
class ModelPlan:
    checks: dict[str, ModelCheck]  # label -> check, in discovery order
    chains: list[Chain]

    def total_estimate(self) -> tuple[float, list[str]]:
        """The summed estimate of every probe, and the models whose price is unknown."""
        total, unknown = 0.0, []
        for c in self.checks.values():
            cost = c.estimate()
            if cost is None:
                unknown.append(c.label)
            else:
                total += cost
        return total, unknown


def read_models_file(path: str) -> list[tuple[str, str]]:
    """(MODEL, "file:LINE") per line; blank lines and # comments skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--models-file {path}: {exc}") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        spec = line.split("#", 1)[0].strip()
        if spec:
            out.append((spec, f"{Path(path).name}:{n}"))
    return out


def references(cfg: Config, models_file: str | None = None) -> list[tuple[str, str]]:
    """(spec, where it comes from) for every model the config reaches."""
    refs: list[tuple[str, str]] = []
    if cfg.default_model:
        refs.append((cfg.default_model, "default_model"))
    for name, pc in sorted(cfg.providers.items()):
        if pc.default_model:
            refs.append((f"{name}/{pc.default_model}", f"{name} default"))
    refs += [(alias, f"alias {alias}") for alias in sorted(cfg.aliases)]
    for key, members in sorted(cfg.fallbacks.items()):
        refs += [(m, f"fallback {key}") for m in [key, *members]]
    for name, tpl in sorted((getattr(cfg, "templates", None) or {}).items()):
        model = getattr(tpl, "model", None) or (tpl.get("model") if isinstance(tpl, dict) else None)
        if model:
            refs.append((model, f"template {name}"))
    if models_file:
        refs += read_models_file(models_file)
    return refs


def prepare(cfg: Config, providers: list[str] | None, models_file: str | None) -> ModelPlan:
    """Resolve every reference; `providers` (when given) keeps only models on them."""
    from callm.endpoints import provider_config, resolve_target
    from callm.errors import CallmError
    from callm.verify import probe_price

    checks: dict[str, ModelCheck] = {}
    by_spec: dict[str, str] = {}
    for spec, where in references(cfg, models_file):
        try:
            t = resolve_target(cfg, spec)
        except CallmError as exc:
            check = checks.setdefault(spec, ModelCheck(spec, None, None, error=exc.message))
        else:
            if providers and t.provider not in providers:
                continue
            check = checks.get(t.label) or checks.setdefault(
                t.label,
                ModelCheck(
                    t.label,
                    t.provider,
                    t.model,
                    price=probe_price(cfg, t.provider, provider_config(cfg, t.provider), t.model),
                ),
            )
            by_spec[spec] = t.label
        if where not in check.used_by:
            check.used_by.append(where)
    chains = []
    for key, members in sorted(cfg.fallbacks.items()):
        labels = [by_spec.get(s, s) for s in [key, *members]]
        if any(lab in checks for lab in labels):
            chains.append(Chain(key, list(dict.fromkeys(labels))))
    return ModelPlan(checks, chains)


def probe_all(cfg: Config, plan: ModelPlan, timeout: float) -> None:
    """Probe every resolved model, filling `probe` in; then judge the chains."""
    from callm.endpoints import endpoint, provider_config
    from callm.fanout import fan_out
    from callm.verify import ProbeResult, classify, run_probe

    todo = [c for c in plan.checks.values() if c.error is None]
    gates: dict[str, threading.Semaphore] = {}
    for c in todo:
        gates.setdefault(c.provider or "", threading.Semaphore(PER_PROVIDER))

    def job(label: str) -> ProbeResult:
        c = plan.checks[label]
        assert c.provider is not None and c.model is not None
        pc = provider_config(cfg, c.provider)
        with gates[c.provider]:
            try:
                ep = endpoint(c.provider, pc)
            except Exception as exc:
                res = ProbeResult(model=c.model)
                res.error = classify(exc, c.provider, pc.base_url or "")[1]
                return res
            return run_probe(ep, pc, c.model, timeout, c.price)

    # a provider with many models probes them in rounds of PER_PROVIDER
    busiest = max((sum(c.provider == p for c in todo) for p in gates), default=0)
    rounds = -(-busiest // PER_PROVIDER)
    # a probe may take its connect timeout and then its read timeout
    results = fan_out([c.label for c in todo], job, 2 * timeout * max(rounds, 1) + 0.5)
    for c in todo:
        value = results.get(c.label)
        if isinstance(value, BaseException) or value is None:
            c.probe = ProbeResult(model=c.model or c.label)
            c.probe.error = "no answer in time" if value is None else f"internal error: {value}"
        else:
            c.probe = value
    for chain in plan.chains:
        oks = [plan.checks[m].ok for m in chain.members if m in plan.checks]
        if oks and oks[0]:
            chain.status = "usable"
        elif any(oks):
            chain.status = "degraded"
        else:
            chain.status = "unusable"
