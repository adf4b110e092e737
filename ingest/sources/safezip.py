"""Opening uploaded zip archives without trusting them.

Checked before anything is imported: the archive is complete and every entry's
CRC is right (a truncated or corrupt archive fails as a whole), the number of
entries and their total uncompressed size are under the caps (zip bombs), and
no entry name is absolute or climbs out with `..`. Entries are read with a
size limit of their own, so a lying header cannot inflate past it.
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


class SafeZip:
    def __init__(self, raw: bytes) -> None:
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(raw))
        except zipfile.BadZipFile as exc:
            raise UnsafeArchive(f"not a readable zip archive (truncated or corrupt): {exc}") from exc
        infos = self.zf.infolist()
        if len(infos) > settings.EASYMEMORY_MAX_ZIP_ENTRIES:
            raise UnsafeArchive(f"too many entries ({len(infos)}; the cap is {settings.EASYMEMORY_MAX_ZIP_ENTRIES})")
        total = sum(info.file_size for info in infos)
        if total > settings.EASYMEMORY_MAX_ZIP_BYTES:
            raise UnsafeArchive(
                f"uncompressed size {total} bytes is over the cap of {settings.EASYMEMORY_MAX_ZIP_BYTES} (zip bomb?)"
            )
        for info in infos:
            _check_name(info.filename)
        self.infos = {info.filename: info for info in infos if not info.is_dir()}
        try:
            bad = self.zf.testzip()
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
            raise UnsafeArchive(f"the archive is truncated or corrupt: {exc}") from exc
        if bad is not None:
            raise UnsafeArchive(f"the archive is corrupt (bad CRC in {bad!r})")

    def names(self) -> list[str]:
        return sorted(self.infos)

    def read(self, name: str) -> bytes:
        info = self.infos[name]
        with self.zf.open(info) as fh:
            data = fh.read(info.file_size + 1)
        if len(data) > info.file_size:
            raise UnsafeArchive(f"entry {name!r} is larger than its header says")
        return data
