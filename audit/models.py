from __future__ import annotations

from django.db import models

from accounts.models import Tenant


class AuditEvent(models.Model):
    """Who did what, in which tenant, when and from where. Never the content itself."""

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
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

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="audit_tenant_created"),
            models.Index(fields=["tenant", "action"], name="audit_tenant_action"),
        ]
