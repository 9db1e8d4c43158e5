"""Wire formats. Looked up by name and imported only when a call needs one."""

from __future__ import annotations

import importlib
from typing import Any

# driver name -> "module:Class"; OpenAI-compatible vendors are catalog rows, not drivers.
DRIVERS: dict[str, str] = {
    "openai": "callm.drivers.openai:OpenAIChatDriver",
    "openai-compatible": "callm.drivers.openai:OpenAICompatibleDriver",
    "azure-openai": "callm.drivers.azure:AzureOpenAIDriver",
    "openai-responses": "callm.drivers.openai_responses:ResponsesDriver",
    "anthropic": "callm.drivers.anthropic:AnthropicDriver",
    "gemini": "callm.drivers.gemini:GeminiDriver",
    "ollama": "callm.drivers.ollama:OllamaDriver",
    "bedrock": "callm.drivers.bedrock:BedrockDriver",
    "sim": "callm.drivers.sim:SimDriver",
}

DRIVER_NAMES: tuple[str, ...] = tuple(DRIVERS)


def get_driver(name: str) -> Any:
    """An instance of the named driver (a Driver, or a LocalDriver for sim)."""
    try:
        target = DRIVERS[name]
    except KeyError:
        from callm.errors import ConfigError

        raise ConfigError(
            f"unknown driver {name!r}", hint=f"drivers: {', '.join(DRIVER_NAMES)}"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()
