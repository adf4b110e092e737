from __future__ import annotations

import re
import tarfile
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from memory.models import Memory
from memory.services import MemoryInput, memory_create
from tests.conftest import Persona


def test_backup_and_restore_round_trip(transactional_db: object, writer: Persona, tmp_path: Path) -> None:
    memory_create(principal=writer.principal, data=MemoryInput(content="kept through the backup"))
    archive = tmp_path / "easymemory.tar"
    out, err = StringIO(), StringIO()
    call_command("backup", "--out", str(archive), stdout=out, stderr=err)
    assert "backup written" in out.getvalue()
    # Not a terminal: one line, every table dumped and every data file archived counted.
    tables = int(re.fullmatch(r"backup: (\d+) items in [\d.]+ s, [\d.]+ items/s\n", err.getvalue()).group(1))
    assert tables > 20
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert {"manifest.json", "database.dump", "files/secret_key"} <= set(names)
    assert not any(name.startswith("files/pg/") for name in names)

    Memory.objects.all().delete()
    memory_create(principal=writer.principal, data=MemoryInput(content="written after the backup"))
    key_file = Path(settings.EASYMEMORY_DATA_DIR) / "secret_key"
    original_key = key_file.read_bytes()
    key_file.write_bytes(b"changed")
    restored = StringIO()
    try:
        call_command("restore", str(archive), stdout=StringIO(), stderr=restored)
    finally:
        restored_key = key_file.read_bytes()
        key_file.write_bytes(original_key)
    assert restored_key == original_key
    assert restored.getvalue().startswith(f"restore: {tables} items in ")  # the same tables and files came back
    assert list(Memory.objects.values_list("content", flat=True)) == ["kept through the backup"]


def test_restore_refuses_what_is_not_a_backup(transactional_db: object, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar"
    bogus.write_bytes(b"not a tar at all")
    with pytest.raises(CommandError, match="not a backup"):
        call_command("restore", str(bogus), stdout=StringIO())
    with pytest.raises(CommandError, match="no such file"):
        call_command("restore", str(tmp_path / "missing.tar"), stdout=StringIO())
