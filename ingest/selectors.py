"""Reads on import jobs."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.principal import Principal
from accounts.scoping import get_scoped_or_404, scoped
from ingest.models import IngestJob


def job_list_for(principal: Principal) -> QuerySet[IngestJob]:
    return scoped(IngestJob, principal.tenant).order_by("-created_at", "-id")


def job_get_for(principal: Principal, job_id: object) -> IngestJob:
    return get_scoped_or_404(IngestJob, principal.tenant, pk=job_id)
