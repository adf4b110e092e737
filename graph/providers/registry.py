"""Building the configured extractor, once per process."""

from __future__ import annotations

from functools import cache

from django.conf import settings

from graph.providers.base import Extractor, ProviderConfig
from graph.providers.llm import AnthropicExtractor, OllamaExtractor, OpenAIExtractor
from graph.providers.offline import OfflineExtractor

PROVIDERS = {"offline": OfflineExtractor, "ollama": OllamaExtractor, "openai": OpenAIExtractor}
PROVIDERS["anthropic"] = AnthropicExtractor


def make_extractor(config: ProviderConfig) -> Extractor:
    if config.provider == "offline":
        return OfflineExtractor()
    cls = PROVIDERS[config.provider]
    return cls(config)


def config_from_settings() -> ProviderConfig:
    return ProviderConfig(
        provider=settings.EASYMEMORY_PROVIDER,
        model=settings.EASYMEMORY_MODEL,
        base_url=settings.EASYMEMORY_LLM_BASE_URL,
        api_key=settings.EASYMEMORY_LLM_API_KEY,
        timeout=settings.EASYMEMORY_LLM_TIMEOUT,
        max_retries=settings.EASYMEMORY_LLM_MAX_RETRIES,
        backoff=settings.EASYMEMORY_LLM_BACKOFF,
    )


@cache
def _cached(config: ProviderConfig) -> Extractor:
    return make_extractor(config)


def extractor_from_settings() -> Extractor:
    """The extractor the settings ask for; one instance (and HTTP connection pool) per configuration."""
    return _cached(config_from_settings())
