"""Config: locating, loading, validating and atomically saving config.toml."""

from __future__ import annotations

import errno
import os
import re
from dataclasses import fields
from pathlib import Path

import pytest

from callm.config import store
from callm.config.schema import Config, ProviderConfig
from callm.errors import EXIT_USAGE, CallmError, ConfigError
from callm.paths import config_path, data_dir, db_path
from isolation import Cli, IsolatedEnv

GOOD = """\
# my providers
default_model = "sim/sim-small"

[providers.lab]
driver = "openai-compatible"
base_url = "http://127.0.0.1:8000/v1"
key = "none"
"""


# ---- locating ------------------------------------------------------------------------------


def test_default_path_is_xdg(isolated_env: IsolatedEnv) -> None:
    assert config_path() == isolated_env.config_path
    assert data_dir() == isolated_env.data_dir
    assert db_path() == isolated_env.data_dir / "callm.db"


def test_callm_config_overrides_default(
    isolated_env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CALLM_CONFIG", str(tmp_path / "env.toml"))
    assert config_path() == tmp_path / "env.toml"


def test_flag_overrides_callm_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALLM_CONFIG", str(tmp_path / "env.toml"))
    assert config_path(str(tmp_path / "flag.toml")) == tmp_path / "flag.toml"


def test_callm_data_dir_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALLM_DATA_DIR", str(tmp_path / "d"))
    assert db_path() == tmp_path / "d" / "callm.db"


def test_cli_uses_config_flag_then_env_then_default(
    cli: Cli, isolated_env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    flag, env = tmp_path / "flag.toml", tmp_path / "env.toml"
    monkeypatch.setenv("CALLM_CONFIG", str(env))
    assert (
        cli("--config", str(flag), "providers", "add", "a", "--driver", "sim", "--no-verify").code
        == 0
    )
    assert "[providers.a]" in flag.read_text()
    assert not env.exists()

    assert cli("providers", "add", "b", "--driver", "sim", "--no-verify").code == 0
    assert "[providers.b]" in env.read_text()
    assert not isolated_env.config_path.exists()

    monkeypatch.delenv("CALLM_CONFIG")
    assert cli("providers", "add", "c", "--driver", "sim", "--no-verify").code == 0
    assert "[providers.c]" in isolated_env.config_path.read_text()


def test_missing_config_is_empty_and_not_created(cli: Cli, isolated_env: IsolatedEnv) -> None:
    res = cli("--json", "providers", "list")
    assert res.code == 0, res.stderr
    assert res.stdout.strip() == "[]"
    assert not isolated_env.config_path.exists()


# ---- loading and validating ----------------------------------------------------------------


def test_load_good_config(isolated_env: IsolatedEnv) -> None:
    cfg = store.load(isolated_env.write_config(GOOD))
    assert cfg.default_model == "sim/sim-small"
    assert cfg.providers["lab"].key == "none"
    assert cfg.providers["lab"].timeout == 60


def test_toml_syntax_error_names_file_line_and_column(isolated_env: IsolatedEnv) -> None:
    path = isolated_env.write_config('default_model = "x"\n\n[providers.lab\ndriver = "sim"\n')
    with pytest.raises(ConfigError) as info:
        store.load(path)
    msg = info.value.message
    assert str(path) in msg
    assert re.search(r"line 3\b", msg), msg
    assert re.search(r"column \d+", msg), msg
    assert info.value.exit_code == EXIT_USAGE


def test_validation_error_names_the_field_path(isolated_env: IsolatedEnv) -> None:
    path = isolated_env.write_config('[providers.lab]\ndriver = "sim"\ntimeout = -1\n')
    with pytest.raises(ConfigError) as info:
        store.load(path)
    assert str(path) in info.value.message
    assert "providers.lab.timeout" in info.value.message


def test_wrong_type_names_the_field_path(isolated_env: IsolatedEnv) -> None:
    path = isolated_env.write_config('[retry]\nattempts = "three"\n')
    with pytest.raises(ConfigError, match=r"retry\.attempts"):
        store.load(path)


def test_unknown_driver_is_named(isolated_env: IsolatedEnv) -> None:
    path = isolated_env.write_config('[providers.lab]\ndriver = "opneai"\n')
    with pytest.raises(ConfigError, match=r"providers\.lab\.driver.*opneai"):
        store.load(path)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('defualt_model = "x"\n', "defualt_model"),
        ('[providers.lab]\ndriver = "sim"\nbase_ulr = "http://x"\n', "providers.lab.base_ulr"),
        ("[retry]\nattempt = 2\n", "retry.attempt"),
        ("[providerz.lab]\n", "providerz"),
    ],
)
def test_unknown_keys_are_rejected_by_name(isolated_env: IsolatedEnv, text: str, key: str) -> None:
    path = isolated_env.write_config(text)
    with pytest.raises(ConfigError) as info:
        store.load(path)
    assert f"unknown key '{key}'" in info.value.message


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[retry]\nattempts = 0\n", "retry.attempts: must be between 1 and 20, not 0"),
        ("[retry]\nattempts = 2.5\n", "retry.attempts: must be a whole number"),
        ("[retry]\nattempts = true\n", "retry.attempts: must be a whole number"),
        ("log_prompts = 1\n", "log_prompts: must be true or false"),
        ('[providers.lab]\ndriver = "sim"\ntimeout = true\n', "providers.lab.timeout: must be a"),
        ('[providers.lab]\ndriver = "sim"\nkey = "file"\n', "providers.lab.key: must be one of"),
        ('[providers.lab]\ndriver = "sim"\nheaders = { X = 1 }\n', "providers.lab.headers.X"),
        ('[providers.lab]\ndriver = "sim"\nmodels = ["a", 2]\n', "providers.lab.models.1"),
        ('[providers.lab]\nbase_url = "http://x"\n', "providers.lab.driver: missing"),
        ('[providers.lab]\ndriver = "sim"\ndeadline = 0\n', "providers.lab.deadline: must be gr"),
        ('[providers.lab]\ndriver = "sim"\nca_bundle = 1\n', "providers.lab.ca_bundle: must be"),
        ("[pricing.'openai/*']\ninput = -1\n", "pricing.openai/*.input: must be at least 0"),
        ('providers = "lab"\n', "providers: must be a table"),
        ("[fallbacks]\n'a/b' = \"c/d\"\n", "fallbacks.a/b: must be a list"),
    ],
)
def test_each_bad_value_is_named_with_what_was_expected(
    isolated_env: IsolatedEnv, text: str, said: str
) -> None:
    path = isolated_env.write_config(text)
    with pytest.raises(ConfigError) as info:
        store.load(path)
    assert said in info.value.message


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('[providers.lab]\ndriver = "sim"\ntimeout = inf\n', "providers.lab.timeout: must be a fi"),
        (
            '[providers.lab]\ndriver = "sim"\nconnect_timeout = nan\n',
            "connect_timeout: must be a fi",
        ),
        ("[retry]\nmax_delay = 1e309\n", "retry.max_delay: must be a finite number, not inf"),
        ("[retry]\ncooldown_seconds = -inf\n", "retry.cooldown_seconds: must be a finite number"),
        ("[pricing.lab]\ninput = inf\n", "pricing.lab.input: must be a finite number, not inf"),
        ("[pricing.lab]\noutput = nan\n", "pricing.lab.output: must be a finite number, not nan"),
    ],
)
def test_infinite_and_nan_numbers_are_refused(
    cli: Cli, isolated_env: IsolatedEnv, text: str, said: str
) -> None:
    path = isolated_env.write_config(text)
    with pytest.raises(ConfigError) as info:
        store.load(path)
    assert said in info.value.message
    res = cli("providers", "list")
    assert res.code == EXIT_USAGE and said in res.stderr.splitlines()[0]
    assert "Traceback" not in res.stderr


