"""The validated copy of the config (callm.config.cache): it gives back exactly what
validating the file gives, is used only for the same text and schema, and is ignored when
anyone else could have written it. That it spares pydantic is tests/test_startup.py's."""

from __future__ import annotations

import json
import os
from pathlib import Path

from callm import validated_cache as cache
from callm.config import store
from isolation import IsolatedEnv

RICH = """
default_model = "lab/m1"
log_prompts = false
[providers.lab]
driver = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
timeout = 5
headers = { "x-team" = "blue" }
models = ["m1", "m2"]
deadline = 30
[providers.bed]
driver = "bedrock"
region = "eu-west-1"
[aliases]
fast = "lab/m1"
[fallbacks]
"lab/m1" = ["bed/x"]
[retry]
attempts = 5
[pricing."lab/m1"]
input = 1.5
[routes.cheap]
models = ["lab/m1", "bed/x"]
strategy = "weighted"
weights = [1, 2]
[templates.t]
model = "lab/m1"
schema = '{"type": "object"}'
options = { temperature = 0.2, stop = ["x"] }
[budgets]
daily = 2
[budgets.providers.lab]
monthly = 10
"""


def _copy(env: IsolatedEnv) -> Path:
    (found,) = (env.home / ".cache" / "callm").glob("config-*.json")
    return found


def test_the_copy_gives_back_what_validation_gives(isolated_env: IsolatedEnv) -> None:
    path = isolated_env.write_config(RICH)
    first = store.load(path)
    found = _copy(isolated_env)
    assert found.stat().st_mode & 0o777 == 0o600
    assert found.parent.stat().st_mode & 0o777 == 0o700
    again = store.load(path)
    assert again == first and again.providers["lab"].timeout == 5.0
    assert again.templates["t"].schema_ == '{"type": "object"}'
    assert again.to_toml_dict() == first.to_toml_dict()


def _tampered(isolated_env: IsolatedEnv) -> Path:
    """A copy that says the provider's base_url is another host: it must not be believed."""
    path = isolated_env.write_config(RICH)
    store.load(path)
    found = _copy(isolated_env)
    saved = json.loads(found.read_text())
    saved["value"]["providers"]["lab"]["base_url"] = "http://elsewhere.invalid/v1"
    found.write_text(json.dumps(saved))
    return found


def test_a_copy_others_could_write_is_ignored(isolated_env: IsolatedEnv) -> None:
    found = _tampered(isolated_env)
    os.chmod(found, 0o666)
    cfg = store.load(isolated_env.config_path)
    assert cfg.providers["lab"].base_url == "http://127.0.0.1:9/v1"


def test_a_copy_made_by_another_schema_is_ignored(isolated_env: IsolatedEnv) -> None:
    found = _tampered(isolated_env)
    saved = json.loads(found.read_text())
    saved["stamp"][1] = "0.0.0-older"
    found.write_text(json.dumps(saved))
    assert store.load(isolated_env.config_path).providers["lab"].base_url.startswith("http://127")


def test_a_symlinked_copy_is_ignored(isolated_env: IsolatedEnv) -> None:
    found = _tampered(isolated_env)
    real = found.with_name("elsewhere.json")
    found.rename(real)
    found.symlink_to(real)
    assert store.load(isolated_env.config_path).providers["lab"].base_url.startswith("http://127")


def test_a_changed_file_is_validated_again(cli, isolated_env: IsolatedEnv) -> None:
    isolated_env.write_config('[providers.lab]\ndriver = "sim"\n')
    assert cli.sub("providers", "list").code == 0
    isolated_env.write_config('[providers.lab]\ndriver = "sim"\ntimeout = -1\n')
    res = cli.sub("providers", "list")
    assert res.code == 2 and "providers.lab.timeout: must be greater than 0" in res.stderr


def test_an_unusable_cache_folder_costs_nothing_but_time(
    cli, isolated_env: IsolatedEnv, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    isolated_env.write_config('[providers.lab]\ndriver = "sim"\n')
    env = {"CALLM_CACHE_DIR": str(blocker / "callm")}
    for _ in range(2):
        res = cli.sub("providers", "list", env=env)
        assert res.code == 0 and "lab" in res.stdout, res.stderr
    garbage = tmp_path / "garbage"
    garbage.mkdir(mode=0o700)
    (garbage / f"{cache.name_for(isolated_env.config_path)}.json").write_text("{not json")
    res = cli.sub("providers", "list", env={"CALLM_CACHE_DIR": str(garbage)})
    assert res.code == 0 and "lab" in res.stdout, res.stderr
