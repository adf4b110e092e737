"""A LangChain retriever over EasyMemory's hybrid search (install with the `langgraph` extra)."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from easymemory_client.async_client import AsyncEasyMemory
from easymemory_client.client import EasyMemory
from easymemory_client.models import Hit


def _document(hit: Hit) -> Document:
    memory = hit.memory
    metadata: dict[str, Any] = {
        "id": memory.id,
        "score": hit.score,
        "evidence": hit.evidence,
        "embedded": hit.embedded,
        "kind": memory.kind,
        "tags": memory.tags,
        "user_ref": memory.user_ref,
        "created_at": memory.created_at.isoformat() if memory.created_at else None,
        **{f"metadata.{k}": v for k, v in memory.metadata.items()},
    }
    return Document(page_content=memory.content, metadata=metadata, id=memory.id)


class EasyMemoryRetriever(BaseRetriever):
    """Documents for a query from EasyMemory; each carries the memory id, score and rank evidence."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: EasyMemory | None = None
    async_client: AsyncEasyMemory | None = None
    k: int = 5
    filters: dict[str, Any] = {}
    weights: dict[str, float] = {}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        if self.client is None:
            raise ValueError("EasyMemoryRetriever needs `client` for synchronous use")
        hits = self.client.search(query, k=self.k, filters=self.filters or None, weights=self.weights or None)  # type: ignore[arg-type]
        return [_document(hit) for hit in hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.async_client is None:
            return await super()._aget_relevant_documents(query, run_manager=run_manager)
        filters, weights = self.filters or None, self.weights or None
        hits = await self.async_client.search(query, k=self.k, filters=filters, weights=weights)  # type: ignore[arg-type]
        return [_document(hit) for hit in hits]
