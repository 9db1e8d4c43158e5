"""Cut one request schema out of a vendor's OpenAPI document, for tests/specs/.

    python scripts/extract_spec.py SPEC.yaml|json SCHEMA_NAME OUT.json --source "repo path commit"
        [--close] [--openapi30]

The schema and every schema it references (transitively) are copied into `$defs`, refs
rewritten to `#/$defs/NAME`, so the file is a standalone JSON schema (draft 2020-12) that
`jsonschema` validates with. Descriptions, examples and `x-` extensions are dropped (size);
nothing else is changed, except:
  oneOf is read as anyOf: OpenAPI documents use oneOf for unions that their (dropped)
               discriminators resolve; JSON schema's "exactly one" would refuse valid
               requests that two branches describe
  --openapi30  OpenAPI 3.0's `nullable: true` becomes a JSON-schema null type
  --close      objects with properties get additionalProperties: false where the spec says
               nothing (for APIs that reject unknown fields, e.g. Google's proto JSON)
Run by hand when a spec is refreshed (YAML input needs `pip install pyyaml`); the suite
reads only the output files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

_DROP = {"description", "example", "examples", "title", "deprecated", "externalDocs"}
# draft 2019-09 recursion (OpenAI's filters) is not valid 2020-12: a recursive spot accepts
# anything instead (no request callm builds goes there)
_DROP |= {"$recursiveAnchor", "$recursiveRef"}


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def _schemas(doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if "components" in doc:
        return doc["components"]["schemas"], "#/components/schemas/"
    return doc["definitions"], "#/definitions/"  # Swagger 2.0


def _clean(
    node: Any, prefix: str, seen: set[str], todo: list[str], opts: argparse.Namespace
) -> Any:
    if isinstance(node, list):
        return [_clean(n, prefix, seen, todo, opts) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-") or key in _DROP or key in ("discriminator", "readOnly"):
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith(prefix):
            name = value[len(prefix) :]
            if name not in seen:
                seen.add(name)
                todo.append(name)
            out["$ref"] = "#/$defs/" + name
        elif key == "oneOf":
            out["anyOf"] = _clean(value, prefix, seen, todo, opts)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {k: _clean(v, prefix, seen, todo, opts) for k, v in value.items()}
        else:
            out[key] = _clean(value, prefix, seen, todo, opts)
    if opts.openapi30 and out.pop("nullable", False):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    if opts.close and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", type=Path)
    ap.add_argument("name")
    ap.add_argument("out", type=Path)
    ap.add_argument("--source", required=True, help="repo, path and commit it came from")
    ap.add_argument("--license", default="")
    ap.add_argument("--close", action="store_true")
    ap.add_argument("--openapi30", action="store_true")
    opts = ap.parse_args()
    schemas, prefix = _schemas(_load(opts.spec))
    seen, todo = {opts.name}, [opts.name]
    defs: dict[str, Any] = {}
    while todo:
        name = todo.pop()
        defs[name] = _clean(schemas[name], prefix, seen, todo, opts)
    out = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"Extracted from {opts.source}. {opts.license}".strip(),
        "$ref": "#/$defs/" + opts.name,
        "$defs": dict(sorted(defs.items())),
    }
    opts.out.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"{opts.out}: {len(defs)} schemas", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
