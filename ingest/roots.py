"""Which server directories each tenant may import from.

A tenant imports server-side files (REST /v1/index, MCP memory_index_path and
memory_add_file with `path`, the dashboard) only below its own import roots.
A tenant admin may add roots inside the operator's EASYMEMORY_IMPORT_ROOTS; the
operator may add any directory from the command line. Roots of two tenants never
overlap, so no tenant can reach a directory another tenant imports from. A job
re-checks its path when it runs; only jobs the local command line starts are
trusted without a check.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from accounts.models import Tenant
from accounts.principal import Principal
from accounts.scoping import scoped
from audit.services import audit_record
from core.errors import InvalidInput
from ingest.models import ImportRoot


class PathRefused(PermissionError):
    """A server-side path outside the tenant's import roots (or a symlink leaving one)."""


def _resolved(path: str, field: str = "path") -> Path:
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise InvalidInput(field, "a non-empty path without NUL characters is required")
    given = Path(path).expanduser()
    if not given.is_absolute():
        raise InvalidInput(field, "the path must be absolute")
    try:
        return given.resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise InvalidInput(field, "the path cannot be resolved") from exc


def is_directory(path: Path) -> bool:
    """Path.is_dir() that answers False instead of raising for a name too long, a permission error…"""
    try:
        return path.is_dir()
    except OSError:
        return False


def _within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def import_roots_for(tenant: Tenant) -> list[Path]:
    return [Path(p) for p in scoped(ImportRoot, tenant).order_by("path").values_list("path", flat=True)]


def import_path_check(*, tenant: Tenant, path: str) -> Path:
    """The resolved path if it lies inside one of `tenant`'s roots; PathRefused otherwise.

    The refusal reads the same whether the path is nowhere or under another tenant's root.
    """
    resolved = _resolved(path)
    roots = import_roots_for(tenant)
    if not roots:
        raise PathRefused("server-side importing is off for this tenant: a tenant admin sets its import roots")
    if not any(_within(resolved, root) for root in roots):
        raise PathRefused("the path is outside this tenant's import roots")
    return resolved


def import_root_add(*, principal: Principal, path: str, operator: bool = False) -> ImportRoot:
    """Add a root to the principal's tenant. A tenant admin stays inside EASYMEMORY_IMPORT_ROOTS;
    `operator` (the local command line) may name any existing directory."""
    resolved = _resolved(path)
    if not operator:
        allowed = [Path(p) for p in settings.EASYMEMORY_IMPORT_ROOTS]
        if not allowed:
            raise PathRefused("the operator allows no import roots (EASYMEMORY_IMPORT_ROOTS is empty)")
        if not any(_within(resolved, root) for root in allowed):
            raise PathRefused("the path is outside the directories the operator allows (EASYMEMORY_IMPORT_ROOTS)")
    if not is_directory(resolved):
        raise InvalidInput("path", "not a directory")
    with transaction.atomic():
        # Serialise root changes so two concurrent adds cannot both pass the overlap check.
        with connection.cursor() as cursor:
            # unscoped: a table lock, no row is read
            cursor.execute(f"LOCK TABLE {ImportRoot._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        # unscoped: the overlap check must see every tenant's roots; none of them is returned.
        others = ImportRoot.objects.exclude(tenant=principal.tenant)  # unscoped: see above
        taken = others.values_list("path", flat=True)
        if any(_within(resolved, Path(p)) or _within(Path(p), resolved) for p in taken):
            raise PathRefused("the directory overlaps an import root that is already assigned")
        if scoped(ImportRoot, principal.tenant).filter(path=str(resolved)).exists():
            raise InvalidInput("path", "this tenant already has this import root")
        root = ImportRoot.objects.create(tenant=principal.tenant, path=str(resolved), created_by=principal.actor)
        audit_record(principal=principal, action="import_root.add", target_type="import_root", target_id=str(root.pk))
    return root


@transaction.atomic
def import_root_remove(*, principal: Principal, root: ImportRoot) -> None:
    root_id = root.pk
    scoped(ImportRoot, principal.tenant).filter(pk=root_id).delete()
    audit_record(principal=principal, action="import_root.remove", target_type="import_root", target_id=str(root_id))
