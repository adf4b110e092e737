"""Opening uploaded zip archives without trusting them: every zip-based format (Slack exports,
.docx, any later one) is opened through `SafeZip` first.

Checked from the central directory, before a byte is inflated: the number of entries, each
entry's uncompressed size (EASYMEMORY_MAX_ZIP_ENTRY_BYTES) and compression ratio
(EASYMEMORY_MAX_ZIP_RATIO, for entries over RATIO_MIN_BYTES: a zip bomb's 1000:1 entry is
refused unread), the total uncompressed size (EASYMEMORY_MAX_ZIP_BYTES) and that no entry name
is absolute or climbs out with `..`. Then every entry is read once with a limit of its declared
size (a lying header cannot inflate past it) and its CRC checked, so a truncated or corrupt
archive fails as a whole.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

from django.conf import settings


class UnsafeArchive(ValueError):
    pass


def _check_name(name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or path.is_absolute() or ".." in path.parts or ":" in (path.parts or ("",))[0]:
        raise UnsafeArchive(f"entry name {name!r} leaves the archive (path traversal)")


# Small entries may compress far better than any limit (a page of zeros); their size bounds them.
RATIO_MIN_BYTES = 1_000_000
READ_CHUNK = 1 << 20


def _check_entry(info: zipfile.ZipInfo) -> None:
    _check_name(info.filename)
    limit = settings.EASYMEMORY_MAX_ZIP_ENTRY_BYTES
    if info.file_size > limit:
        raise UnsafeArchive(
            f"entry {info.filename!r} is {info.file_size} bytes uncompressed, over the {limit}-byte limit per entry"
            " (EASYMEMORY_MAX_ZIP_ENTRY_BYTES)"
        )
    ratio = settings.EASYMEMORY_MAX_ZIP_RATIO
    if info.file_size > RATIO_MIN_BYTES and info.file_size > ratio * max(info.compress_size, 1):
        actual = info.file_size // max(info.compress_size, 1)
        raise UnsafeArchive(
            f"entry {info.filename!r} expands {actual}:1, over the {ratio}:1 limit"
            " (EASYMEMORY_MAX_ZIP_RATIO; zip bomb?)"
        )


class SafeZip:
    def __init__(self, raw: bytes) -> None:
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(raw))
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise UnsafeArchive(f"not a readable zip archive (truncated or corrupt): {exc}") from exc
        infos = self.zf.infolist()
        if len(infos) > settings.EASYMEMORY_MAX_ZIP_ENTRIES:
            raise UnsafeArchive(f"too many entries ({len(infos)}; the cap is {settings.EASYMEMORY_MAX_ZIP_ENTRIES})")
        for info in infos:
            _check_entry(info)
        total = sum(info.file_size for info in infos)
        if total > settings.EASYMEMORY_MAX_ZIP_BYTES:
            raise UnsafeArchive(
                f"uncompressed size {total} bytes is over the cap of {settings.EASYMEMORY_MAX_ZIP_BYTES}"
                " (EASYMEMORY_MAX_ZIP_BYTES; zip bomb?)"
            )
        self.infos = {info.filename: info for info in infos if not info.is_dir()}
        for info in self.infos.values():
            self._verify(info)

    def _verify(self, info: zipfile.ZipInfo) -> None:
        """Inflate the entry up to its declared size (one byte more proves a lying header);
        zipfile checks the CRC when the entry ends."""
        seen, remaining = 0, info.file_size + 1
        try:
            with self.zf.open(info) as fh:
                while remaining > 0 and (chunk := fh.read(min(READ_CHUNK, remaining))):
                    seen, remaining = seen + len(chunk), remaining - len(chunk)
            if seen > info.file_size:
                raise UnsafeArchive(f"entry {info.filename!r} is larger than its header says")
        except UnsafeArchive:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
            raise UnsafeArchive(f"the archive is truncated or corrupt ({info.filename!r}: {exc})") from exc

    def names(self) -> list[str]:
        return sorted(self.infos)

    def read(self, name: str) -> bytes:
        info = self.infos[name]
        with self.zf.open(info) as fh:
            data = fh.read(info.file_size + 1)
        if len(data) > info.file_size:
            raise UnsafeArchive(f"entry {name!r} is larger than its header says")
        return data


def archive_check(raw: bytes) -> SafeZip:
    """Check a zip-based file before any library opens it; raise UnsafeArchive naming the problem."""
    return SafeZip(raw)