def test_all_problems_are_counted_and_the_first_is_shown(isolated_env: IsolatedEnv) -> None:
    path = isolated_env.write_config("[retry]\nattempts = 0\nbase_delay = -1\nbogus = 1\n")
    with pytest.raises(ConfigError) as info:
        store.load(path)
    assert info.value.message.endswith("unknown key 'retry.bogus'")
    path = isolated_env.write_config("[retry]\nattempts = 0\nbase_delay = -1\n")
    with pytest.raises(ConfigError) as info:
        store.load(path)
    said = "retry.attempts: must be between 1 and 20, not 0 (and 1 more)"
    assert info.value.message.endswith(said)


def test_numbers_are_kept_as_floats_and_changes_are_checked_again() -> None:
    from dataclasses import FrozenInstanceError

    from callm.config.schema import SchemaError, updated

    pc = ProviderConfig.from_dict({"driver": "sim", "timeout": 5})
    assert pc.timeout == 5.0 and isinstance(pc.timeout, float)
    with pytest.raises(SchemaError, match="timeout: must be greater than 0"):
        updated(pc, timeout=0)
    assert updated(pc, timeout=7).timeout == 7.0 and pc.timeout == 5.0
    with pytest.raises(FrozenInstanceError):
        pc.timeout = 1.0  # type: ignore[misc]
    with pytest.raises(SchemaError, match="unknown driver 'nope'"):
        ProviderConfig.make(driver="nope")


