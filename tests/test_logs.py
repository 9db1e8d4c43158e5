"""The call log: `callm logs` commands, full-text search, scrubbing, context trimming,
--estimate over a conversation, and migrating a data DB made before the log existed. The
tests marked `both` run on the SQLite file and on PostgreSQL (tsvector search for FTS5)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from isolation import Cli, IsolatedEnv


def _chat(cli: Cli, *args: str) -> None:
    res = cli("chat", *args)
    assert res.code == 0, res.output


def _db(env: IsolatedEnv) -> Any:
    """The data DB: env's SQLite file, or PostgreSQL under the ledger_backend fixture."""
    from callm.ledger.db import connect

    return connect()


# these run on both ledgers: the SQLite file and PostgreSQL (same output)
both = pytest.mark.usefixtures("ledger_backend")


@both
def test_logging_is_on_by_default_and_stores_the_call(cli: Cli, isolated_env: IsolatedEnv) -> None:
    _chat(cli, "-m", "sim", "-s", "You are terse.", "-o", "seed:=3", "--temperature", "0.5", "hi")
    res = cli("logs", "list", "--json")
    assert res.code == 0, res.output
    (entry,) = json.loads(res.stdout)
    assert entry["prompt"] == "hi" and entry["reply"] and entry["system"] == "You are terse."
    assert entry["options"] == {"seed": 3, "temperature": 0.5}
    assert entry["provider"] == "sim" and entry["cid"] and entry["outcome"] == "ok"
    assert entry["input_tokens"] > 0


@both
def test_list_newest_first_with_filters(cli: Cli) -> None:
    for word in ("apple", "banana", "cherry"):
        _chat(cli, "-m", "sim/sim-small", f"tell me about {word}")
    _chat(cli, "-m", "sim/sim-large", "tell me about durian")
    prompts = [e["prompt"] for e in json.loads(cli("logs", "list", "--json").stdout)]
    assert prompts == [f"tell me about {w}" for w in ("durian", "cherry", "banana", "apple")]
    two = json.loads(cli("logs", "list", "-n", "2", "--json").stdout)
    assert [e["prompt"] for e in two] == prompts[:2]
    large = json.loads(cli("logs", "list", "--model", "sim-large", "--json").stdout)
    assert [e["model"] for e in large] == ["sim-large"]
    assert (
        json.loads(cli("logs", "list", "--model", "sim/sim-small", "--json").stdout)[0]["prompt"]
        == "tell me about cherry"
    )
    assert json.loads(cli("logs", "list", "--provider", "nope", "--json").stdout) == []
    assert len(json.loads(cli("logs", "list", "--since", "1h", "--json").stdout)) == 4
    future = time.strftime("%Y-%m-%d", time.localtime(time.time() + 3 * 86400))
    assert json.loads(cli("logs", "list", "--since", future, "--json").stdout) == []
    piped = cli("logs", "list")  # plain, tab separated, when piped
    assert piped.stdout.splitlines()[0].split("\t")[:3] == ["id", "time", "model"]
    assert "tell me about durian" in piped.stdout


@both
def test_full_text_search(cli: Cli) -> None:
    _chat(cli, "-m", "sim", "the quick brown fox")
    _chat(cli, "-m", "sim", "a lazy dog")
    _chat(cli, "-m", "sim", "-s", "mention foxes", "unrelated")
    found = json.loads(cli("logs", "-q", "fox", "--json").stdout)  # `logs -q` lists
    assert [e["prompt"] for e in found] == ["the quick brown fox"]
    both = json.loads(cli("logs", "list", "--query", "quick fox", "--json").stdout)
    assert len(both) == 1
    assert json.loads(cli("logs", "list", "-q", "foxes", "--json").stdout)[0]["prompt"] == (
        "unrelated"
    ), "the system prompt is searched too"
    odd = cli("logs", "list", "-q", 'C++ "AND (', "--json")  # never FTS5 syntax
    assert odd.code == 0 and json.loads(odd.stdout) == []
    assert cli("logs", "list", "-q", "  ").code == 2


@both
def test_show_one_call_and_a_conversation(cli: Cli) -> None:
    _chat(cli, "-m", "sim", "first question")
    _chat(cli, "-c", "second question")
    entries = json.loads(cli("logs", "list", "--json").stdout)
    cid, newest = entries[0]["cid"], entries[0]["id"]
    one = cli("logs", "show", str(newest))
    assert one.code == 0
    assert "### Prompt\n\nsecond question" in one.stdout and "\x1b[" not in one.stdout
    conv = cli("logs", "show", "--cid", cid)
    assert conv.stdout.index("first question") < conv.stdout.index("second question")
    as_json = json.loads(cli("logs", "show", "--cid", cid, "--json").stdout)
    assert [e["prompt"] for e in as_json] == ["first question", "second question"]
    assert cli("logs", "show", "999").code == 2
    assert cli("logs", "show").code == 2  # neither ID nor --cid
    assert cli("logs", "show", "1", "--cid", cid).code == 2


