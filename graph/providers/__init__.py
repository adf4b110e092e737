"""Entity and relation extraction: an offline extractor and LLM clients (Ollama,
OpenAI-compatible, Anthropic), all returning the same validated `Extraction`."""

from __future__ import annotations

from graph.providers.base import Extraction, ExtractionError, Extractor, ProviderConfig, TransientProviderError
from graph.providers.registry import extractor_from_settings, make_extractor

__all__ = [
    "Extraction",
    "ExtractionError",
    "Extractor",
    "ProviderConfig",
    "TransientProviderError",
    "extractor_from_settings",
    "make_extractor",
]
