"""Failures that asking again cannot fix are not retried (issue 12): a host name that does not
resolve, and a redirect loop on a model list."""

from __future__ import annotations

import json

from callm.errors import CallmError
from callm.transport import MAX_REDIRECTS
from isolation import Cli, IsolatedEnv
from loopback import Loopback, Reply

# RFC 2606 reserves .invalid: no such name resolves anywhere, so nothing answers it
UNRESOLVABLE = "nonexistent.invalid"


def test_an_unresolvable_host_is_tried_once_then_falls_back(
    cli: Cli, isolated_env: IsolatedEnv
) -> None:
    isolated_env.write_config(
        f"[providers.gone]\ndriver = 'openai-compatible'\nbase_url = 'http://{UNRESOLVABLE}/v1'\n"
        "key = 'none'\n[providers.lab]\ndriver = 'sim'\n"
        "[retry]\nattempts = 3\nbase_delay = 0.01\n"
    )
    res = cli("--json", "chat", "-m", "gone/m", "--no-stream", "hi")
    assert res.code == 1, res.output
    out = json.loads(res.stdout)
    assert [(a["outcome"], a["tries"]) for a in out["attempts"]] == [("error", 1)]
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and f"cannot resolve the host name {UNRESOLVABLE}" in lines[0]
    assert "Traceback" not in res.stderr
    # another provider (another host) may still answer
    res = cli("--json", "chat", "-m", "gone/m", "--fallback", "lab/sim-small", "hi")
    assert res.code == 0, res.output
    tries = [(a["outcome"], a["tries"]) for a in json.loads(res.stdout)["attempts"]]
    assert tries == [("error", 1), ("ok", 1)]


def test_a_model_list_redirect_loop_is_one_clean_error_without_retries(
    cli: Cli, isolated_env: IsolatedEnv
) -> None:
    with Loopback() as srv:
        srv.route("/v1/models", Reply(status=302, headers={"Location": "/v1/models"}))
        isolated_env.write_config(
            f"[providers.loop]\ndriver = 'openai-compatible'\nbase_url = '{srv.url}/v1'\n"
            "key = 'none'\n[retry]\nattempts = 3\nbase_delay = 0.01\n"
        )
        for args in (["models", "sync", "loop"], ["providers", "verify", "loop"]):
            before = len(srv.requests)
            res = cli(*args)
            assert res.code == 1, res.output
            assert len(srv.requests) - before == MAX_REDIRECTS + 1, args
            lines = [ln for ln in res.output.splitlines() if "redirected more than" in ln]
            assert len(lines) == 1 and "Traceback" not in res.stderr, res.output
        # the error itself says "do not ask again", whichever path meets it
        from callm.transport import HttpRequest, send

        before = len(srv.requests)
        try:
            send(HttpRequest("GET", f"{srv.url}/v1/models", {}))
        except CallmError as exc:
            assert exc.retryable is False and "redirected more than" in exc.message
        else:
            raise AssertionError("a redirect loop was followed to the end")
        assert len(srv.requests) - before == MAX_REDIRECTS + 1
