"""The dashboard's cast: people (session users) with memberships, one per role, plus an outsider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from accounts.models import Tenant
from accounts.principal import Principal
from accounts.roles import Role
from tests.factories import MembershipFactory, UserFactory

PASSWORD = "pw-for-tests-123"


@dataclass
class Person:
    name: str
    user: Any
    tenant: Tenant
    role: str

    def client(self) -> Client:
        client = Client()
        client.force_login(self.user)
        return client

    @property
    def principal(self) -> Principal:
        return Principal.for_role(self.tenant, self.role, actor_type="user", actor_id=str(self.user.pk), user=self.user)


def make_person(name: str, tenant: Tenant, role: str) -> Person:
    user = UserFactory(username=name)
    user.save(update_fields=["password"])  # the factory sets the password without saving it
    MembershipFactory(user=user, tenant=tenant, role=role)
    return Person(name=name, user=user, tenant=tenant, role=role)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """These tests log in with force_login; a slow hasher would only cost time (the browser tests keep it)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(tenant: Tenant, other_tenant: Tenant) -> dict[str, Person]:
    return {
        "admin": make_person("ada", tenant, Role.ADMIN.value),
        "writer": make_person("wes", tenant, Role.WRITER.value),
        "reader": make_person("rita", tenant, Role.READER.value),
        "outsider": make_person("otto", other_tenant, Role.ADMIN.value),
    }
