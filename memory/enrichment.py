"""Extension point for enrichment steps beyond embedding (graph extraction, ...).

Other apps register a callable taking memory ids; the enrichment task runs them
after embedding. Each hook must be idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Hook = Callable[[Sequence[str]], None]
_hooks: list[Hook] = []


def register_enrichment_hook(hook: Hook) -> Hook:
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def run_enrichment_hooks(memory_ids: Sequence[str]) -> None:
    for hook in _hooks:
        hook(memory_ids)
