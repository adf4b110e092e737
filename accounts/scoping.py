"""The one tenancy helper: every query on tenant-owned data goes through here.

A lookup of another tenant's object behaves exactly like a lookup of a missing
one (404), so ids reveal nothing across tenants.
"""

from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db import models
from django.http import Http404

from accounts.models import Tenant

M = TypeVar("M", bound=models.Model)


def scoped(model_or_qs: type[M] | models.QuerySet[M], tenant: Tenant) -> models.QuerySet[M]:
    """Rows of `model_or_qs` that belong to `tenant`."""
    qs = model_or_qs if isinstance(model_or_qs, models.QuerySet) else model_or_qs._default_manager.all()
    return qs.filter(tenant=tenant)


def get_scoped_or_404(model_or_qs: type[M] | models.QuerySet[M], tenant: Tenant, **lookup: object) -> M:
    try:
        return scoped(model_or_qs, tenant).get(**lookup)
    except (models.ObjectDoesNotExist, ValidationError, ValueError, TypeError) as exc:
        # ValueError/TypeError: a malformed id is just as "not found" as a foreign one.
        raise Http404("not found") from exc
