from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

import pytest
from django.test import override_settings

from ingest.models import IngestedItem
from memory.models import Memory
from tests.conftest import Persona
from tests.ingest.helpers import run, slack_zip

pytestmark = pytest.mark.django_db

TS = "1709287200.000100"  # 2024-03-01 10:00:00 UTC

EXPORT = {
    "general": {
        "2024-03-01": [
            {
                "type": "message",
                "user": "U1",
                "text": "Ship it on <!here> Friday, <@U2>?",
                "ts": TS,
                "thread_ts": TS,
                "reply_count": 1,
            },
            {
                "type": "message",
                "user": "U2",
                "text": "Yes &amp; I'll write the notes",
                "ts": "1709287260.000200",
                "thread_ts": TS,
                "parent_user_id": "U1",
            },
            {"type": "message", "subtype": "channel_join", "user": "U2", "text": "<@U2> has joined", "ts": "1"},
            {"type": "message", "subtype": "bot_message", "bot_id": "B1", "text": "Deploy done", "ts": "2"},
            {
                "type": "message",
                "user": "U1",
                "subtype": "file_share",
                "text": "",
                "ts": "3",
                "files": [{"name": "x.png"}],
            },
        ]
    },
    "random": {
        "2024-03-02": [
            {"type": "message", "user": "U9", "text": "see <https://x.org|the site>", "ts": "1709373600.000000"}
        ]
    },
}


def slack(persona: Persona, data: bytes):
    return run(persona.principal, "slack", {}, upload=("export.zip", data))


def test_it_imports_channels_threads_and_speakers_and_skips_noise(writer: Persona) -> None:
    job = slack(writer, slack_zip(EXPORT))
    assert job.status == "done", job.error
    assert (job.done, job.skipped, job.failed) == (3, 3, 0)
    assert job.stats == {"bot or system message": 2, "file": 1}
    first = Memory.objects.get(metadata__ts=TS)
    assert first.content == "[2024-03-01 10:00 UTC] Alice in #general: Ship it on @here Friday, @Bob Jones?"
    assert first.occurred_at == datetime(2024, 3, 1, 10, 0, 0, 100, tzinfo=UTC)
    assert first.kind == "message" and first.metadata["channel"] == "general"
    reply = Memory.objects.get(metadata__ts="1709287260.000200")
    assert reply.content.endswith("Bob Jones in #general: Yes & I'll write the notes")
    assert reply.metadata["thread"] == f"general:{TS}" and reply.metadata["reply_to"] == TS
    unknown = Memory.objects.get(metadata__channel="random")
    assert "U9 in #random: see the site (https://x.org)" in unknown.content


def test_a_rerun_imports_nothing_twice(writer: Persona) -> None:
    data = slack_zip(EXPORT)
    slack(writer, data)
    again = slack(writer, data)
    assert (again.done, again.memories_created) == (0, 0)
    assert again.stats["already imported"] == 3
    assert Memory.objects.count() == 3
    assert IngestedItem.objects.filter(tenant=writer.tenant).count() == 3


def test_invalid_json_in_one_day_file_is_reported_and_the_rest_imported(writer: Persona) -> None:
    broken = {**EXPORT, "ops": {"2024-03-03": b'[{"text": "unterminated'}}
    job = slack(writer, slack_zip(broken))
    assert job.status == "done"
    assert job.failed == 1 and "ops/2024-03-03.json" in job.errors[0]["item"]
    assert "invalid JSON" in job.errors[0]["error"]
    assert Memory.objects.count() == 3


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_zip_bombs_traversal_and_truncation_fail_the_job_before_anything_is_stored(writer: Persona) -> None:
    bomb = zip_of({"users.json": b"[]", "general/2024-01-01.json": b"[" + b" " * 5_000_000 + b"]"})
    assert len(bomb) < 20_000
    with override_settings(EASYMEMORY_MAX_ZIP_BYTES=1_000_000):
        job = slack(writer, bomb)
    assert job.status == "failed" and "zip bomb" in job.error

    many = zip_of({f"general/2024-01-{i:02d}.json": b"[]" for i in range(1, 30)})
    with override_settings(EASYMEMORY_MAX_ZIP_ENTRIES=10):
        job = slack(writer, many)
    assert job.status == "failed" and "too many entries" in job.error

    for name in ("../../etc/cron.d/evil", "/abs/path.json", "general/../../x.json", "C:\\windows\\x.json"):
        job = slack(writer, zip_of({"users.json": b"[]", name: b"[]"}))
        assert job.status == "failed" and "path traversal" in job.error, name

    good = slack_zip(EXPORT)
    job = slack(writer, good[: len(good) // 2])
    assert job.status == "failed" and "truncated or corrupt" in job.error
    corrupt = bytearray(good)
    corrupt[60:80] = b"\x00" * 20  # inside the first entry's compressed data
    job = slack(writer, bytes(corrupt))
    assert job.status == "failed"

    job = slack(writer, zip_of({"readme.txt": b"hi"}))
    assert job.status == "failed" and "not a Slack export" in job.error
    assert not Memory.objects.exists()
    assert not IngestedItem.objects.exists()


def test_the_export_may_sit_in_one_top_folder(writer: Persona) -> None:
    inner = zipfile.ZipFile(io.BytesIO(slack_zip(EXPORT)))
    wrapped = zip_of({f"Acme Slack export/{n}": inner.read(n) for n in inner.namelist()})
    job = slack(writer, wrapped)
    assert job.done == 3


def test_cli_import_slack(writer: Persona, tmp_path) -> None:
    from io import StringIO

    from django.core.management import call_command

    path = tmp_path / "export.zip"
    path.write_bytes(slack_zip(EXPORT))
    out = StringIO()
    call_command("import", "slack", str(path), "--tenant", "acme", stdout=out)
    assert "3 imported, 3 skipped" in out.getvalue()
    assert "bot or system message: 2" in out.getvalue()
