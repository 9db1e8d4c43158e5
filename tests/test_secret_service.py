"""Integration: keys through the real Linux Secret Service (gnome-keyring over D-Bus).

The whole scenario runs in one private D-Bus session (`dbus-run-session`) with a throwaway,
unlocked gnome-keyring-daemon (tests/secret_service/run.sh), in the temp home of
`isolated_env`: `callm providers set-key/show/remove` as subprocesses store, read and delete a
key, and `secret-tool` checks independently what the Secret Service holds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from isolation import IsolatedEnv

pytestmark = pytest.mark.secret_service

RUN_SH = Path(__file__).parent / "secret_service" / "run.sh"
NEEDED = ("dbus-run-session", "gnome-keyring-daemon", "dbus-send")
MISSING = [tool for tool in NEEDED if shutil.which(tool) is None]
FAKE = "sk-FAKE-secret-service-0000-vX2Q"

# Runs inside the session: each step a real `callm` (or secret-tool) process; prints a report.
SCENARIO = r"""
import json, os, shutil, subprocess, sys

def run(*args, stdin=""):
    p = subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=60)
    return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}

callm = [sys.executable, "-m", "callm"]
key = sys.argv[1]
lookup = ["secret-tool", "lookup", "service", "callm", "username", "lab"]
has_secret_tool = shutil.which("secret-tool") is not None
steps = {}
steps["backend"] = run(sys.executable, "-c", "import keyring; print(keyring.get_keyring())")
steps["add"] = run(*callm, "providers", "add", "lab", "--driver", "openai-compatible",
                   "--base-url", "http://127.0.0.1:9/v1", "--no-verify")
steps["set-key"] = run(*callm, "providers", "set-key", "lab", "--key-stdin", stdin=key + "\n")
steps["lookup-stored"] = run(*lookup) if has_secret_tool else None
steps["show"] = run(*callm, "--json", "providers", "show", "lab")
steps["remove"] = run(*callm, "--json", "providers", "remove", "lab", "--yes")
steps["lookup-removed"] = run(*lookup) if has_secret_tool else None
print(json.dumps(steps))
"""


def test_tools_are_installed_on_ci() -> None:
    """CI installs them (.ci/run); there a missing tool is a failure, not a skip."""
    if os.environ.get("CI") and MISSING:
        pytest.fail(f"CI should have installed {', '.join(MISSING)} (see .ci/run)")


@pytest.mark.skipif(
    bool(MISSING),
    reason=f"needs {', '.join(MISSING)} (apt-get install dbus dbus-x11 gnome-keyring)",
)
def test_set_show_remove_through_the_secret_service(isolated_env: IsolatedEnv) -> None:
    proc = subprocess.run(
        ["dbus-run-session", "--", str(RUN_SH), sys.executable, "-c", SCENARIO, FAKE],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    steps = json.loads(proc.stdout.strip().splitlines()[-1])

    assert "SecretService" in steps["backend"]["stdout"], steps["backend"]
    for name in ("add", "set-key", "show", "remove"):
        assert steps[name]["rc"] == 0, (name, steps[name])
    assert steps["set-key"]["stderr"] == (
        "stored key sk-...vX2Q for lab in the OS keychain (SecretService Keyring)\n"
    )

    shown = json.loads(steps["show"]["stdout"])
    assert (shown["key"], shown["key_source"]) == ("sk-...vX2Q", "keychain")
    assert json.loads(steps["remove"]["stdout"]) == {"removed": "lab", "key_deleted": True}

    if steps["lookup-stored"] is not None:  # secret-tool (libsecret-tools) is there
        assert steps["lookup-stored"]["stdout"].strip() == FAKE
        assert steps["lookup-removed"]["rc"] != 0
        assert steps["lookup-removed"]["stdout"] == ""

    # Only masked, never in clear: not in any callm output, not in the config file.
    for name in ("add", "set-key", "show", "remove"):
        assert FAKE not in steps[name]["stdout"] + steps[name]["stderr"]
    assert FAKE not in isolated_env.config_path.read_text()
    # The Secret Service was used, not the file keyring the other tests use.
    assert not isolated_env.keyring_file.exists()
    assert any((isolated_env.data_home / "keyrings").iterdir())
