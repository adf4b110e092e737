"""Extension points for enrichment steps beyond embedding (graph extraction, ...).

Other apps register a callable taking memory ids; `memory_extract_task` runs them
on the LLM queue once the memories are embedded. Each hook must be idempotent.
They also register what to do when memories are deleted, and a reconcile step that
re-queues memories whose derived data of theirs is missing (`easymemory reconcile`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Hook = Callable[[Sequence[str]], None]
_hooks: list[Hook] = []


def register_enrichment_hook(hook: Hook) -> Hook:
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def has_enrichment_hooks() -> bool:
    return bool(_hooks)


def run_enrichment_hooks(memory_ids: Sequence[str]) -> None:
    for hook in _hooks:
        hook(memory_ids)


DeletionHook = Callable[..., None]
_deletion_hooks: list[DeletionHook] = []


def register_deletion_hook(hook: DeletionHook) -> DeletionHook:
    """`hook(tenant=..., memory_ids=[...])` runs inside the deleting transaction, before the rows go,
    so derived data (graph mentions, relations only those memories supported) goes with them."""
    if hook not in _deletion_hooks:
        _deletion_hooks.append(hook)
    return hook


def run_deletion_hooks(*, tenant: object, memory_ids: Sequence[object]) -> None:
    for hook in _deletion_hooks:
        hook(tenant=tenant, memory_ids=memory_ids)


ReconcileStep = Callable[..., int]
_reconcile_steps: dict[str, ReconcileStep] = {}


def register_reconcile_step(label: str, step: ReconcileStep) -> ReconcileStep:
    """`step(limit=...)` re-queues memories whose `label` (e.g. "graph extraction") is missing,
    stale or failed, and returns how many it re-queued."""
    _reconcile_steps[label] = step
    return step


def reconcile_steps() -> dict[str, ReconcileStep]:
    return dict(_reconcile_steps)
