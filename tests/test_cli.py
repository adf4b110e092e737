from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, Tenant
from memory.models import Memory
from tests.conftest import embed_pending

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_createtenant_and_apikey_lifecycle() -> None:
    assert "created tenant team-a" in run("createtenant", "Team A")
    secret = run("apikey", "create", "--tenant", "team-a", "--name", "laptop", "--role", "reader").strip()
    assert secret.startswith("emk_")
    listing = run("apikey", "list", "--tenant", "team-a")
    assert secret[:12] in listing and secret not in listing and "active" in listing
    assert "revoked" in run("apikey", "revoke", "--tenant", "team-a", secret[:12])
    assert ApiKey.objects.get(prefix=secret[:12]).revoked_at is not None
    with pytest.raises(CommandError, match="no tenant"):
        run("apikey", "list", "--tenant", "nope")


def test_add_search_and_reconcile_from_the_command_line() -> None:
    Tenant.objects.create(slug="default", name="Default")
    memory_id = run("add", "The staging server runs on port 8443", "--tag", "infra").strip()
    assert Memory.objects.get(pk=memory_id).tags == ["infra"]
    assert "already remembered" in run("add", "The staging server runs on port 8443", "--tag", "infra")
    assert "re-queued 1" in run("reconcile")
    embed_pending()
    assert "re-queued 0" in run("reconcile")
    output = run("search", "which port does staging use")
    assert memory_id in output
    with pytest.raises(CommandError, match="content"):
        run("add", "   ")


def test_the_earlier_spelling_of_a_sub_command_still_names_a_command() -> None:
    from django.core.management import get_commands

    from config.cli import _ALIASES

    commands = get_commands()
    for old, new in _ALIASES.items():
        assert "-" in old and new in commands
    assert "add-file" not in commands  # module names hold no hyphen