def _on_terminal(*args: str) -> str:
    """stdout of `callm ARGS` with a terminal for stdout (rich output)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from callm.cli.app import run

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        assert run(list(args)) == 0
    return out.getvalue()


def test_show_and_list_on_a_terminal(cli: Cli) -> None:
    _chat(cli, "-m", "sim", "hello [bold]there[/bold] " + "x" * 300)
    shown = _on_terminal("logs", "show", "1")
    assert "Prompt" in shown and "### Prompt" not in shown, "Markdown is rendered"
    listed = _on_terminal("logs", "list")
    lines = listed.splitlines()
    assert len(lines) == 3, "one line per call, never wrapped"
    assert " 1 " in lines[2] and "sim/sim-small" in lines[2]
    assert "hello [bold]" in listed, "logged text is shown as text, not as rich markup"
    assert "…" in lines[2]


@both
def test_rm_forgets_the_text_but_keeps_the_usage_rows(cli: Cli, isolated_env: IsolatedEnv) -> None:
    _chat(cli, "-m", "sim", "keep me")
    _chat(cli, "-m", "sim", "forget me")
    _chat(cli, "-c", "and me")
    entries = json.loads(cli("logs", "list", "--json").stdout)
    res = cli("logs", "rm", "--cid", entries[0]["cid"])
    assert res.code == 0 and "2 call(s)" in res.stderr
    assert [e["prompt"] for e in json.loads(cli("logs", "list", "--json").stdout)] == ["keep me"]
    assert json.loads(cli("logs", "list", "-q", "forget", "--json").stdout) == []
    assert cli("logs", "rm", str(entries[-1]["id"])).code == 0
    assert json.loads(cli("logs", "list", "--json").stdout) == []
    with _db(isolated_env) as conn:
        assert conn.execute("SELECT count(*) FROM usage").fetchone()[0] == 3
    assert json.loads(cli("usage", "report", "--json").stdout)["totals"]["requests"] == 3
    assert cli("logs", "rm", "12345").code == 2


def test_path_status_on_off(cli: Cli, isolated_env: IsolatedEnv) -> None:
    assert cli("logs", "path").stdout.strip() == str(isolated_env.data_dir / "callm.db")
    isolated_env.write_config('# my settings\ndefault_model = "sim"\n')
    assert cli("logs", "off").code == 0
    assert "log_prompts = false" in isolated_env.config_path.read_text()
    assert "# my settings" in isolated_env.config_path.read_text()
    _chat(cli, "private")
    status = cli("logs", "status")
    assert "logging is off" in status.stdout and "0 logged call(s)" in status.stdout
    assert cli("logs", "on").code == 0
    _chat(cli, "public")
    st = json.loads(cli("logs", "status", "--json").stdout)
    assert st["logging"] is True and st["calls"] == 1 and st["conversations"] == 1


@both
def test_keys_never_reach_the_log(cli: Cli, isolated_env: IsolatedEnv) -> None:
    key = "sk-proj-" + "A1b2C3d4E5f6G7h8J9k0"
    _chat(cli, "-m", "sim", "-o", "api_key=hunter2", "-o", "seed:=1", f"my key is {key}")
    with _db(isolated_env) as conn:
        dump = "\n".join(str(r) for r in conn.execute("SELECT * FROM usage"))
    assert key not in dump and "hunter2" not in dump
    entry = json.loads(cli("logs", "list", "--json").stdout)[0]
    assert entry["options"]["api_key"] == "[redacted]" and entry["options"]["seed"] == 1


def test_history_is_trimmed_to_the_context_window_with_a_notice(cli: Cli) -> None:
    big = "word " * 6000  # ~7,500 tokens: sim-small has an 8,192 window
    _chat(cli, "-m", "sim/sim-small", "-o", "length=5", big)
    _chat(cli, "-c", "-o", "length=5", "short one")
    res = cli("chat", "-c", "-o", "length=5", "--json", "and now?")
    assert res.code == 0, res.output
    assert "dropped the oldest 1 turn(s)" in res.stderr
    assert json.loads(res.stdout)["usage"]["input_tokens"] < 1000


def test_estimate_counts_the_history(cli: Cli) -> None:
    _chat(cli, "-m", "sim", "word " * 400)
    alone = json.loads(cli("chat", "-m", "sim", "--estimate", "--json", "x").stdout)
    cont = json.loads(cli("chat", "-c", "--estimate", "--json", "x").stdout)
    assert cont["input_tokens"] > alone["input_tokens"] + 400
    assert len(json.loads(cli("logs", "list", "--json").stdout)) == 1, "--estimate calls nothing"


def test_migrating_a_db_without_the_log_keeps_every_usage_row(isolated_env: IsolatedEnv) -> None:
    from callm.ledger import db, logs, migrations

    path = isolated_env.data_dir / "callm.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(path, isolation_level=None)
    first_log = migrations.MIGRATIONS.index(migrations.LOG_MIGRATION)
    for script in migrations.MIGRATIONS[:first_log]:
        for stmt in db._statements(script):
            old.execute(stmt)
    old.execute(f"PRAGMA user_version = {first_log}")
    for i in range(50):
        old.execute(
            "INSERT INTO usage (ts, provider, model, outcome, input_tokens, prompt, reply)"
            " VALUES (?, 'p', 'm', 'ok', ?, ?, ?)",
            (1e9 + i, i, "old transcript zebra" if i == 7 else None, "r" if i == 7 else None),
        )
    old.close()
    conn = logs.connect(path)
    try:
        assert conn.execute("SELECT count(*), sum(input_tokens) FROM usage").fetchone() == (
            50,
            sum(range(50)),
        )
        found = logs.list_entries(conn, query="zebra")
        assert [e.prompt for e in found] == ["old transcript zebra"] and found[0].cid is None
        assert conn.execute("SELECT sum(requests) FROM usage_day").fetchone()[0] == 50
    finally:
        conn.close()


def test_logs_help_and_unknown_subcommand(cli: Cli) -> None:
    assert cli("logs", "--help").code == 0
    assert cli("logs", "frobnicate").code == 2
    assert cli("logs").code == 0  # = logs list


def test_a_chat_prompt_that_says_logs_is_a_prompt(cli: Cli) -> None:
    res = cli("chat", "-m", "sim", "logs", "-q")  # -q is the global quiet flag here
    assert res.code == 0 and res.stderr == ""
    assert json.loads(cli("logs", "list", "--json").stdout)[0]["prompt"] == "logs"


def test_db_path_is_the_data_db(isolated_env: IsolatedEnv) -> None:
    from callm.paths import db_path

    assert Path(db_path()) == isolated_env.data_dir / "callm.db"


@both
def test_chat_json_names_the_conversation(cli: Cli) -> None:
    first = json.loads(cli("chat", "-m", "sim", "--json", "one").stdout)
    again = json.loads(cli("chat", "--cid", first["conversation"], "--json", "two").stdout)
    assert again["conversation"] == first["conversation"]
    assert "conversation" not in json.loads(
        cli("chat", "-m", "sim", "--no-log", "--json", "x").stdout
    )


@both
def test_logs_json_matches_its_published_schema(cli: Cli) -> None:
    from dataclasses import fields

    from callm.ledger.log_schema import LogEntry as Published
    from callm.ledger.log_schema import LogList
    from callm.ledger.logs import LogEntry

    assert [f.name for f in fields(LogEntry)] == list(Published.model_fields)
    _chat(cli, "-m", "sim", "-o", "seed:=2", "one")
    assert cli("chat", "-c", "-o", "fail=auth", "two").code == 3  # an error row, no reply
    cid = json.loads(cli("logs", "list", "--json").stdout)[0]["cid"]
    for args in (("logs", "list", "--json"), ("logs", "show", "--cid", cid, "--json")):
        data = json.loads(cli(*args).stdout)
        assert len(data) == 2
        LogList.model_validate(data)
    schema = LogList.model_json_schema()
    assert schema["title"] == "callm logs" and "LogEntry" in schema["$defs"]


def test_attachments_and_schema_replies_are_logged(cli: Cli, tmp_path: Path) -> None:
    import hashlib

    note = tmp_path / "note.txt"
    note.write_text("meeting at noon\n")
    _chat(cli, "-m", "sim", "-a", str(note), "summarise")
    _chat(cli, "-m", "sim", "--schema", "name, age int", "a person")
    with_schema, with_file = json.loads(cli("logs", "list", "--json").stdout)[:2]
    (att,) = with_file["attachments"]
    assert att["name"].endswith("note.txt") and att["bytes"] == 16
    assert att["sha256"] == hashlib.sha256(b"meeting at noon\n").hexdigest()
    assert "meeting at noon" not in json.dumps(with_file), "names and hashes, never contents"
    assert isinstance(with_schema["reply_json"], dict) and "age" in with_schema["reply_json"]


def test_a_template_with_a_schema(cli: Cli) -> None:
    assert cli("templates", "save", "person", "-m", "sim", "--schema", "name, age int").code == 0
    res = cli("chat", "-t", "person", "--json", "someone")
    assert res.code == 0, res.output
    assert "age" in json.loads(res.stdout)["parsed"]
