"""Mbox mailboxes: one memory per e-mail (split when long), de-duplicated by Message-ID.

Parsing is lenient (the compat32 parser never gives up on broken MIME);
text/plain is preferred, HTML is reduced to text, charsets are decoded with
a fallback for unknown or lying ones, attachments are listed, never stored.
"""

from __future__ import annotations

import email
import email.utils
import hashlib
import mailbox
from collections.abc import Iterator
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any

from ingest.items import SourceItem
from ingest.sources.files import html_to_text
from ingest.sources.markdown import split_text
from memory.services import MemoryInput

MAX_REFERENCES = 20


def header_text(message: Message, name: str) -> str:
    raw = message.get(name)
    if raw is None:
        return ""
    try:
        return " ".join(str(make_header(decode_header(str(raw)))).split())
    except (LookupError, UnicodeError, ValueError, TypeError):
        return " ".join(str(raw).split())


def decode_payload(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - broken transfer encodings: treat as raw text
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    if not isinstance(payload, bytes):
        return str(payload)
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset)
    except (LookupError, UnicodeDecodeError):
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(payload).best()
    return str(best) if best is not None else payload.decode("utf-8", errors="replace")


def _body_and_attachments(message: Message) -> tuple[str, list[dict[str, Any]]]:
    plain: list[str] = []
    html: list[str] = []
    attachments: list[dict[str, Any]] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        ctype = part.get_content_type()
        if filename or disposition == "attachment" or not ctype.startswith("text/"):
            if part is message and ctype.startswith("text/"):
                pass  # a single-part message whose body is text
            else:
                try:
                    size = len(part.get_payload(decode=True) or b"")
                except Exception:  # noqa: BLE001
                    size = 0
                attachments.append({"filename": filename or "", "content_type": ctype, "size": size})
                continue
        if ctype == "text/html":
            html.append(decode_payload(part))
        else:
            plain.append(decode_payload(part))
    if any(p.strip() for p in plain):
        return "\n\n".join(p.strip() for p in plain if p.strip()), attachments
    return "\n\n".join(html_to_text(h) for h in html if h.strip()), attachments


def _message_id(message: Message, raw: bytes) -> str:
    mid = " ".join(str(message.get("Message-ID") or message.get("Message-Id") or "").split())
    return mid or "sha256:" + hashlib.sha256(raw).hexdigest()


def _references(message: Message) -> list[str]:
    refs = " ".join(str(message.get("References") or "").split()).split()
    return [r for r in refs if r.startswith("<")][-MAX_REFERENCES:] or refs[-MAX_REFERENCES:]


def email_item(raw: bytes, index: int, cap: int, overlap: int) -> SourceItem:
    label = f"message {index + 1}"
    try:
        message = email.message_from_bytes(raw)
        mid = _message_id(message, raw)
        key = f"mbox:{mid}"
        subject = header_text(message, "Subject")
        sender = header_text(message, "From")
        to = header_text(message, "To")
        cc = header_text(message, "Cc")
        date = header_text(message, "Date")
        body, attachments = _body_and_attachments(message)
    except Exception as exc:  # noqa: BLE001 - one unreadable e-mail must not stop the mailbox
        return SourceItem(key=f"mbox-broken:{index}", label=label, error=f"unreadable e-mail: {exc}")
    label = f"{label} {mid}"
    occurred = None
    if date:
        try:
            occurred = email.utils.parsedate_to_datetime(date)
            if occurred.tzinfo is None:
                occurred = occurred.replace(tzinfo=UTC)
        except (TypeError, ValueError, IndexError):
            occurred = None
    references = _references(message)
    in_reply_to = " ".join(str(message.get("In-Reply-To") or "").split())
    thread = references[0] if references else (in_reply_to or mid)
    metadata: dict[str, Any] = {
        "source": "mbox",
        "source_key": key,
        "message_id": mid,
        "from": sender,
        "to": to,
        "subject": subject,
        "date": date,
        "thread_id": thread,
    }
    if cc:
        metadata["cc"] = cc
    if in_reply_to:
        metadata["in_reply_to"] = in_reply_to
    if references:
        metadata["references"] = references
    if attachments:
        metadata["attachments"] = attachments[:50]
    body = body.replace("\x00", "").strip()
    header = "\n".join(
        f"{name}: {value}"
        for name, value in (("Subject", subject), ("From", sender), ("To", to), ("Date", date))
        if value
    )
    if not body and not subject:
        return SourceItem(key=key, label=label, skip="empty e-mail")
    pieces = split_text(body, max(200, cap - len(header) - 2), overlap) if body else [""]
    inputs = []
    for number, piece in enumerate(pieces):
        meta = {**metadata, "chunk": number} if len(pieces) > 1 else metadata
        inputs.append(
            MemoryInput(
                content=f"{header}\n\n{piece}".strip(),
                kind="message",
                metadata=meta,
                occurred_at=occurred if isinstance(occurred, datetime) else None,
                tags=["email"],
            )
        )
    return SourceItem(key=key, label=label, inputs=inputs)


def mbox_items(path: Path, cap: int, overlap: int) -> Iterator[SourceItem]:
    box = mailbox.mbox(str(path), create=False)
    try:
        for index, key in enumerate(box.iterkeys()):
            try:
                raw = box.get_bytes(key)
            except Exception as exc:  # noqa: BLE001
                yield SourceItem(key=f"mbox-broken:{index}", label=f"message {index + 1}", error=str(exc))
                continue
            yield email_item(raw, index, cap, overlap)
    finally:
        box.close()
