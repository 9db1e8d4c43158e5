"""Verify results in the shapes CI reads: a JUnit XML file (one testcase per provider check
and per model probe; the Ant JUnit schema, which Jenkins, GitLab and GitHub test reporters
accept) and, on GitHub Actions, `::error` annotations plus a Markdown table appended to
$GITHUB_STEP_SUMMARY. Every message passes through secrets.scrub first."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from callm.errors import UsageError

if TYPE_CHECKING:
    from callm.verify import VerifyResult
    from callm.verify_models import ModelPlan


@dataclass(frozen=True)
class Case:
    suite: str  # "providers" | "models"
    name: str
    ok: bool
    seconds: float
    message: str | None  # why it failed, scrubbed
    kind: str  # the failing stage ("auth", "probe"...), the JUnit failure type


def _clean(text: str) -> str:
    """Scrubbed of keys, and of control characters XML 1.0 cannot carry (an ANSI escape in a
    vendor's error page would make the whole file unreadable)."""
    from callm.secrets import scrub

    return "".join(c if c >= " " or c in "\t\n" else " " for c in scrub(text))


def cases(results: list[VerifyResult], models: ModelPlan | None) -> list[Case]:
    scrub = _clean

    out = [
        Case(
            "providers",
            r.name,
            r.ok,
            (r.latency_ms or 0) / 1000,
            None if r.ok else scrub(r.error or "failed"),
            r.stage or "ok",
        )
        for r in results
    ]
    for c in models.checks.values() if models else ():
        ms = c.probe.latency_ms if c.probe and c.probe.latency_ms else 0
        kind = "config" if c.error else "probe"
        out.append(
            Case("models", c.label, c.ok, ms / 1000, None if c.ok else scrub(c.message or ""), kind)
        )
    return out


def write_junit(path: str, all_cases: list[Case], started: float) -> None:
    """The file at `path` (written whole, then renamed into place)."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started))
    host = platform.node() or "localhost"  # the host name, as socket.gethostname() gives it
    for i, suite in enumerate(("providers", "models")):
        mine = [c for c in all_cases if c.suite == suite]
        if suite == "models" and not mine:
            continue
        el = ET.SubElement(
            root,
            "testsuite",
            name=f"callm.{suite}",
            package="callm",
            id=str(i),
            timestamp=stamp,
            hostname=host,
            tests=str(len(mine)),
            failures=str(sum(not c.ok for c in mine)),
            errors="0",
            time=f"{sum(c.seconds for c in mine):.3f}",
        )
        ET.SubElement(el, "properties")
        for c in mine:
            tc = ET.SubElement(
                el, "testcase", name=c.name, classname=f"callm.{suite}", time=f"{c.seconds:.3f}"
            )
            if not c.ok:
                f = ET.SubElement(tc, "failure", message=c.message or "", type=c.kind)
                f.text = c.message or ""
        ET.SubElement(el, "system-out")
        ET.SubElement(el, "system-err")
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data + b"\n")
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"--junit {path}: cannot write it ({exc.strerror or exc})") from None


def on_github() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _escape(text: str) -> str:
    """Workflow-command data: %, CR and LF are encoded (GitHub's own toolkit does the same)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape(text).replace(":", "%3A").replace(",", "%2C")


def github_report(all_cases: list[Case], chains: list[str], write: Callable[[str], None]) -> None:
    """`::error` lines for failures (through `write`: stderr, so stdout keeps its JSON; the
    runner reads commands from both) and a table appended to $GITHUB_STEP_SUMMARY."""
    for c in all_cases:
        if not c.ok:
            title = _escape_prop(f"callm verify: {c.suite[:-1]} {c.name}")
            write(f"::error title={title}::{_escape(f'{c.name}: {c.message}')}\n")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary:
        return
    failed = sum(not c.ok for c in all_cases)
    lines = [
        "### callm providers verify",
        "",
        f"{len(all_cases) - failed} of {len(all_cases)} checks passed.",
        "",
        "| check | name | result | time | message |",
        "|---|---|---|---|---|",
    ]
    for c in all_cases:
        result = "✅ pass" if c.ok else "❌ fail"
        msg = (c.message or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {c.suite[:-1]} | `{c.name}` | {result} | {c.seconds:.2f} s | {msg} |")
    if chains:
        lines += ["", *[f"- {line}" for line in chains]]
    try:
        with open(summary, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n\n")
    except OSError as exc:
        write(f"warning: cannot append to GITHUB_STEP_SUMMARY ({exc.strerror or exc})\n")
