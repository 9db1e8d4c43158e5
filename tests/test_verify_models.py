"""`providers verify --models` against loopback servers: every model the config reaches is
probed once, chains are judged as chains, the estimate comes first and --max-cost caps it;
--junit validates against the Ant JUnit schema; GitHub Actions annotations and summary."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopback import Loopback, json_reply

FAKE_KEY = "sk-test-FAKE-verify-models-0000000"
SCHEMA = Path(__file__).parent / "schemas" / "JUnit.xsd"
MODELS = {"object": "list", "data": [{"id": "good-1"}, {"id": "good-2"}]}


def reply(model: str) -> dict[str, object]:
    return {
        "id": "c",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "OK"},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12},
    }


@pytest.fixture
def srv() -> Iterator[Loopback]:
    with Loopback() as s:
        s.route("/v1/models", json_reply(MODELS))
        yield s


@pytest.fixture(autouse=True)
def fake_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLM_TEST_KEY", FAKE_KEY)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def config(srv: Loopback, extra: str = "") -> str:
    return (
        'default_model = "lab/good-1"\n'
        "[providers.lab]\n"
        'driver = "openai-compatible"\n'
        f'base_url = "{srv.url}/v1"\n'
        'key_env = "CALLM_TEST_KEY"\n'
        'default_model = "good-2"\n'
        "[providers.dead]\n"
        'driver = "openai-compatible"\n'
        f'base_url = "{srv.url}/dead"\n'
        'key_env = "CALLM_TEST_KEY"\n'
        "[aliases]\n"
        'fast = "lab/good-2"\n'
        'old = "dead/gone-1"\n'
        "[fallbacks]\n"
        '"dead/gone-1" = ["lab/good-1"]\n'
        '"lab/good-1" = ["dead/gone-2"]\n'
        '[pricing."lab/*"]\ninput = 1.0\noutput = 2.0\n'
        '[pricing."dead/*"]\ninput = 1.0\noutput = 2.0\n' + extra
    )


def test_every_reachable_model_is_probed_once_and_chains_judged(cli, isolated_env, srv) -> None:
    from loopback import Reply

    srv.route("/v1/chat/completions", json_reply(reply("good-1")))
    srv.route("/dead/chat/completions", Reply(401, {"error": {"message": f"bad key {FAKE_KEY}"}}))
    srv.route("/dead/models", Reply(401, {"error": {"message": "bad key"}}))
    isolated_env.write_config(config(srv))
    mf = isolated_env.home / "models.txt"
    mf.write_text("# used by the nightly job\nlab/good-3\n\nfast\n", encoding="utf-8")
    res = cli("--json", "providers", "verify", "--models", "--models-file", str(mf))
    assert res.code == 1, res.output
    assert FAKE_KEY not in res.output
    data = json.loads(res.stdout)
    assert {p["name"]: p["ok"] for p in data["providers"]} == {"dead": False, "lab": True}
    models = {m["model"]: m for m in data["models"]}
    assert set(models) == {"lab/good-1", "lab/good-2", "lab/good-3", "dead/gone-1", "dead/gone-2"}
    assert models["lab/good-1"]["used_by"] == [
        "default_model",
        "fallback dead/gone-1",
        "fallback lab/good-1",
    ]
    assert models["lab/good-2"]["used_by"] == ["lab default", "alias fast", "models.txt:4"]
    assert models["lab/good-3"]["used_by"] == ["models.txt:2"]
    assert models["dead/gone-1"]["used_by"] == ["alias old", "fallback dead/gone-1"]
    assert models["lab/good-1"]["ok"] is True and models["dead/gone-1"]["ok"] is False
    assert "401" in models["dead/gone-1"]["error"] or "auth" in models["dead/gone-1"]["error"]
    # one probe per distinct model: 3 on lab, 2 on dead
    probes = [r for r in srv.requests if r.path.endswith("/chat/completions")]
    assert len(probes) == 5
    assert all(json.loads(r.body)["max_tokens"] == 1 for r in probes)
    chains = {c["fallback"]: c for c in data["fallbacks"]}
    assert chains["dead/gone-1"]["status"] == "degraded"
    assert chains["dead/gone-1"]["members"] == ["dead/gone-1", "lab/good-1"]
    assert chains["lab/good-1"]["status"] == "usable"
    # the estimate came first, on stderr: 5 probes of 12 tokens in, 1 out at $1/$2 per M
    assert "probing 5 models (1-token completions): estimated total $0.00007" in res.stderr


def test_all_good_exits_zero_and_names_filter(cli, isolated_env, srv) -> None:
    srv.route("/v1/chat/completions", json_reply(reply("good-1")))
    isolated_env.write_config(config(srv))
    res = cli("--json", "providers", "verify", "lab", "--models")
    assert res.code == 0, res.output
    data = json.loads(res.stdout)
    assert [p["name"] for p in data["providers"]] == ["lab"]
    assert {m["model"] for m in data["models"]} == {"lab/good-1", "lab/good-2"}
    assert {c["fallback"]: c["status"] for c in data["fallbacks"]} == {
        "dead/gone-1": "usable",  # its only member on lab answers (dead is not verified)
        "lab/good-1": "usable",
    }


def test_max_cost_caps_the_run_before_any_probe(cli, isolated_env, srv) -> None:
    srv.route("/v1/chat/completions", json_reply(reply("good-1")))
    isolated_env.write_config(config(srv))
    res = cli("providers", "verify", "--models", "--max-cost", "0.00001")
    assert res.code == 5, res.output
    assert "more than --max-cost" in res.stderr
    assert not [r for r in srv.requests if r.path.endswith("/chat/completions")]
    free = f'[providers.free]\ndriver = "openai-compatible"\nbase_url = "{srv.url}/v1"\n'
    isolated_env.write_config(
        config(srv) + free + 'key_env = "CALLM_TEST_KEY"\ndefault_model = "x"\n'
    )
    res = cli("providers", "verify", "--models", "--max-cost", "1")
    assert res.code == 5 and "no price known for free/x" in res.stderr, res.output
    res = cli("providers", "verify", "lab", "--models", "--max-cost", "1")
    assert res.code == 0, res.output


def test_bad_models_file_and_unresolvable_reference(cli, isolated_env, srv) -> None:
    srv.route("/v1/chat/completions", json_reply(reply("good-1")))
    isolated_env.write_config(config(srv))
    res = cli("providers", "verify", "--models-file", str(isolated_env.home / "missing.txt"))
    assert res.code == 2 and "--models-file" in res.stderr, res.output
    mf = isolated_env.home / "m.txt"
    mf.write_text("nowhere/model\n", encoding="utf-8")
    res = cli("--json", "providers", "verify", "lab", "--models-file", str(mf))
    assert res.code == 1
    bad = [m for m in json.loads(res.stdout)["models"] if not m["ok"]]
    assert [m["model"] for m in bad] == ["nowhere/model"]
    assert "unknown provider 'nowhere'" in bad[0]["error"]


def test_junit_validates_against_the_schema(cli, isolated_env, srv) -> None:
    import xmlschema

    from loopback import Reply

    srv.route("/v1/chat/completions", json_reply(reply("good-1")))
    srv.route("/dead/chat/completions", Reply(401, {"error": {"message": f"bad key {FAKE_KEY}"}}))
    srv.route(
        "/dead/models", Reply(401, {"error": {"message": f"key {FAKE_KEY} & <wrong> \x1b[31m\x00"}})
    )
    isolated_env.write_config(config(srv))
    junit = isolated_env.home / "out" / "verify.xml"
    junit.parent.mkdir()
    res = cli("providers", "verify", "--models", "--junit", str(junit))
    assert res.code == 1, res.output
    text = junit.read_text(encoding="utf-8")
    assert FAKE_KEY not in text
    schema = xmlschema.XMLSchema(str(SCHEMA))
    schema.validate(str(junit))  # raises with the reason when it does not fit
    doc = schema.to_dict(str(junit))
    suites = {s["@name"]: s for s in doc["testsuite"]}
    assert set(suites) == {"callm.providers", "callm.models"}
    prov = {c["@name"]: c for c in suites["callm.providers"]["testcase"]}
    assert set(prov) == {"lab", "dead"}
    assert "failure" not in prov["lab"] and prov["dead"]["failure"]["@type"] == "auth"
    assert suites["callm.providers"]["@failures"] == 1
    models = {c["@name"]: c for c in suites["callm.models"]["testcase"]}
    assert len(models) == 4 and suites["callm.models"]["@failures"] == 2
    assert models["dead/gone-2"]["failure"]["@type"] == "probe"
    # all passing: still valid, no failures
    res = cli("providers", "verify", "lab", "--junit", str(junit))
    assert res.code == 0
    schema.validate(str(junit))
    assert "<failure" not in junit.read_text(encoding="utf-8")
    # an unwritable path is a usage error, not a traceback
    res = cli("providers", "verify", "lab", "--junit", str(isolated_env.home / "no" / "x.xml"))
    assert res.code == 2 and "--junit" in res.stderr and "Traceback" not in res.output


def test_github_actions_annotations_and_step_summary(
    cli, isolated_env, srv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopback import Reply

    srv.route("/v1/chat/completions", json_reply(reply("good-1")))
    srv.route("/dead/models", Reply(401, {"error": {"message": f"bad key {FAKE_KEY}\nline2"}}))
    srv.route("/dead/chat/completions", Reply(500, {"error": {"message": "100% down"}}))
    isolated_env.write_config(config(srv))
    summary = isolated_env.home / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    res = cli("--json", "providers", "verify", "--models")
    assert res.code == 1
    json.loads(res.stdout)  # stdout stays one JSON document
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("::error ")]
    assert len(errors) == 3, res.stderr  # provider dead, models dead/gone-1 and dead/gone-2
    assert errors[0].startswith("::error title=callm verify%3A provider dead::dead: ")
    assert all("\n" not in e and FAKE_KEY not in e for e in errors)
    assert any("100%25 down" in e for e in errors)
    md = summary.read_text(encoding="utf-8")
    assert md.startswith("earlier step\n")  # appended, not replaced
    assert "| check | name | result | time | message |" in md
    assert "| provider | `lab` | ✅ pass |" in md
    assert "| model | `dead/gone-1` | ❌ fail |" in md
    assert "fallback dead/gone-1 (dead/gone-1 -> lab/good-1): usable but degraded" in md
    assert FAKE_KEY not in md
    # off GitHub: no annotations
    monkeypatch.setenv("GITHUB_ACTIONS", "false")
    res = cli("--json", "providers", "verify", "--models")
    assert "::error" not in res.stderr


def test_terminal_tables_for_providers_models_and_chains(isolated_env, srv) -> None:
    import io

    from callm.cli.context import State
    from callm.cli.verify_view import VerifyOptions, run_verify
    from callm.render.output import Output
    from loopback import Reply

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    srv.route("/v1/chat/completions", json_reply(reply("good-1")))
    srv.route("/dead/models", Reply(401, {"error": {"message": "bad key"}}))
    srv.route("/dead/chat/completions", Reply(401, {"error": {"message": "bad key"}}))
    isolated_env.write_config(config(srv))
    out, err = Tty(), Tty()
    st = State(out=Output(stdout=out, stderr=err, no_color=True))
    assert run_verify(st, [], opts=VerifyOptions(timeout=5.0, models=True)) == 1
    text, notes = out.getvalue(), err.getvalue()
    assert "used by" in text and "lab/good-2" in text and "lab default, alias fast" in text
    assert "1 of 2 providers passed" in notes and "2 of 4 models answered" in notes
    assert "fallback dead/gone-1 (dead/gone-1 -> lab/good-1): usable but degraded" in notes
    assert "fallback lab/good-1 (lab/good-1 -> dead/gone-2): usable" in notes
