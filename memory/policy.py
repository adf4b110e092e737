"""The conversation memory policy (EASYMEMORY_MEMORY_POLICY) for kind=message writes.

- all: every turn is stored.
- smart: substantive turns are stored; trivial acknowledgements ("ok", "thanks", 👍)
  are stored marked ephemeral (metadata {"ephemeral": true}), which lists and search
  leave out unless asked (`include_ephemeral`); a turn starting with "remember:" is
  stored as a note holding the rest of the turn.
- manual: only "remember:" turns are stored (as notes).
- off: no message is stored.
Other kinds (note, document, fact) are never affected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from memory.services import MemoryInput

POLICIES = ("smart", "all", "manual", "off")
EPHEMERAL_KEY = "ephemeral"
REMEMBER = re.compile(r"^\s*remember\s*:\s*", re.IGNORECASE)
TRIVIAL = {
    "ok", "okay", "k", "kk", "okie", "yes", "yeah", "yep", "yup", "no", "nope", "nah", "sure", "fine",
    "thanks", "thank you", "thx", "ty", "tysm", "thanks a lot", "thank you so much", "cheers",
    "cool", "great", "nice", "awesome", "perfect", "got it", "sounds good", "makes sense", "right",
    "alright", "all right", "lol", "haha", "hmm", "hm", "ah", "oh", "i see", "noted", "done",
    "hi", "hello", "hey", "bye", "goodbye", "good night", "see you", "you too", "np", "no problem",
}  # fmt: skip


@dataclass(frozen=True)
class PolicyDecision:
    item: MemoryInput | None  # None: not stored
    reason: str = ""


_PHRASES = [tuple(phrase.split()) for phrase in TRIVIAL]


def is_trivial(text: str) -> bool:
    """Only acknowledgements: the turn splits entirely into TRIVIAL phrases ("ok thanks!", "yes, got it")."""
    words = re.sub(r"[^\w\s']", " ", text.lower()).split()
    if not words:
        return True  # only emoji / punctuation
    if len(words) > 8:
        return False
    reachable = [True] + [False] * len(words)
    for start in range(len(words)):
        if reachable[start]:
            for phrase in _PHRASES:
                if tuple(words[start : start + len(phrase)]) == phrase:
                    reachable[start + len(phrase)] = True
    return reachable[-1]


def apply_policy(item: MemoryInput, policy: str) -> PolicyDecision:
    if item.kind != "message" or policy == "all":
        return PolicyDecision(item)
    match = REMEMBER.match(item.content)
    if match is not None and item.content[match.end() :].strip():
        if policy == "off":
            return PolicyDecision(None, "memory policy is off")
        return PolicyDecision(replace(item, kind="note", content=item.content[match.end() :].strip()))
    if policy in ("off", "manual"):
        return PolicyDecision(
            None,
            f"memory policy is {policy}: only turns starting with 'remember:' are stored"
            if policy == "manual"
            else "memory policy is off",
        )
    if is_trivial(item.content):
        return PolicyDecision(replace(item, metadata={**item.metadata, EPHEMERAL_KEY: True}))
    return PolicyDecision(item)
