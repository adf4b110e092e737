"""Slack workspace export (zip): channels/<name>/<YYYY-MM-DD>.json, users.json, channels.json."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from ingest.items import SourceItem
from ingest.sources.safezip import SafeZip
from memory.services import MemoryInput

NOISE_SUBTYPES = {
    "bot_message", "channel_join", "channel_leave", "channel_topic", "channel_purpose", "channel_name",
    "channel_archive", "channel_unarchive", "group_join", "group_leave", "pinned_item", "unpinned_item",
    "bot_add", "bot_remove", "reminder_add", "slackbot_response", "tombstone",
}  # fmt: skip
CHANNEL_LISTS = ("channels.json", "groups.json", "mpims.json", "dms.json")
DAY_FILE = re.compile(r"^(?P<channel>[^/]+)/(?P<day>\d{4}-\d{2}-\d{2})\.json$")
# Slack escapes "<" and ">" inside messages, so a token's text never holds "<": stopping there keeps
# each pattern linear on a message of many unclosed "<@A|" (tests/memory/test_regex_linear.py).
USER_MENTION = re.compile(r"<@([A-Z0-9]{1,40})(?:\|([^<>]{1,200}))?>")
CHANNEL_MENTION = re.compile(r"<#[A-Z0-9]{1,40}\|([^<>]{1,200})>")
LINK = re.compile(r"<((?:https?|mailto):[^|<>]+)(?:\|([^<>]+))?>")
SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^<>]{0,200})?>")


def _load_json(archive: SafeZip, name: str) -> Any:
    for candidate in archive.names():
        if candidate == name or candidate.endswith("/" + name) and candidate.count("/") == 1:
            return json.loads(archive.read(candidate).decode("utf-8"))
    return None


def _user_names(archive: SafeZip) -> dict[str, str]:
    names: dict[str, str] = {}
    try:
        users = _load_json(archive, "users.json") or []
    except (ValueError, UnicodeDecodeError, RecursionError):
        return names
    for user in users if isinstance(users, list) else []:
        if not isinstance(user, dict) or "id" not in user:
            continue
        profile = user.get("profile") or {}
        names[user["id"]] = (
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
            or user["id"]
        )
    return names


def clean_text(text: str, users: dict[str, str]) -> str:
    text = USER_MENTION.sub(lambda m: "@" + (users.get(m.group(1)) or m.group(2) or m.group(1)), text)
    text = CHANNEL_MENTION.sub(lambda m: "#" + m.group(1), text)
    text = LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    text = SPECIAL.sub(lambda m: "@" + m.group(1), text)
    return html.unescape(text).strip()


def _prefix(names: list[str]) -> str:
    """The export's top folder, when the zip wraps everything in one."""
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    if len(tops) == 1 and not any(n in CHANNEL_LISTS or n == "users.json" for n in names):
        top = tops.pop()
        if f"{top}/users.json" in names or f"{top}/channels.json" in names:
            return top + "/"
    return ""


def slack_items(archive: SafeZip) -> Iterator[SourceItem]:
    names = archive.names()
    prefix = _prefix(names)
    users = _user_names(archive)
    day_files = []
    for name in names:
        match = DAY_FILE.match(name[len(prefix) :]) if name.startswith(prefix) else None
        if match:
            day_files.append((match.group("channel"), match.group("day"), name))
    if not day_files and "users.json" not in [PurePosixPath(n).name for n in names]:
        raise ValueError("this zip is not a Slack export (no users.json and no channel/<date>.json files)")
    for channel, day, name in sorted(day_files):
        try:
            messages = json.loads(archive.read(name).decode("utf-8"))
            if not isinstance(messages, list):
                raise ValueError("expected a list of messages")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            yield SourceItem(key=f"slack-file:{name}", label=name, error=f"invalid JSON in {name}: {exc!s:.200}")
            continue
        for index, message in enumerate(messages):
            yield _message_item(channel, day, name, index, message, users)


def _message_item(channel: str, day: str, name: str, index: int, message: Any, users: dict[str, str]) -> SourceItem:
    label = f"{name}[{index}]"
    if not isinstance(message, dict):
        return SourceItem(key=f"slack:{name}:{index}", label=label, error="a message is not a JSON object")
    ts = str(message.get("ts") or "")
    key = f"slack:{channel}:{ts or index}"
    subtype = message.get("subtype") or ""
    if subtype in NOISE_SUBTYPES or message.get("bot_id") or message.get("type", "message") != "message":
        return SourceItem(key=key, label=label, skip="bot or system message")
    text = clean_text(str(message.get("text") or ""), users)
    if message.get("files") or subtype == "file_share":
        if not text:
            return SourceItem(key=key, label=label, skip="file")
    if not text:
        return SourceItem(key=key, label=label, skip="empty message")
    try:
        occurred = datetime.fromtimestamp(float(ts), tz=UTC)
    except (TypeError, ValueError):
        return SourceItem(key=key, label=label, error=f"message has no valid ts ({ts!r})")
    user_id = str(message.get("user") or "")
    speaker = users.get(user_id) or message.get("user_name") or message.get("username") or user_id or "unknown"
    metadata: dict[str, Any] = {
        "source": "slack",
        "source_key": key,
        "channel": channel,
        "ts": ts,
        "speaker": speaker,
        "slack_user": user_id,
    }
    thread_ts = message.get("thread_ts")
    if thread_ts:
        metadata["thread_ts"] = str(thread_ts)
        metadata["thread"] = f"{channel}:{thread_ts}"
        if str(thread_ts) != ts:
            metadata["reply_to"] = str(thread_ts)
    if message.get("files"):
        metadata["files_skipped"] = len(message["files"])
    # Speaker, channel and time lead the content: a hit read alone still says who said it when.
    content = f"[{occurred:%Y-%m-%d %H:%M} UTC] {speaker} in #{channel}: {text}"
    return SourceItem(
        key=key,
        label=label,
        inputs=[MemoryInput(content=content, kind="message", metadata=metadata, occurred_at=occurred, tags=["slack"])],
    )
