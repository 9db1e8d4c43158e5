"""Every --json output has a JSON Schema (`callm schema NAME`, copies in docs/schemas/): the
copies are current, and real outputs of each command validate against them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from callm.outputs import SCHEMAS, dump, schema_text
from isolation import Cli, IsolatedEnv
from loopback import closed_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "schemas"
REGENERATE = "run `python scripts/gen_schemas.py` and commit docs/schemas/"


def check(name: str, instance: Any) -> None:
    """`instance` validates against the committed schema NAME."""
    schema = json.loads((DOCS / f"{name}.json").read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(instance)


def json_of(cli: Cli, *args: str, code: int = 0) -> Any:
    res = cli("--json", *args)
    assert res.code == code, res.output
    return json.loads(res.stdout)


# ---- the committed copies -------------------------------------------------------------------


def test_each_output_has_a_current_copy_under_docs_schemas() -> None:
    have = sorted(p.name for p in DOCS.glob("*.json"))
    assert have == sorted(f"{name}.json" for name in SCHEMAS), REGENERATE
    for name in SCHEMAS:
        assert (DOCS / f"{name}.json").read_text("utf-8") == schema_text(name), (
            f"docs/schemas/{name}.json is stale: {REGENERATE}"
        )


def test_the_generator_check_mode_agrees() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_schemas.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


# ---- `callm schema` -------------------------------------------------------------------------


def test_schema_lists_names_and_prints_each(cli: Cli, isolated_env: IsolatedEnv) -> None:
    res = cli("schema")
    assert res.code == 0 and res.stdout.split() == list(SCHEMAS)
    assert json_of(cli, "schema") == list(SCHEMAS)
    for name in ("chat", "usage-report", "config"):
        res = cli("schema", name)
        assert res.code == 0 and res.stdout == (DOCS / f"{name}.json").read_text("utf-8")


def test_unknown_schema_is_a_one_line_usage_error(cli: Cli, isolated_env: IsolatedEnv) -> None:
    res = cli("schema", "chats")
    assert res.code == 2
    first, *rest = res.stderr.splitlines()
    assert first.startswith("error: unknown schema 'chats' (one of: chat, ")
    assert all(line.startswith("hint: ") for line in rest)
    assert res.stdout == ""


# ---- real outputs against the schemas -------------------------------------------------------


@pytest.fixture
def two_providers(cli: Cli, isolated_env: IsolatedEnv) -> None:
    """`lab` (the offline simulator) and `down` (a closed loopback port, no key needed)."""
    assert cli("providers", "add", "lab", "--driver", "sim", "--no-verify").code == 0
    url = f"http://127.0.0.1:{closed_port()}/v1"
    args = ["--driver", "openai-compatible", "--base-url", url, "--no-key", "--no-verify"]
    assert cli("providers", "add", "down", *args).code == 0


def test_chat_outputs_fit(cli: Cli, two_providers: None) -> None:
    ok = json_of(cli, "chat", "-m", "lab/sim-small", "hi")
    assert ok["text"] and "error" not in ok
    check("chat", ok)
    failed = json_of(cli, "chat", "-m", "down/m", "--fallback", "lab/sim-small", "hi")
    assert [a["outcome"] for a in failed["attempts"]] == ["error", "ok"]
    check("chat", failed)
    broken = json_of(cli, "chat", "-m", "down/m", "hi", code=1)
    assert broken["error"]["kind"]
    check("chat", broken)
    check("chat-estimate", json_of(cli, "chat", "-m", "lab/sim-small", "--estimate", "hi"))
    structured = json_of(cli, "chat", "-m", "lab/sim-small", "--schema", "name, age int", "hi")
    assert isinstance(structured["parsed"]["age"], int)
    check("chat", structured)


def test_error_output_fits(cli: Cli, isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config("[providers.lab]\ndriver = 'sim'\nbogus = 1\n")
    out = json_of(cli, "providers", "list", code=2)
    assert out["error"]["kind"] and "bogus" in out["error"]["message"]
    check("error", out)


def test_provider_outputs_fit(cli: Cli, two_providers: None) -> None:
    rows = json_of(cli, "providers", "list")
    assert [r["name"] for r in rows] == ["down", "lab"]
    check("providers-list", rows)
    for name in ("lab", "down"):
        shown = json_of(cli, "providers", "show", name)
        assert next(iter(shown)) == "name" and shown["name"] == name
        check("providers-show", shown)
    verified = json_of(cli, "providers", "verify", code=1)
    assert {r["name"]: r["ok"] for r in verified} == {"lab": True, "down": False}
    check("providers-verify", verified)
    probed = json_of(cli, "providers", "verify", "lab", "--probe", "sim-small")
    assert probed[0]["probe"]["ok"] is True
    check("providers-verify", probed)


def test_model_outputs_fit(cli: Cli, two_providers: None) -> None:
    synced = json_of(cli, "models", "sync", code=1)
    assert {r["provider"]: r["ok"] for r in synced} == {"lab": True, "down": False}
    check("models-sync", synced)
    listed = json_of(cli, "models", "list")
    assert any(r["name"] == "lab/sim-small" for r in listed)
    check("models-list", listed)
    check("models-show", json_of(cli, "models", "show", "lab/sim-small"))
    catalog_row = json_of(cli, "models", "show", "openai/gpt-6-luna")
    assert catalog_row["price"]["input"] is not None
    check("models-show", catalog_row)


def test_usage_report_fits(cli: Cli, two_providers: None) -> None:
    check("usage-report", json_of(cli, "usage", "report"))  # no calls yet
    assert cli("chat", "-m", "lab/sim-small", "hi").code == 0
    cli("chat", "-m", "down/m", "hi")
    for by in ("model", "provider", "day"):
        report = json_of(cli, "usage", "report", "--by", by)
        assert report["totals"]["requests"] == 2 and report["totals"]["failures"] == 1
        assert next(iter(report["groups"][0])) == "key"
        check("usage-report", report)


# ---- the schemas say something --------------------------------------------------------------


def test_schemas_refuse_missing_and_unknown_fields() -> None:
    row = {"name": "lab", "driver": "sim", "base_url": None, "key_source": "none"}
    row |= {"enabled": True, "default_model": None, "last_verified": None}
    row |= {"last_verify_ok": None, "cooldown_until": None}
    check("providers-list", [row])
    for bad in ({k: v for k, v in row.items() if k != "enabled"}, {**row, "extra": 1}):
        with pytest.raises(jsonschema.ValidationError):
            check("providers-list", [bad])
    with pytest.raises(jsonschema.ValidationError):
        check("providers-list", [{**row, "enabled": "yes"}])


def test_a_cost_that_is_not_finite_is_written_as_null() -> None:
    totals = {"requests": 1, "failures": 0, "input_tokens": 1, "output_tokens": 1}
    totals |= {"cost_usd": float("inf"), "unpriced_requests": 0}
    totals |= {"p50_latency_ms": 5, "p95_latency_ms": 5, "attempts": 1, "failed_attempts": 0}
    out = dump("usage-report", {"groups": [{"key": "lab", **totals}], "totals": totals})
    assert out["totals"]["cost_usd"] is None and out["groups"][0]["cost_usd"] is None
    check("usage-report", out)
    json.dumps(out, allow_nan=False)


# ---- the smaller commands -------------------------------------------------------------------


def test_verify_models_output_fits(cli: Cli, isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config(
        "[providers.lab]\ndriver = 'sim'\ndefault_model = 'sim-small'\n"
        "[fallbacks]\n'lab/sim-small' = ['lab/sim-large']\n"
    )
    out = json_of(cli, "providers", "verify", "--models")
    assert set(out) == {"providers", "models", "fallbacks"}
    assert out["models"] and all(m["ok"] for m in out["models"])
    check("providers-verify-models", out)
    with pytest.raises(jsonschema.ValidationError):  # the plain list is another shape
        check("providers-verify", out)
    (isolated_env.home / "m.txt").write_text("nowhere/model\n", encoding="utf-8")
    mf = str(isolated_env.home / "m.txt")
    out = json_of(cli, "providers", "verify", "--models-file", mf, code=1)
    bad = next(m for m in out["models"] if m["model"] == "nowhere/model")
    assert bad["provider"] is None and not bad["ok"]
    check("providers-verify-models", out)


def test_usage_budget_output_fits(cli: Cli, isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config(
        "[providers.lab]\ndriver = 'sim'\n[budgets]\nmonthly = 10\n"
        "[budgets.providers.lab]\ndaily = 1\n"
    )
    assert cli("chat", "-m", "lab/sim-small", "hi").code == 0
    rows = json_of(cli, "usage", "budget")
    assert {r["budget"] for r in rows} == {"monthly", "lab daily"}
    check("usage-budget", rows)


def test_template_outputs_fit(cli: Cli, isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config("[providers.lab]\ndriver = 'sim'\n")
    args = ["-m", "lab/sim-small", "-s", "be brief", "-o", "temperature:=0.5"]
    assert cli("templates", "save", "terse", *args, "--schema", "name, age int").code == 0
    listed = json_of(cli, "templates", "list")
    assert listed["terse"]["schema"] and "schema_" not in listed["terse"]
    check("templates-list", listed)
    shown = json_of(cli, "templates", "show", "terse")
    assert shown["name"] == "terse" and shown["options"] == {"temperature": 0.5}
    check("templates-show", shown)


def test_provider_change_outputs_fit(cli: Cli, isolated_env: IsolatedEnv, monkeypatch) -> None:
    outs = [json_of(cli, "providers", "add", "lab", "--driver", "sim", "--no-verify")]
    outs.append(json_of(cli, "providers", "disable", "lab"))
    outs.append(json_of(cli, "providers", "enable", "lab"))
    args = ["--base-url", "http://127.0.0.1:9/v1", "--no-key", "--no-verify"]
    outs.append(json_of(cli, "providers", "add", "loc", "--driver", "openai-compatible", *args))
    outs.append(json_of(cli, "providers", "remove", "loc", "--yes"))
    assert outs[1] == {"name": "lab", "enabled": False} and outs[4]["removed"] == "loc"
    for out in outs:
        check("providers-change", out)
    catalog = json_of(cli, "providers", "catalog")
    assert any(r["name"] == "openai" for r in catalog)
    check("providers-catalog", catalog)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-FAKEschema0000000000000")
    plan = json_of(cli, "providers", "import", "--dry-run")
    assert plan["imported"] == [] and plan["plan"][0]["provider"] == "openai"
    check("providers-import", plan)
    done = json_of(cli, "providers", "import", "--yes")
    assert [s["provider"] for s in done["imported"]] == ["openai"]
    check("providers-import", done)
