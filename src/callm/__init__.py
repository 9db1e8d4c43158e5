"""callm: manage LLM providers and call them the same way."""

__version__ = "0.1.0"
