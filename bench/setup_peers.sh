#!/usr/bin/env bash
# Create bench/.venv-peers: the tools callm is compared with (simonw's llm, the official
# openai SDK) and profilers. Separate from callm's own venv; the tests never need it.
# Usage: bash bench/setup_peers.sh [PYTHON]   (default: python3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-peers"
py="${1:-${PYTHON:-python3}}"
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
# llm 0.36 is the version the issue names; openai is whatever is current (the SDK llm uses too).
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "llm==0.36" openai httpx pyinstrument py-spy
"$venv/bin/python" - <<'PY'
import importlib.metadata as m
for name in ("llm", "openai", "httpx", "pydantic", "pyinstrument"):
    print(f"{name} {m.version(name)}")
PY
