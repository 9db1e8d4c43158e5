"""Write the JSON Schema of every `--json` output to docs/schemas/NAME.json.

    python scripts/gen_schemas.py          # write docs/schemas/*.json
    python scripts/gen_schemas.py --check  # exit 1 if the committed files are stale

The text is exactly what `callm schema NAME` prints (callm.outputs.schema_text)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "schemas"


def expected() -> dict[str, str]:
    from callm.outputs import SCHEMAS, schema_text

    return {f"{name}.json": schema_text(name) for name in SCHEMAS}


def stale() -> list[str]:
    """Files that differ, are missing, or belong to no output."""
    want = expected()
    have = {p.name for p in OUT.glob("*.json")} if OUT.is_dir() else set()
    wrong = [
        n
        for n, text in want.items()
        if not (OUT / n).is_file() or (OUT / n).read_text("utf-8") != text
    ]
    return sorted(wrong + sorted(have - set(want)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if stale, write nothing")
    args = parser.parse_args()
    if args.check:
        bad = stale()
        for name in bad:
            print(f"stale: docs/schemas/{name}", file=sys.stderr)
        return 1 if bad else 0
    OUT.mkdir(parents=True, exist_ok=True)
    want = expected()
    for p in OUT.glob("*.json"):
        if p.name not in want:
            p.unlink()
    for name, text in want.items():
        (OUT / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
