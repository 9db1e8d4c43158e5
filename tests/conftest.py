"""Shared fixtures. `isolated_env` is autouse: no test ever reads or writes the real home
directory, config, data DB or OS keychain, and no key from the developer's shell leaks in.
The pieces live in tests/isolation.py; import types and helpers from there, not from here."""

from __future__ import annotations

import pytest

import pgcluster
from isolation import Cli, IsolatedEnv, isolate


@pytest.fixture(autouse=True)
def isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> IsolatedEnv:
    """A fresh temp home for every test (see isolation.isolate)."""
    return isolate(tmp_path_factory.mktemp("home"), monkeypatch)


@pytest.fixture
def cli() -> Cli:
    """`cli(ARGS...)` runs callm in this process; `cli.sub(ARGS...)` as a subprocess."""
    return Cli()


# ---- PostgreSQL (the shared ledger) ---------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster():  # type: ignore[no-untyped-def]
    """One private PostgreSQL cluster per test run (tests/pgcluster.py). Without PostgreSQL
    binaries the tests that need it are skipped, except under CI, where that is a failure."""
    import os

    if pgcluster.find_bin_dir() is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but PostgreSQL (initdb, pg_ctl) is not installed")
        pytest.skip("PostgreSQL is not installed (initdb/pg_ctl not found): shared-ledger tests")
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[test]'")
    cluster = pgcluster.start_cluster()
    yield cluster
    pgcluster.remove(cluster)


@pytest.fixture
def pg_url(pg_cluster) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty database in the test cluster: its URL (no password: trust auth)."""
    return pgcluster.fresh_database(pg_cluster)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_backend(request, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    """Run the test on each backend: the SQLite file, then a fresh PostgreSQL database
    (CALLM_LEDGER_URL, inherited by `cli.sub` children too)."""
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        monkeypatch.setenv("CALLM_LEDGER_URL", url)
    return str(request.param)
