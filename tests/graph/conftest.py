from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.graph.fakes import FakeLLMServer


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer()
    try:
        yield server
    finally:
        server.close()
