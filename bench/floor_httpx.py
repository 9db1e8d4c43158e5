"""The floor: python + typer + httpx + pydantic + one streamed request, json.loads per SSE
line, text to stdout. It imports typer and pydantic without using them: callm is built on
them (issue 11), so the floor pays for the same stack and the ratio measures callm's own work.

    python bench/floor_httpx.py BASE_URL [MODEL] [PROMPT]

No error handling, retries, config, keys or usage ledger: the least any Python client must do.
Also the "raw httpx + json.loads over iter_lines" loop of the throughput benchmark.
"""

from __future__ import annotations

import json
import sys

import httpx
import pydantic  # noqa: F401 - the stack's import cost (see the docstring)
import typer  # noqa: F401


def main() -> None:
    base = sys.argv[1]
    model = sys.argv[2] if len(sys.argv) > 2 else "gpt-bench"
    prompt = sys.argv[3] if len(sys.argv) > 3 else "hi"
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True}
    write, flush = sys.stdout.write, sys.stdout.flush
    loads = json.loads
    with (
        httpx.Client() as client,
        client.stream(
            "POST",
            f"{base}/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-bench-FAKE000"},
        ) as r,
    ):
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = loads(line[6:])["choices"]
            if choices:
                text = choices[0]["delta"].get("content")
                if text:
                    write(text)
                    flush()  # stream as it arrives, like a chat client
    write("\n")


if __name__ == "__main__":
    main()
