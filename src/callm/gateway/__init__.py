"""`callm serve`: a local HTTP gateway speaking the OpenAI, Anthropic and Ollama wire formats
in front of callm's engine. Needs the `serve` extra (uvicorn, starlette)."""