def test_what_is_written_leaves_defaults_out_at_every_level() -> None:
    cfg = Config.from_dict(
        {
            "retry": {"attempts": 5, "base_delay": 0.5},
            "providers": {"lab": {"driver": "sim", "timeout": 60, "enabled": False}},
            "aliases": {},
        }
    )
    assert cfg.to_toml_dict() == {
        "retry": {"attempts": 5},
        "providers": {"lab": {"driver": "sim", "enabled": False}},
    }
    assert Config().to_toml_dict() == {}
    assert cfg.to_dict()["retry"]["base_delay"] == 0.5


def test_not_utf8_names_the_file(isolated_env: IsolatedEnv) -> None:
    path = isolated_env.config_path
    path.parent.mkdir(parents=True)
    path.write_bytes(b'default_model = "\xff"\n')
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        store.load(path)


@pytest.mark.parametrize(
    "text",
    [
        'default_model = "x"\n[providers.lab\n',  # TOML syntax
        '[providers.lab]\ndriver = "sim"\nbogus = 1\n',  # unknown key
        '[providers.lab]\ndriver = "sim"\ntimeout = "soon"\n',  # wrong type
    ],
    ids=["syntax", "unknown-key", "wrong-type"],
)
def test_cli_reports_broken_config_in_one_line_with_exit_2(
    cli: Cli, isolated_env: IsolatedEnv, text: str
) -> None:
    isolated_env.write_config(text)
    res = cli("providers", "list")
    assert res.code == EXIT_USAGE
    first, *rest = res.stderr.splitlines()
    assert first.startswith("error: ") and str(isolated_env.config_path) in first
    assert all(line.startswith("hint: ") for line in rest)
    assert "Traceback" not in res.stderr


# ---- a broken config is never overwritten --------------------------------------------------

BROKEN = [
    '[providers.lab]\ndriver = "sim"\n\n[providers.lab2\n',
    '# keep me\n[providers.lab]\ndriver = "sim"\ntypo = true\n',
]
SAVING_COMMANDS = [
    ["providers", "add", "openai", "--no-verify"],
    ["providers", "add", "other", "--driver", "sim", "--force", "--no-verify"],
    ["providers", "enable", "lab"],
    ["providers", "disable", "lab"],
    ["providers", "remove", "lab", "--yes"],
]


@pytest.mark.parametrize("text", BROKEN, ids=["syntax", "schema"])
@pytest.mark.parametrize("args", SAVING_COMMANDS, ids=lambda a: " ".join(a[1:3]))
def test_broken_config_is_never_overwritten(
    cli: Cli, isolated_env: IsolatedEnv, text: str, args: list[str]
) -> None:
    path = isolated_env.write_config(text)
    before = path.read_bytes()
    res = cli(*args)
    assert res.code == EXIT_USAGE, res.output
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]


def test_set_key_on_broken_config_leaves_file_and_keychain_alone(
    cli: Cli, isolated_env: IsolatedEnv
) -> None:
    path = isolated_env.write_config(BROKEN[1])
    before = path.read_bytes()
    res = cli("providers", "set-key", "lab", "--key-stdin", stdin="fake-key-for-tests-0001\n")
    assert res.code == EXIT_USAGE
    assert path.read_bytes() == before
    assert not isolated_env.keyring_file.exists()


# ---- saving --------------------------------------------------------------------------------


def _sample() -> Config:
    return Config(
        default_model="lab/m",
        providers={
            "lab": ProviderConfig(
                driver="openai-compatible",
                base_url="http://127.0.0.1:8000/v1",
                key="none",
                headers={"X-Team": "a"},
                models=["m", "n"],
            )
        },
    )


def test_save_round_trips_and_leaves_defaults_out(isolated_env: IsolatedEnv) -> None:
    path = isolated_env.config_path
    store.save(path, _sample())
    assert store.load(path) == _sample()
    text = path.read_text()
    assert "timeout" not in text and "enabled" not in text and "retry" not in text


def test_new_config_is_private(isolated_env: IsolatedEnv) -> None:
    path = isolated_env.config_path
    store.save(path, _sample())
    assert path.stat().st_mode & 0o777 == 0o600


