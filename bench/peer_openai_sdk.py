"""The official openai SDK, as a user would write a streamed chat script. Runs in
bench/.venv-peers.

    python bench/peer_openai_sdk.py BASE_URL [MODEL] [PROMPT]
"""

from __future__ import annotations

import sys

from openai import OpenAI


def main() -> None:
    base = sys.argv[1]
    model = sys.argv[2] if len(sys.argv) > 2 else "gpt-bench"
    prompt = sys.argv[3] if len(sys.argv) > 3 else "hi"
    client = OpenAI(base_url=base, api_key="sk-bench-FAKE000", max_retries=0)
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    write, flush = sys.stdout.write, sys.stdout.flush
    for chunk in stream:
        if chunk.choices:
            text = chunk.choices[0].delta.content
            if text:
                write(text)
                flush()  # stream as it arrives, like a chat client
    write("\n")


if __name__ == "__main__":
    main()
