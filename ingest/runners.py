"""One runner per job kind: read the source, turn it into items, store them (ingest.services)."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from accounts.principal import Principal
from accounts.scoping import scoped
from core.errors import InvalidInput
from graph.services import graph_import
from ingest.items import SourceError, SourceItem
from ingest.models import IndexedFile, IngestJob
from ingest.portability import FORMAT, GRAPH_TYPES, export_file_read, exported_memory_parse, mem0_item, mem0_records
from ingest.roots import PathRefused, import_path_check
from ingest.sources.files import UnsupportedFile, extension_of, extract_text
from ingest.sources.markdown import NotText, decode_text, parse_note, split_text
from ingest.writes import GROUP_MEMORIES, JobRun, create_all, delete_memories, store_items, upload_bytes
from memory.services import MemoryInput, RestoredMemory, memory_restore_many

HIDDEN_DIRS = {".git", ".obsidian", ".trash", "node_modules", "__pycache__"}


# --- markdown vault --------------------------------------------------------------------------


@dataclass
class VaultFile:
    rel: str
    path: Path


def walk_vault(root: Path, pattern: str, recursive: bool) -> Iterator[VaultFile]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in HIDDEN_DIRS and not d.startswith("."))
        if not recursive:
            dirnames[:] = []
        for name in sorted(filenames):
            if fnmatch.fnmatch(name, pattern):
                path = Path(dirpath) / name
                yield VaultFile(rel=path.relative_to(root).as_posix(), path=path)


def _in_scope(rel: str, pattern: str, recursive: bool) -> bool:
    return fnmatch.fnmatch(rel.rsplit("/", 1)[-1], pattern) and (recursive or "/" not in rel)


@dataclass
class _Pending:
    file: VaultFile
    size: int
    mtime_ns: int
    sha: str
    inputs: list[MemoryInput]
    previous: IndexedFile | None


def run_vault(principal: Principal, job: IngestJob, run: JobRun) -> None:
    root = Path(job.params["path"]).resolve()
    pattern = job.params.get("pattern") or "*.md"
    recursive = bool(job.params.get("recursive", True))
    if not job.params.get("trusted"):
        # Checked again when the job runs: the tenant's roots may have changed since it was queued.
        try:
            root = import_path_check(tenant=principal.tenant, path=str(root))
        except (PathRefused, InvalidInput) as exc:
            raise SourceError(str(exc)) from exc
    if not root.is_dir():
        raise SourceError(f"{root} is not a directory")
    files = list(walk_vault(root, pattern, recursive))
    job.total = len(files)
    run.tick(force=True)
    known = {row.rel_path: row for row in scoped(IndexedFile, principal.tenant).filter(root=str(root))}
    cap, overlap = settings.EASYMEMORY_CHUNK_CHARS, settings.EASYMEMORY_CHUNK_OVERLAP
    limit = settings.EASYMEMORY_MAX_UPLOAD_BYTES
    pending: list[_Pending] = []
    seen: set[str] = set()
    for file in files:
        seen.add(file.rel)
        previous = known.get(file.rel)
        try:
            real = file.path.resolve()
            if not real.is_relative_to(root):
                run.fail(file.rel, "a symlink that leaves the indexed directory; not followed")
                continue
            stat = real.stat()
        except OSError as exc:
            run.fail(file.rel, f"cannot read: {exc.strerror}")
            continue
        if previous is not None and previous.size == stat.st_size and previous.mtime_ns == stat.st_mtime_ns:
            run.skip("unchanged")
            continue
        if stat.st_size > limit:
            run.fail(file.rel, f"file is over the {limit}-byte limit")
            continue
        if stat.st_size == 0:
            _forget_file(principal, job, run, root, file.rel, previous)
            run.skip("empty file")
            continue
        try:
            raw = real.read_bytes()
        except OSError as exc:
            run.fail(file.rel, f"cannot read: {exc.strerror}")
            continue
        sha = hashlib.sha256(raw).hexdigest()
        if previous is not None and previous.sha256 == sha:
            scoped(IndexedFile, principal.tenant).filter(pk=previous.pk).update(
                size=stat.st_size, mtime_ns=stat.st_mtime_ns
            )
            run.skip("unchanged")
            continue
        try:
            note = parse_note(decode_text(raw), real.stem, cap, overlap)
        except NotText as exc:
            run.fail(file.rel, f"not a text file: {exc}")
            continue
        if note.frontmatter_error:
            job.stats["frontmatter errors"] = job.stats.get("frontmatter errors", 0) + 1
        inputs = [
            MemoryInput(
                content=chunk.content,
                kind="note",
                tags=note.tags,
                metadata={
                    "source": "vault",
                    "source_key": f"vault:{file.rel}#{chunk.index}",
                    "root": str(root),
                    "path": file.rel,
                    "title": note.title,
                    "heading": chunk.heading_trail,
                    "chunk": chunk.index,
                    "frontmatter": note.frontmatter,
                    "links": note.links,
                },
            )
            for chunk in note.chunks
        ]
        pending.append(_Pending(file, stat.st_size, stat.st_mtime_ns, sha, inputs, previous))
        if sum(len(p.inputs) for p in pending) >= GROUP_MEMORIES:
            _store_files(principal, job, run, root, pending)
            pending = []
    if pending:
        _store_files(principal, job, run, root, pending)
    for rel, previous in known.items():
        if rel not in seen and _in_scope(rel, pattern, recursive):
            _forget_file(principal, job, run, root, rel, previous)
            job.stats["deleted files"] = job.stats.get("deleted files", 0) + 1
    run.tick(force=True)


def _unshared(principal: Principal, ids: Sequence[object], keep_row: int | None) -> list[object]:
    """Memory ids no other indexed file still points to (equal chunks are one memory)."""
    others = scoped(IndexedFile, principal.tenant).filter(memory_ids__overlap=ids)
    if keep_row is not None:
        others = others.exclude(pk=keep_row)
    shared = {mid for row in others.values_list("memory_ids", flat=True) for mid in row}
    return [mid for mid in ids if mid not in shared]


def _forget_file(
    principal: Principal, job: IngestJob, run: JobRun, root: Path, rel: str, previous: IndexedFile | None
) -> None:
    if previous is None:
        return
    with transaction.atomic():
        ids = _unshared(principal, list(previous.memory_ids), previous.pk)
        job.memories_deleted += delete_memories(principal, ids)
        scoped(IndexedFile, principal.tenant).filter(pk=previous.pk).delete()


def _store_files(principal: Principal, job: IngestJob, run: JobRun, root: Path, pending: list[_Pending]) -> None:
    """Store a group of changed/new files in one transaction: new chunks in, stale chunks out."""
    try:
        with transaction.atomic():
            created = _store_files_atomic(principal, job, root, pending)
        for count in created:
            run.ok(count)
    except InvalidInput:
        for item in pending:
            try:
                with transaction.atomic():
                    count = _store_files_atomic(principal, job, root, [item])[0]
                run.ok(count)
            except InvalidInput as exc:
                run.fail(item.file.rel, str(exc))


def _store_files_atomic(principal: Principal, job: IngestJob, root: Path, pending: list[_Pending]) -> list[int]:
    results = create_all(principal, [data for item in pending for data in item.inputs])
    counts: list[int] = []
    rows: list[IndexedFile] = []
    offset = 0
    for item in pending:
        mine = results[offset : offset + len(item.inputs)]
        offset += len(item.inputs)
        ids = list(dict.fromkeys(m.id for m, _ in mine))
        counts.append(sum(1 for _, created in mine if created))
        if item.previous is not None:
            stale = [mid for mid in item.previous.memory_ids if mid not in set(ids)]
            job.memories_deleted += delete_memories(principal, _unshared(principal, stale, item.previous.pk))
        rows.append(
            IndexedFile(
                tenant=principal.tenant, root=str(root), rel_path=item.file.rel, size=item.size,
                mtime_ns=item.mtime_ns, sha256=item.sha, memory_ids=ids,
            )
        )  # fmt: skip
    # The group's files in one upsert (a row per path: new files inserted, changed ones updated).
    IndexedFile.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["tenant", "root", "rel_path"],
        update_fields=["size", "mtime_ns", "sha256", "memory_ids", "indexed_at"],
    )
    return counts


# --- uploaded sources -------------------------------------------------------------------------


def run_file(principal: Principal, job: IngestJob, run: JobRun) -> None:
    name, raw = upload_bytes(job)
    job.total = 1
    try:
        text = extract_text(name, raw)
    except (UnsupportedFile, NotText) as exc:
        raise SourceError(f"{name}: {exc}") from exc
    if not text.strip():
        raise SourceError(f"{name}: no text found in the file")
    cap, overlap = settings.EASYMEMORY_CHUNK_CHARS, settings.EASYMEMORY_CHUNK_OVERLAP
    sha = hashlib.sha256(raw).hexdigest()
    base = {"source": "file", "filename": name, "sha256": sha}
    if extension_of(name) in (".md", ".markdown"):
        note = parse_note(text, Path(name).stem, cap, overlap)
        pieces = [(c.content, {"heading": c.heading_trail, "links": note.links}) for c in note.chunks]
        tags = note.tags
    else:
        title = Path(name).name
        pieces = [(f"{title}\n\n{p}", {}) for p in split_text(text.strip(), cap - len(title) - 2, overlap)]
        tags = []
    inputs = [
        MemoryInput(
            content=content,
            kind="document",
            tags=tags,
            metadata={**base, **extra, "chunk": index, "source_key": f"file:{sha}#{index}"},
        )
        for index, (content, extra) in enumerate(pieces)
    ]
    store_items(principal, job, run, [SourceItem(key=f"file:{sha}", label=name, inputs=inputs)])


def run_slack(principal: Principal, job: IngestJob, run: JobRun) -> None:
    from ingest.sources.safezip import SafeZip, UnsafeArchive
    from ingest.sources.slack import slack_items

    name, raw = upload_bytes(job)
    try:
        archive = SafeZip(raw)
        items = slack_items(archive)
        first = next(items, None)
    except (UnsafeArchive, ValueError) as exc:
        raise SourceError(f"{name}: {exc}") from exc
    if first is None:
        return

    def all_items() -> Iterator[SourceItem]:
        yield first
        yield from items

    store_items(principal, job, run, all_items())


def run_mbox(principal: Principal, job: IngestJob, run: JobRun) -> None:
    from ingest.sources.mbox import mbox_items

    name, raw = upload_bytes(job)
    if not raw.strip():
        raise SourceError(f"{name}: the mailbox is empty")
    if not raw.lstrip().startswith(b"From "):
        raise SourceError(f"{name}: not an mbox file (it must start with a 'From ' line)")
    cap, overlap = settings.EASYMEMORY_CHUNK_CHARS, settings.EASYMEMORY_CHUNK_OVERLAP
    # mailbox needs a file; a private temporary copy lives only while the job runs.
    with tempfile.TemporaryDirectory(prefix="easymemory-mbox-") as tmp:
        path = Path(tmp) / "mailbox.mbox"
        path.write_bytes(raw)
        store_items(principal, job, run, mbox_items(path, cap, overlap))


def run_json(principal: Principal, job: IngestJob, run: JobRun) -> None:
    name, raw = upload_bytes(job)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{name}: not valid UTF-8 (byte {exc.start})") from exc
    if not text.strip():
        raise SourceError(f"{name}: the file is empty")
    first_line = text.lstrip().split("\n", 1)[0]
    try:
        header = json.loads(first_line)
    except ValueError:
        header = None
    if isinstance(header, dict) and header.get("type") == "header" and header.get("format") == FORMAT:
        _import_export(principal, job, run, text)
        return
    try:
        records = mem0_records(text)
    except ValueError as exc:
        raise SourceError(f"{name}: invalid JSON: {exc}") from exc
    job.total = len(records)
    store_items(principal, job, run, (mem0_item(record, index) for index, record in enumerate(records)))


def _import_export(principal: Principal, job: IngestJob, run: JobRun, text: str) -> None:
    """Restore an EasyMemory export through memory_restore_many, GROUP_MEMORIES at a time; a
    group with an invalid record is retried one by one, so only that record fails."""
    lines = text.splitlines()
    try:
        exported = export_file_read(lines)
    except InvalidInput as exc:
        # An inconsistent graph section refuses the whole file before anything is stored.
        raise SourceError(f"{exc.field}: {exc.message}") from exc
    job.total = max(0, sum(1 for line in lines if line.strip()) - 1 - exported.graph_lines)
    memory_map: dict[uuid.UUID, uuid.UUID] = {}  # the file's memory ids -> this tenant's
    group: list[tuple[str, RestoredMemory]] = []

    def store(todo: list[tuple[str, RestoredMemory]]) -> None:
        try:
            # The job runs as the tenant's system principal; history names who started it.
            items = [item for _, item in todo]
            results = memory_restore_many(principal=principal, items=items, actor=job.actor or None)
        except InvalidInput:
            if len(todo) == 1:
                raise
            for one in todo:
                try:
                    store([one])
                except InvalidInput as exc:
                    run.fail(one[0], f"{exc.field}: {exc.message}")
            return
        for (_, item), result in zip(todo, results, strict=True):
            if result.memory is not None:
                memory_map[item.id] = result.memory.id
            if result.created:
                run.ok(1)
            else:
                run.skip("already imported")

    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            run.fail(f"line {number}", f"invalid JSON: {exc}")
            continue
        kind = record.get("type")
        if kind in GRAPH_TYPES and exported.version >= 2:
            continue  # read by export_file_read, stored after the memories
        if kind != "memory":
            run.skip(f"record type {str(kind)[:64]!r} not importable here")
            continue
        try:
            group.append((f"line {number}", exported_memory_parse(record)))
        except InvalidInput as exc:
            run.fail(f"line {number}", f"{exc.field}: {exc.message}")
            continue
        if len(group) >= GROUP_MEMORIES:
            _store_restored(store, run, group)
            group = []
    if group:
        _store_restored(store, run, group)
    if len(exported.graph) and not job.params.get("graph", True):
        job.stats["graph records not imported (no graph:write)"] = len(exported.graph)
    elif len(exported.graph):
        outcome = graph_import(principal=principal, section=exported.graph, memory_map=memory_map)
        for name in ("entities_created", "entities_merged", "relations_created", "relations_merged", "mentions"):
            job.stats[f"graph {name.replace('_', ' ')}"] = getattr(outcome, name)
        if outcome.dropped:
            job.stats["graph references to memories not imported"] = outcome.dropped
    run.tick(force=True)


def _store_restored(
    store: Callable[[list[tuple[str, RestoredMemory]]], None], run: JobRun, group: list[tuple[str, RestoredMemory]]
) -> None:
    try:
        store(group)
    except InvalidInput as exc:  # a group of one that was refused
        run.fail(group[0][0], f"{exc.field}: {exc.message}")


RUNNERS: dict[str, Callable[[Principal, IngestJob, JobRun], None]] = {
    "vault": run_vault,
    "file": run_file,
    "slack": run_slack,
    "mbox": run_mbox,
    "json": run_json,
}
