"""Start-up stays light: `--help` and `providers list` import none of the heavy modules.
Each check runs in a fresh interpreter, since this test process has imported everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from isolation import IsolatedEnv

HEAVY = [
    "httpx",
    "httpcore",
    "ssl",
    "pydantic",
    "keyring",
    "sqlite3",
    "rich.live",
    "uvicorn",
    "starlette",
]
# a command that reads a new or changed config validates it with pydantic (issue 11)
HEAVY_FOR_LIST = [m for m in HEAVY if m != "pydantic"]

PROBE = """
import json, sys
from callm.cli.app import run
code = run(sys.argv[2:])
heavy = json.loads(sys.argv[1])
sys.stderr.write("\\nSTARTUP " + json.dumps(
    {"code": code, "loaded": [m for m in heavy if m in sys.modules]}) + "\\n")
"""


def imported(args: list[str], heavy: list[str]) -> list[str]:
    """Run `callm ARGS` in a fresh interpreter; which of `heavy` got imported."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(heavy), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    line = proc.stderr.rstrip().splitlines()[-1]
    assert line.startswith("STARTUP "), proc.stderr
    report = json.loads(line.removeprefix("STARTUP "))
    assert report["code"] == 0, proc.stderr
    return report["loaded"]


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["-h"]], ids=" ".join)
def test_root_help_imports_nothing_heavy(args: list[str]) -> None:
    assert imported(args, HEAVY) == []


@pytest.mark.parametrize(
    "args",
    [
        ["providers", "--help"],
        ["providers", "add", "--help"],
        ["models", "--help"],
        ["usage", "--help"],
        ["chat", "--help"],
        ["serve", "--help"],
        ["serve", "token", "--help"],
        ["routes", "--help"],
    ],
    ids=" ".join,
)
def test_command_help_imports_nothing_heavy(args: list[str]) -> None:
    assert imported(args, HEAVY) == []


def test_importing_the_app_imports_nothing_heavy() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, callm.cli.app; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    loaded = set(eval(proc.stdout))
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)


def _twenty_providers(env: IsolatedEnv) -> None:
    blocks = [
        f'[providers.p{i}]\ndriver = "openai-compatible"\n'
        f'base_url = "http://127.0.0.1:{8000 + i}/v1"\n' + ('key = "none"\n' if i % 2 else "")
        for i in range(20)
    ]
    env.write_config("\n".join(blocks))


def test_providers_list_without_data_db_skips_network_keychain_and_sqlite(
    isolated_env: IsolatedEnv,
) -> None:
    _twenty_providers(isolated_env)
    assert not (isolated_env.data_dir / "callm.db").exists()
    assert imported(["providers", "list"], HEAVY_FOR_LIST) == []
    assert imported(["--json", "providers", "list"], HEAVY_FOR_LIST) == []
    assert not (isolated_env.data_dir / "callm.db").exists()  # and creates no DB either


def test_a_config_validated_before_is_read_without_pydantic(isolated_env: IsolatedEnv) -> None:
    """The first command validates the config with pydantic; later ones, the file unchanged,
    take the validated copy (callm.config.cache) and import none of pydantic."""
    _twenty_providers(isolated_env)
    assert imported(["providers", "list"], ["pydantic"]) == ["pydantic"]
    assert imported(["providers", "list"], HEAVY) == []
    isolated_env.write_config(isolated_env.config_path.read_text() + "\n# a comment\n")
    assert imported(["providers", "list"], ["pydantic"]) == ["pydantic"]  # changed: again
    assert imported(["providers", "list"], HEAVY) == []


def test_a_second_chat_reads_config_and_catalog_without_pydantic(
    isolated_env: IsolatedEnv,
) -> None:
    """A call needs the config and the catalog (its price): both validated by pydantic the
    first time, both read from their validated copies the next."""
    isolated_env.write_config(
        '[pricing."sim/sim-small"]\ninput = 1.5\n[providers.openai]\ndriver = "openai"\n'
    )
    assert imported(["chat", "-m", "sim", "hi"], ["pydantic"]) == ["pydantic"]
    assert imported(["chat", "-m", "sim", "hi"], ["pydantic"]) == []
    estimate = ["chat", "-m", "openai/gpt-4o", "--estimate", "hi"]  # + the provider templates
    imported(estimate, ["pydantic"])
    assert imported(estimate, ["pydantic"]) == []


