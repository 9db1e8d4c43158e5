"""inf and nan are refused wherever callm reads a number from a flag (exit 2, one line), as
in the config (tests/test_config.py); `--max-cost nan` would otherwise pass every budget."""

from __future__ import annotations

import pytest

from callm.errors import EXIT_USAGE
from isolation import Cli, IsolatedEnv


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["chat", "-m", "sim", "--max-cost", "nan", "hi"], "--max-cost must be a finite number"),
        (["chat", "-m", "sim", "--max-cost", "inf", "hi"], "--max-cost must be a finite number"),
        (["chat", "-m", "sim", "--temperature", "nan", "hi"], "--temperature must be a finite"),
        (["chat", "-m", "sim", "-o", "seed:=Infinity", "hi"], "Infinity is not a JSON number"),
        (["chat", "-m", "sim", "-o", "x:=[-1e999]", "hi"], "-1e999 is too large for a number"),
        (["providers", "verify", "--timeout", "inf"], "--timeout must be a finite number"),
        (["providers", "verify", "--timeout", "0"], "--timeout must be positive"),
        (["models", "sync", "--timeout", "nan"], "--timeout must be a finite number, not nan"),
    ],
)
def test_non_finite_flags_are_usage_errors(
    cli: Cli, isolated_env: IsolatedEnv, args: list[str], said: str
) -> None:
    res = cli(*args)
    assert res.code == EXIT_USAGE, res.output
    first, *rest = res.stderr.splitlines()
    assert first.startswith("error: ") and said in first
    assert all(line.startswith("hint: ") for line in rest)
    assert res.stdout == ""


def test_json_options_take_finite_numbers_only() -> None:
    from callm.errors import UsageError
    from callm.options import parse_options

    assert parse_options(["stop=NaN", "n:=2", "t:=0.5"]) == {"stop": "NaN", "n": 2, "t": 0.5}
    with pytest.raises(UsageError, match="NaN is not a JSON number"):
        parse_options(["stop:=[NaN]"])
