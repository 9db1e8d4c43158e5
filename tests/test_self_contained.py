"""The suite passes from a fresh clone in any folder: no test reads outside the repository
(../shared, a sibling checkout) or names a path that exists on one machine only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# A path outside the repository: a parent-folder hop to a sibling, or an absolute machine path
# in a string literal. /dev/null and friends are the same everywhere and stay allowed.
FORBIDDEN = [
    (re.compile(r"\.\./+shared\b|[\"']shared[\"']"), "reads ../shared"),
    (
        re.compile(r"[\"'](?:/work|/home|/Users|/root|/opt|/srv|/mnt|/var|/usr|/tmp)(?:/|[\"'])"),
        "names an absolute machine path",
    ),
    (re.compile(r"[\"'][A-Za-z]:\\\\"), "names a Windows drive path"),
    (re.compile(r"\.parents\[[2-9]\]|\.parent\.parent\.parent"), "climbs above the repository"),
]


def _test_sources() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if p != Path(__file__).resolve())


def offences(text: str) -> list[str]:
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for pattern, why in FORBIDDEN:
            if pattern.search(line):
                found.append(f"line {lineno}: {why}: {line.strip()}")
    return found


@pytest.mark.parametrize("path", _test_sources(), ids=lambda p: str(p.relative_to(TESTS)))
def test_no_test_reads_outside_the_repository(path: Path) -> None:
    assert offences(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "line",
    [
        'CALLM = "/work/venv/bin/callm"',
        'CASES = ROOT.parent / "shared" / "conformance"',
        'json.load(open("../shared/conformance/cases/x.json"))',
        "p = Path('/home/me/callm/tests')",
        'here = Path(__file__).resolve().parents[2] / "x"',
    ],
)
def test_the_check_catches_what_it_must(line: str) -> None:
    assert offences(line)


def test_conformance_cases_are_in_the_repository_with_their_sources() -> None:
    import json

    cases = sorted((TESTS / "conformance" / "cases").glob("*/*.json"))
    assert len(cases) >= 60
    notice = (TESTS / "conformance" / "NOTICE").read_text(encoding="utf-8")
    for case in cases:
        source = json.loads(case.read_text(encoding="utf-8"))["source"]
        assert {"repo", "path", "commit", "license"} <= source.keys(), case.name
        assert str(case.relative_to(TESTS / "conformance")) in notice
        assert source["repo"] in notice
