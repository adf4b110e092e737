"""The graph list's first step: entities named in the query, by key or alias, in the tenant only."""

from __future__ import annotations

from typing import Any

import pytest

from graph.models import Entity
from graph.selectors import _seed_entities, query_ngrams

pytestmark = pytest.mark.django_db


def test_it_finds_entities_by_key_and_by_alias_in_the_tenant_alone(tenant: Any, other_tenant: Any) -> None:
    by_key = Entity.objects.create(tenant=tenant, name="Marco Rossi", key="marco rossi")
    by_alias = Entity.objects.create(tenant=tenant, name="Siemens AG", key="siemens ag", alias_keys=["siemens"])
    Entity.objects.create(tenant=tenant, name="Acme", key="acme")
    Entity.objects.create(tenant=other_tenant, name="Marco Rossi", key="marco rossi", alias_keys=["siemens"])
    grams = query_ngrams("Does Marco Rossi still work at Siemens?")
    assert sorted(_seed_entities(tenant, grams)) == sorted([by_key.pk, by_alias.pk])
    assert _seed_entities(tenant, ["nobody"]) == []