def test_providers_list_with_data_db_still_skips_network_and_keychain(
    isolated_env: IsolatedEnv,
) -> None:
    from callm.provider_state import record_verify

    _twenty_providers(isolated_env)
    record_verify("p1", True)
    assert (isolated_env.data_dir / "callm.db").exists()
    assert imported(["providers", "list"], ["httpx", "httpcore", "ssl", "keyring"]) == []


def test_root_help_builds_no_sub_command() -> None:
    lazy = ["callm.cli.chat", "callm.cli.providers", "callm.cli.models", "callm.cli.usage"]
    assert imported(["--help"], lazy) == []
    assert imported(["providers", "list"], lazy) == ["callm.cli.providers"]


def test_root_help_lists_each_command_with_its_own_short_help() -> None:
    """`callm --help` shows the short help kept in COMMANDS; it must match the command's."""
    import typer.main

    from callm.cli.app import COMMANDS, app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="callm")
    assert root.list_commands(ctx) == list(COMMANDS)
    for name, (_, _, short) in COMMANDS.items():
        command = root.get_command(ctx, name)
        assert command.get_short_help_str(limit=80) == short, name


def test_command_modules_keep_their_annotations_as_objects() -> None:
    """typer reads each command's signature; with `from __future__ import annotations` every
    annotation is a string it compiles and evaluates (twice), which costs `callm --help` and
    each command several milliseconds."""
    from pathlib import Path

    import callm.cli

    for path in Path(callm.cli.__file__).parent.glob("*.py"):
        text = path.read_text()
        if "typer.Option(" in text or "typer.Argument(" in text:
            assert "\nfrom __future__ import annotations\n" not in text, path.name


PLUGINS_PROBE = """
import os, sys
from callm.cli.app import main
try:
    main(["--version"])
except SystemExit:
    pass
sys.stderr.write("\\nPLUGINS " + repr(os.environ.get("PYDANTIC_DISABLE_PLUGINS")) + "\\n")
"""


@pytest.mark.parametrize(("preset", "seen"), [(None, "'__all__'"), ("", "''"), ("x", "'x'")])
def test_entry_point_skips_pydantic_plugin_scan_unless_the_user_chose(
    preset: str | None, seen: str
) -> None:
    """pydantic's plugin lookup scans every installed package's entry points (~30% of
    building the config schema); callm's process turns it off, but a user's setting wins."""
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if preset is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = preset
    proc = subprocess.run(
        [sys.executable, "-c", PLUGINS_PROBE],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=60,
    )
    assert proc.stderr.rstrip().splitlines()[-1] == f"PLUGINS {seen}", proc.stderr


def test_a_call_imports_httpx_without_its_command_line_tool(isolated_env: IsolatedEnv) -> None:
    """httpx/__init__ imports its own CLI (click, rich.progress, rich.syntax, pygments) to
    offer `httpx.main`; callm never runs it and skips that import (transport/httpx_lib.py),
    ~50 ms of every call. The call itself still works."""
    from loopback import Loopback, chat_reply

    cli_modules = ["httpx._main", "click", "pygments", "rich.progress", "rich.syntax"]
    with Loopback() as srv:
        srv.route("/v1/chat/completions", chat_reply("pong"))
        isolated_env.write_config(
            f'[providers.lab]\ndriver = "openai-compatible"\nbase_url = "{srv.url}/v1"\n'
            'key = "none"\n'
        )
        loaded = imported(["chat", "-m", "lab/m", "--no-stream", "hi"], ["httpx", *cli_modules])
        assert len(srv.requests) == 1
    assert loaded == ["httpx"]
