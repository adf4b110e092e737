"""First run of `easymemory serve`: a default tenant, an admin user and an API key."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TextIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.models import Tenant
from accounts.roles import Role
from accounts.services import api_key_create, membership_set, tenant_create

CREDENTIALS_FILE = "first-run-credentials.txt"


def bootstrap_first_run(*, stdout: TextIO, base_url: str) -> bool:
    """Create the defaults when the database has no tenant yet. Returns True when it did."""
    with transaction.atomic():
        if Tenant.objects.exists():
            return False
        tenant = tenant_create(name="Default", slug="default")
        password = secrets.token_urlsafe(12)
        user = get_user_model().objects.create_superuser(username="admin", email="", password=password)
        membership_set(tenant=tenant, user=user, role=Role.ADMIN)
        created = api_key_create(tenant=tenant, name="default", role=Role.ADMIN, created_by=user)
    text = (
        "First run: created tenant 'default', user 'admin' and an admin API key.\n"
        f"  dashboard login : admin / {password}\n"
        f"  API key         : {created.secret}\n"
        "These secrets are shown once (and kept, readable only by you, in "
        f"{settings.EASYMEMORY_DATA_DIR / CREDENTIALS_FILE}).\n"
        "Try:\n"
        f"  curl -s -H 'Authorization: Bearer {created.secret}' -H 'Content-Type: application/json' \\\n"
        f'       -d \'{{"content": "I prefer tea over coffee"}}\' {base_url}/v1/memories\n'
        f"  curl -s -H 'Authorization: Bearer {created.secret}' -H 'Content-Type: application/json' \\\n"
        f'       -d \'{{"query": "what do I drink?"}}\' {base_url}/v1/search\n'
    )
    path = settings.EASYMEMORY_DATA_DIR / CREDENTIALS_FILE
    credentials_write(path, text)
    if settings.TEAM_MODE:
        # A team server's output ends up in shared logs (journald, docker logs): secrets stay in the file.
        stdout.write(
            "First run: created tenant 'default', user 'admin' and an admin API key.\n"
            f"Their secrets are in {path} (readable only by the server's user); read them, then delete the file.\n"
        )
    else:
        stdout.write(text)
    stdout.flush()
    return True


def credentials_write(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read: created 0600, and set to 0600 if it existed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)
