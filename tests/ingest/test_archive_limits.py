"""Zip-based uploads are refused from their central directory, before an entry is inflated
(issue 13, item 3): a 300 MB entry of zeros (about 1000:1) in a Slack export or a .docx fails
its job with a clear error, stores nothing, and makes the command line exit non-zero."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from ingest.models import IngestedItem
from ingest.sources.safezip import SafeZip, UnsafeArchive
from memory.models import Memory
from tests.conftest import Persona
from tests.ingest.helpers import run, slack_zip

pytestmark = pytest.mark.django_db

BOMB_BYTES = 300_000_000


def _zeros_zip(entries: dict[str, bytes], bomb_name: str) -> bytes:
    """A zip with small `entries` and one entry of BOMB_BYTES zeros, written streaming in
    1 MB chunks (the 300 MB never sits in memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        chunk = bytes(1 << 20)
        info = zipfile.ZipInfo(bomb_name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as fh:
            written = 0
            while written < BOMB_BYTES:
                part = chunk[: BOMB_BYTES - written]
                fh.write(part)
                written += len(part)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def slack_bomb() -> bytes:
    with zipfile.ZipFile(io.BytesIO(slack_zip({"general": {"2024-03-01": []}}))) as good:
        entries = {name: good.read(name) for name in good.namelist()}
    return _zeros_zip(entries, "general/2024-03-02.json")


@pytest.fixture(scope="module")
def docx_bomb() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("a memo")
    out = io.BytesIO()
    document.save(out)
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as good:
        entries = {name: good.read(name) for name in good.namelist()}
    return _zeros_zip(entries, "word/media/zeros.bin")


@pytest.fixture
def no_inflating(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Records every zip entry opened for reading."""
    opened: list[str] = []
    original = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(name.filename if isinstance(name, zipfile.ZipInfo) else str(name))
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    yield opened


def test_the_bomb_is_what_the_issue_describes(slack_bomb: bytes) -> None:
    info = zipfile.ZipFile(io.BytesIO(slack_bomb)).getinfo("general/2024-03-02.json")
    assert info.file_size == BOMB_BYTES and info.file_size / info.compress_size > 900
    assert len(slack_bomb) < settings.EASYMEMORY_MAX_UPLOAD_BYTES


def test_an_entry_over_the_ratio_is_refused_before_any_entry_is_inflated(
    slack_bomb: bytes, no_inflating: list[str]
) -> None:
    with override_settings(EASYMEMORY_MAX_ZIP_ENTRY_BYTES=10**9, EASYMEMORY_MAX_ZIP_BYTES=10**10):
        with pytest.raises(UnsafeArchive, match=r"expands \d+:1, over the 100:1 limit"):
            SafeZip(slack_bomb)
    assert no_inflating == []


def test_an_entry_over_the_size_limit_is_refused_before_any_entry_is_inflated(
    slack_bomb: bytes, no_inflating: list[str]
) -> None:
    with override_settings(EASYMEMORY_MAX_ZIP_RATIO=10_000, EASYMEMORY_MAX_ZIP_BYTES=10**10):
        with pytest.raises(UnsafeArchive, match="over the 50000000-byte limit per entry"):
            SafeZip(slack_bomb)
    assert no_inflating == []


def test_a_slack_export_with_a_bomb_fails_its_job_and_stores_nothing(writer: Persona, slack_bomb: bytes) -> None:
    job = run(writer.principal, "slack", {}, upload=("export.zip", slack_bomb))
    assert job.status == "failed"
    assert "general/2024-03-02.json" in job.error and "limit" in job.error
    assert job.done == 0
    assert not Memory.objects.exists() and not IngestedItem.objects.exists()


def test_the_import_command_exits_non_zero_on_a_bomb(writer: Persona, slack_bomb: bytes, tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    path.write_bytes(slack_bomb)
    with pytest.raises(CommandError, match="limit"):
        call_command("import", "slack", str(path), "--tenant", writer.tenant.slug, stdout=StringIO())
    assert not Memory.objects.exists()


def test_a_docx_with_a_bomb_fails_its_job_and_stores_nothing(
    writer: Persona, docx_bomb: bytes, no_inflating: list[str]
) -> None:
    job = run(writer.principal, "file", {"filename": "memo.docx"}, upload=("memo.docx", docx_bomb))
    assert job.status == "failed"
    assert "word/media/zeros.bin" in job.error and "limit" in job.error
    assert "word/media/zeros.bin" not in no_inflating
    assert not Memory.objects.exists()


def test_an_ordinary_docx_still_imports(writer: Persona) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("The memo says hello")
    out = io.BytesIO()
    document.save(out)
    job = run(writer.principal, "file", {"filename": "memo.docx"}, upload=("memo.docx", out.getvalue()))
    assert job.status == "done" and Memory.objects.filter(content__contains="The memo says hello").exists()


def test_a_header_that_understates_the_size_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("users.json", b"[" + b" " * 1000 + b"]")
    raw = bytearray(buffer.getvalue())
    # Shrink the declared size in the local header and the central directory (stored: data is raw).
    declared = (1002).to_bytes(4, "little")
    for offset in [i for i in range(len(raw) - 3) if raw[i : i + 4] == declared]:
        raw[offset : offset + 4] = (10).to_bytes(4, "little")
    with pytest.raises(UnsafeArchive):
        SafeZip(bytes(raw))


def test_the_default_caps_fit_a_lan_server() -> None:
    assert settings.EASYMEMORY_MAX_ZIP_BYTES <= 200_000_000
    assert settings.EASYMEMORY_MAX_ZIP_ENTRY_BYTES <= 50_000_000
    assert settings.EASYMEMORY_MAX_ZIP_RATIO <= 100
