"""Templates (`callm templates ...`, `callm chat -t`) and the interactive session's
commands (/help, /model, /system, /save, /exit, //), run in this process with a terminal
for stdin and stdout."""

from __future__ import annotations

import io
import json
import sys
import tempfile
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from isolation import Cli, CliResult, FakeStdin, IsolatedEnv


def _logged(cli: Cli) -> list[dict[str, object]]:
    return json.loads(cli("logs", "list", "--json").stdout)


# ---- templates ----------------------------------------------------------------------------


def test_save_list_show_rm(cli: Cli, isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config("# keep this comment\n")
    res = cli(
        "templates", "save", "sum", "-m", "sim", "-s", "Be brief.", "-o", "seed:=4",
        "--prompt", "Summarise: $input",
    )  # fmt: skip
    assert res.code == 0, res.output
    text = isolated_env.config_path.read_text()
    assert "# keep this comment" in text and "[templates.sum]" in text
    assert "sum\tsim\tSummarise: $input" in cli("templates", "list").stdout
    shown = cli("templates", "show", "sum").stdout
    assert 'prompt = "Summarise: $input"' in shown and "seed = 4" in shown
    assert json.loads(cli("templates", "show", "sum", "--json").stdout)["system"] == "Be brief."
    assert cli("templates", "rm", "sum").code == 0
    assert "[templates.sum]" not in isolated_env.config_path.read_text()
    assert cli("templates", "show", "sum").code == 2
    assert cli("templates", "rm", "sum").code == 2


def test_save_refuses_bad_names_and_empty_templates(cli: Cli) -> None:
    assert cli("templates", "save", "bad name", "-m", "sim").code == 2
    empty = cli("templates", "save", "nothing")
    assert empty.code == 2 and "at least one" in empty.stderr


def test_chat_with_a_template_fills_input_from_args_and_stdin(cli: Cli) -> None:
    cli("templates", "save", "sum", "-m", "sim", "-s", "Be brief.", "--prompt", "Summarise: $input")
    assert cli("chat", "-t", "sum", "the minutes").code == 0
    assert cli("chat", "-t", "sum", stdin="a piped document").code == 0
    new, old = _logged(cli)[:2]
    assert old["prompt"] == "Summarise: the minutes" and old["system"] == "Be brief."
    assert new["prompt"] == "Summarise: a piped document" and new["model"] == "sim-small"
    missing = cli("chat", "-t", "sum")
    assert missing.code == 2 and "$input" in missing.stderr
    assert cli("chat", "-t", "nope", "x").code == 2


def test_flags_given_with_t_win(cli: Cli) -> None:
    cli(
        "templates",
        "save",
        "t",
        "-m",
        "sim/sim-small",
        "-s",
        "A",
        "-o",
        "seed:=1",
        "-o",
        "length:=9",
    )
    assert cli("chat", "-t", "t", "-m", "sim/sim-large", "-s", "B", "-o", "seed:=2", "hi").code == 0
    entry = _logged(cli)[0]
    assert entry["model"] == "sim-large" and entry["system"] == "B"
    assert entry["options"] == {"seed": 2, "length": 9}
    assert entry["prompt"] == "hi", "a template without a prompt sends the input"


def test_templates_in_the_config_are_validated(cli: Cli, isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config('[templates.x]\nmodel = "sim"\ncolour = "red"\n')
    res = cli("templates", "list")
    assert res.code == 2 and "templates.x.colour" in res.stderr


def test_edit_saves_a_valid_edit_and_refuses_a_broken_one(
    cli: Cli, isolated_env: IsolatedEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mp = monkeypatch
    scratch = tmp_path / "tmp"  # where the editor's copy is made
    scratch.mkdir()
    mp.setattr(tempfile, "tempdir", str(scratch))
    cli("templates", "save", "t", "-m", "sim", "--prompt", "Old: $input")
    editor = tmp_path / "ed.py"
    editor.write_text(
        textwrap.dedent(
            """
            import sys, pathlib
            p = pathlib.Path(sys.argv[-1])
            p.write_text(p.read_text().replace(sys.argv[1], sys.argv[2]))
            """
        )
    )
    mp.setenv("VISUAL", f"{sys.executable} {editor} Old: New:")
    assert cli("templates", "edit", "t").code == 0
    assert 'prompt = "New: $input"' in isolated_env.config_path.read_text()
    mp.setenv("VISUAL", f"{sys.executable} {editor} prompt colour")
    res = cli("templates", "edit")
    assert res.code == 2 and "not saved" in res.stderr and "unchanged" in res.stderr
    assert 'prompt = "New: $input"' in isolated_env.config_path.read_text()
    (kept,) = scratch.glob("callm-config-*.toml")  # the broken edit, named in the hint
    assert str(kept) in res.stderr and "colour" in kept.read_text()
    kept.unlink()
    mp.setenv("VISUAL", "false")
    res = cli("templates", "edit")
    assert res.code == 1 and "nothing saved" in res.stderr
    mp.setenv("VISUAL", "callm-no-such-editor")
    assert cli("templates", "edit").code == 2
    assert list(scratch.iterdir()) == []  # an aborted edit leaves no copy of the config
    assert cli("templates", "edit", "nope").code == 2


# ---- the interactive session --------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def repl(*args: str, lines: list[str]) -> CliResult:
    """`callm ARGS` with a terminal on stdin and stdout, typing `lines`."""
    from callm.cli.app import run

    out, err = _Tty(), io.StringIO()
    old = sys.stdin
    sys.stdin = FakeStdin("".join(line + "\n" for line in lines), tty=True)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = run(list(args))
    finally:
        sys.stdin = old
    return CliResult(code, out.getvalue(), err.getvalue())


def test_repl_commands(cli: Cli, isolated_env: IsolatedEnv) -> None:
    res = repl(
        "chat", "-m", "sim/sim-small",
        lines=[
            "/help", "hello there", "/model sim/sim-large", "/system Be kind.", "second turn",
            "/bogus not sent", "//slash sent", "/model nope/x", "/save mine", "/exit",
            "never typed",
        ],
    )  # fmt: skip
    assert res.code == 0, res.stderr
    for cmd in ("/model NAME", "/system TEXT", "/save NAME", "/exit"):
        assert cmd in res.stderr
    assert "now using sim/sim-large" in res.stderr
    assert "unknown command /bogus (not sent)" in res.stderr
    assert "unknown provider 'nope'" in res.stderr
    entries = list(reversed(_logged(cli)))
    assert [e["prompt"] for e in entries] == ["hello there", "second turn", "/slash sent"]
    assert [e["model"] for e in entries] == ["sim-small", "sim-large", "sim-large"]
    assert entries[1]["system"] == "Be kind." and entries[0]["system"] is None
    assert len({e["cid"] for e in entries}) == 1
    assert entries[2]["input_tokens"] > entries[1]["input_tokens"], "history is sent"
    t = json.loads(cli("templates", "show", "mine", "--json").stdout)
    assert t["model"] == "sim/sim-large" and t["system"] == "Be kind."


def test_c_without_a_prompt_resumes_the_conversation_interactively(cli: Cli) -> None:
    assert cli("chat", "-m", "sim", "-s", "Sys.", "first").code == 0
    res = repl("chat", "-c", lines=["second"])  # Ctrl-D after it
    assert res.code == 0, res.stderr
    assert "continuing conversation" in res.stderr and "(1 turns)" in res.stderr
    first, second = reversed(_logged(cli))
    assert second["cid"] == first["cid"] and second["system"] == "Sys."
    assert second["input_tokens"] > first["input_tokens"]
