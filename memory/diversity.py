"""Maximal marginal relevance (MMR) over the best candidates of a search.

Picks the top k one at a time: each pick maximises
`λ × relevance − (1 − λ) × (its highest cosine similarity to a memory already picked)`, relevance
being the candidate's final score over the best one's. λ = 1 is the plain ranking. The vectors are
the stored embeddings of the current model (one statement for the candidates); a candidate without
one yet counts as similar to nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from accounts.principal import Principal
from accounts.scoping import scoped
from memory.models import MemoryEmbedding


def stored_vectors(principal: Principal, model: str, ids: list[Any]) -> dict[Any, np.ndarray]:
    """memory id → its unit-length stored vector under `model`."""
    rows = scoped(MemoryEmbedding, principal.tenant).filter(model=model, memory_id__in=ids)
    vectors: dict[Any, np.ndarray] = {}
    for memory_id, embedding in rows.values_list("memory_id", "embedding"):
        vector = np.asarray(embedding, dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        if norm > 0:
            vectors[memory_id] = vector / norm
    return vectors


def mmr_order(
    ranked: list[Any], scores: dict[Any, float], vectors: dict[Any, np.ndarray], lam: float, k: int
) -> list[Any]:
    """The first k of `ranked` (best first) re-ordered by MMR, followed by nothing else."""
    if not ranked:
        return []
    best = max(scores[mid] for mid in ranked) or 1.0
    remaining = list(ranked)
    picked: list[Any] = []
    similarity = {mid: 0.0 for mid in remaining}  # highest similarity to a pick so far
    while remaining and len(picked) < k:
        choice = max(remaining, key=lambda mid: lam * scores[mid] / best - (1 - lam) * similarity[mid])
        picked.append(choice)
        remaining.remove(choice)
        chosen = vectors.get(choice)
        if chosen is None:
            continue
        for mid in remaining:
            vector = vectors.get(mid)
            if vector is not None:
                similarity[mid] = max(similarity[mid], float(vector @ chosen))
    return picked