def test_save_keeps_existing_permissions(isolated_env: IsolatedEnv) -> None:
    path = isolated_env.write_config(GOOD)
    path.chmod(0o640)
    store.save(path, _sample())
    assert path.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("fail_at", ["replace", "fsync", "write"])
def test_failed_save_keeps_old_config_and_leaves_no_temp_file(
    isolated_env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    path = isolated_env.write_config(GOOD)
    before = path.read_bytes()

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if fail_at == "write":
        real_fdopen = os.fdopen

        def fdopen(*args: object, **kwargs: object) -> object:
            fh = real_fdopen(*args, **kwargs)  # type: ignore[call-overload]
            fh.write = disk_full
            return fh

        monkeypatch.setattr(os, "fdopen", fdopen)
    else:
        monkeypatch.setattr(os, fail_at, disk_full)
    with pytest.raises(CallmError) as info:
        store.save(path, _sample())
    monkeypatch.undo()
    assert info.value.exit_code == 1  # the file system failed, not the config
    assert "No space left" in info.value.message
    assert "unchanged" in info.value.message
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]


def test_failed_save_through_cli_exits_cleanly(
    cli: Cli, isolated_env: IsolatedEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = isolated_env.write_config(GOOD)
    before = path.read_bytes()

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    res = cli("providers", "disable", "lab")
    assert res.code != 0
    assert res.stderr.startswith("error: could not save")
    assert "Traceback" not in res.stderr
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]


def test_save_creates_missing_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "config.toml"
    store.save(path, _sample())
    assert store.load(path) == _sample()


def test_config_file_holds_no_secret_fields() -> None:
    """The schema has no field a key could be stored in."""
    names = {f.name for cls in (ProviderConfig, Config) for f in fields(cls)}
    assert not {"api_key", "secret", "token", "password"} & names
    with pytest.raises(ValueError, match="api_key"):
        ProviderConfig.from_dict({"driver": "sim", "api_key": "fake-key-for-tests-0002"})


def test_bad_provider_name_in_the_file_is_named(isolated_env: IsolatedEnv) -> None:
    path = isolated_env.write_config('[providers."my lab"]\ndriver = "sim"\n')
    with pytest.raises(ConfigError, match="bad provider name 'my lab'"):
        store.load(path)


# ---- the user's comments and layout survive a save -----------------------------------------

COMMENTED = """\
# callm config -- mine, with notes
default_model = "lab/m1"  # the usual

[providers.lab]   # the box under my desk
driver = "openai-compatible"
base_url = "http://127.0.0.1:8000/v1"
key = "none"
enabled = true  # explicit, although it is the default
headers = { "X-Team" = "a" }

# spare
[providers.spare]
driver = "sim"

[retry]
attempts = 3  # the default, written out
"""


def test_saving_keeps_comments_layout_and_explicit_defaults(
    cli: Cli, isolated_env: IsolatedEnv
) -> None:
    path = isolated_env.write_config(COMMENTED)
    assert cli("providers", "add", "groq", "--no-verify").code == 0
    assert cli("providers", "disable", "spare").code == 0
    assert cli("providers", "enable", "spare").code == 0
    text = path.read_text()
    for kept in [
        "# callm config -- mine, with notes",
        'default_model = "lab/m1"  # the usual',
        "[providers.lab]   # the box under my desk",
        "enabled = true  # explicit, although it is the default",
        'headers = { "X-Team" = "a" }',
        "attempts = 3  # the default, written out",
    ]:
        assert kept in text
    assert "[providers.groq]" in text
    cfg = store.load(path)
    assert set(cfg.providers) == {"lab", "spare", "groq"}
    assert cfg.providers["spare"].enabled is True


def test_saving_changes_only_what_changed(cli: Cli, isolated_env: IsolatedEnv) -> None:
    path = isolated_env.write_config(COMMENTED)
    assert cli("providers", "disable", "lab").code == 0
    text = path.read_text()
    assert "enabled = false  # explicit, although it is the default" in text
    assert text.replace("enabled = false", "enabled = true") == COMMENTED

    assert cli("providers", "remove", "spare", "--yes").code == 0
    text = path.read_text()
    assert "[providers.spare]" not in text
    assert "[providers.lab]   # the box under my desk" in text


def test_new_tables_are_tables_and_headers_inline(isolated_env: IsolatedEnv) -> None:
    path = isolated_env.config_path
    store.save(path, _sample())
    text = path.read_text()
    assert "[providers.lab]" in text
    assert 'headers = {X-Team = "a"}' in text or 'headers = { X-Team = "a" }' in text
    assert store.load(path) == _sample()
