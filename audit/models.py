from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.models import Tenant


class AuditEvent(models.Model):
    """Who did what, in which tenant, when and from where. Never the content itself.

    Append-only: a database trigger refuses UPDATE and DELETE (migration
    0002). Each tenant's events form a hash chain (`seq`, `prev_hash`, `hash`);
    events without a tenant (failed logins, unauthenticated requests, tenant
    management) form one more chain of their own.

    `tenant` has no database constraint and DO_NOTHING on delete: deleting a
    tenant must neither cascade into nor rewrite the append-only trail, so its
    events stay, still carrying the deleted tenant's id.
    """

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    seq = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    actor_type = models.CharField(max_length=32)
    actor_id = models.CharField(max_length=200)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=200, blank=True, default="")
    outcome = models.CharField(max_length=16, default="ok")
    request_id = models.CharField(max_length=64, blank=True, default="")
    client_addr = models.CharField(max_length=64, blank=True, default="")
    user_agent = models.CharField(max_length=300, blank=True, default="")
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            # NULLS NOT DISTINCT: the tenant-less chain is one chain too.
            models.UniqueConstraint(fields=["tenant", "seq"], name="audit_tenant_seq", nulls_distinct=False),
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="audit_tenant_created"),
            models.Index(fields=["tenant", "action"], name="audit_tenant_action"),
        ]


class DenialWindow(models.Model):
    """Repeated denials of one client in one time window, counted instead of chained one by one
    (audit/denials.py). Rows live until their window has closed and been summarised."""

    key = models.CharField(max_length=64, primary_key=True)  # sha256 of who/what/where and the window
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=1)
    tenant_id = models.UUIDField(null=True, blank=True)  # no FK: like AuditEvent, outlives its tenant
    actor_type = models.CharField(max_length=32)
    actor_id = models.CharField(max_length=200, blank=True, default="")
    client_addr = models.CharField(max_length=64, blank=True, default="")
    action = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16)
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["window_start"], name="denialwindow_start")]
