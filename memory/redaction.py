"""Secrets are cut out of text before it is stored: the rest of the message stays.

Each rule replaces only the secret itself with a marker such as `[REDACTED]`;
markers never match a rule, so redacting twice changes nothing. Words that
merely contain a keyword ("tokenizer", "secretary", "passwordless") pass,
because a key=value rule needs the keyword right before `=` or `:`.
"""

from __future__ import annotations

import re

MARK = "[REDACTED]"

# Every pattern here runs on each write, over up to EASYMEMORY_MAX_CONTENT_BYTES of text, so each
# runs in linear time: repetitions are bounded, and a token may only start where a run of token
# characters starts (a lookbehind), so a run of 100k token characters is scanned once, not once
# per position (tests/memory/test_regex_linear.py).
PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]{1,20} ){0,8}PRIVATE KEY(?: BLOCK)?)-----.*?(?:-----END \1-----|\Z)", re.DOTALL
)
BEARER = re.compile(r"(?i)\b(bearer)\s+(?!\[REDACTED)[A-Za-z0-9\-._~+/]{8,}=*")
# Provider key formats with a recognisable prefix (OpenAI, Anthropic, GitHub, Slack, AWS, Google, GitLab,
# Hugging Face, Stripe, this project's own API keys) and JSON web tokens.
KNOWN_KEYS = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|emk_[A-Za-z0-9_\-]{20,}"
    r"|eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"
    r")"
)
# key=value / key: value where the key ends in a secret-ish word (db_password=..., "api_key": "...").
KEY_VALUE = re.compile(
    r"""(?ix)
    (?<![\w.\-])
    ([\w.\-]{0,100}?(?:password|passwd|passphrase|pwd|secret|api[_\-]?key|access[_\-]?key|private[_\-]?key
        |token|auth|credentials?)["']?)
    (\s*[:=]\s*)
    ("[^"\n]{0,512}"|'[^'\n]{0,512}'|[^\s,;'"}\]]+)
    """
)
CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
# The markers the rules above leave, and any a model might echo back ("[REDACTED CARD]", "REDACTED").
PLACEHOLDER = re.compile(r"\[REDACTED(?: [A-Z]{1,12}){0,3}\]")
_PLACEHOLDER_NAME = re.compile(
    r"\W{0,3}redacted(?:\W{1,3}(?:card|private|key|secret|token|password|credentials?|number|value)){0,3}\W{0,3}",
    re.IGNORECASE,
)


def mask_placeholders(text: str, replacement: str = ";") -> str:
    """`text` with each redaction marker replaced by `replacement` (a clause break by default), so an
    extractor reading it finds neither a name nor a participant of a relation in a marker."""
    return PLACEHOLDER.sub(replacement, text) if "[REDACTED" in text else text


def is_placeholder(name: str) -> bool:
    """True for a name that is a redaction marker or holds one: never an entity of its own."""
    return "[redacted" in name.casefold() or _PLACEHOLDER_NAME.fullmatch(name) is not None


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if 13 <= len(digits) <= 19 and luhn_valid(digits) and len(set(digits)) > 1:
        return "[REDACTED CARD]"
    return match.group(0)


def _key_value(match: re.Match[str]) -> str:
    value = match.group(3)
    bare = value.strip("\"'")
    if not bare or bare.startswith("[REDACTED") or bare.lower() in {"none", "null", "true", "false", "required"}:
        return match.group(0)
    prose = match.group(2).strip() == ":" and match.group(2).endswith(" ") and value[0] not in "\"'"
    if prose and bare.isalpha() and bare.islower() and len(bare) < 16:
        # "the password: is required" is prose; "password: hunter2" or "token: Xy9..." is a secret.
        return match.group(0)
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match.group(1)}{match.group(2)}{quote}{MARK}{quote}"


def redact_secrets(text: str) -> tuple[str, int]:
    """`text` with secrets replaced by markers, and how many were replaced."""
    count = 0

    def sub(pattern: re.Pattern[str], replacement: object, value: str) -> str:
        nonlocal count
        result, n = pattern.subn(replacement, value)  # type: ignore[call-overload]
        if result != value:
            count += n
        return result

    text = sub(PRIVATE_KEY, "[REDACTED PRIVATE KEY]", text)
    text = sub(BEARER, lambda m: f"{m.group(1)} {MARK}", text)
    text = sub(KNOWN_KEYS, MARK, text)
    text = sub(KEY_VALUE, _key_value, text)
    before = text
    text = CARD.sub(_card, text)
    if text != before:
        count += text.count("[REDACTED CARD]") - before.count("[REDACTED CARD]")
    return text, count
