from __future__ import annotations

import pytest
from django.test import override_settings

from memory.models import Memory
from memory.redaction import luhn_valid, redact_secrets
from tests.conftest import Persona, embed_pending

pytestmark = pytest.mark.django_db

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx1\nabc\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my key is sk-proj-abcdefghijklmnopqrstuvwx12 ok", "my key is [REDACTED] ok"),
        ("Authorization: Bearer eyJhbGciOi.abc123456789", "Authorization: Bearer [REDACTED]"),
        ("db_password=hunter2 and user=bob", "db_password=[REDACTED] and user=bob"),
        ('config {"api_key": "abc123xyz"}', 'config {"api_key": "[REDACTED]"}'),
        ("token: 9f8e7d6c5b", "token: [REDACTED]"),
        (f"here:\n{PEM}\nthanks", "here:\n[REDACTED PRIVATE KEY]\nthanks"),
        ("card 4111 1111 1111 1111 exp 12/29", "card [REDACTED CARD] exp 12/29"),
        ("aws AKIAIOSFODNN7EXAMPLE key", "aws [REDACTED] key"),
        ("slack xoxb-123456789012-abcdefghij", "slack [REDACTED]"),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [REDACTED]"),
    ],
)
def test_secrets_are_redacted_in_place(text: str, expected: str) -> None:
    redacted, count = redact_secrets(text)
    assert redacted == expected
    assert count >= 1
    assert redact_secrets(redacted) == (redacted, 0)  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "The tokenizer splits words; the secretary keeps the minutes.",
        "Passwordless login is on the roadmap; token budgets are tight.",
        "Order 1234 5678 9012 3456 is not a card (fails Luhn).",
        "Call 555-123-4567 or +44 20 7946 0958.",
        "The password: is required on the form.",
        "Bearer bonds are a finance topic.",
    ],
)
def test_harmless_text_passes_untouched(text: str) -> None:
    assert redact_secrets(text) == (text, 0)


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")


def post(persona: Persona, body: object):
    return persona.client().post("/v1/memories", body, format="json")


def test_writes_are_redacted_before_storage_and_the_rest_of_the_message_kept(writer: Persona) -> None:
    response = post(writer, {"content": "Deploy with password=Sup3rS3cret! then ping Bob", "kind": "message"})
    assert response.status_code == 201
    memory = Memory.objects.get(pk=response.json()["id"])
    assert memory.content == "Deploy with password=[REDACTED] then ping Bob"
    assert memory.metadata["redacted_secrets"] == 1
    assert "Sup3rS3cret" not in str(memory.search_vector)
    patched = writer.client().patch(
        f"/v1/memories/{memory.id}", {"content": "new key sk-abcdefghijklmnopqrstuvwxyz"}, format="json"
    )
    assert patched.json()["content"] == "new key [REDACTED]"


def test_smart_policy_marks_acknowledgements_ephemeral_and_turns_remember_into_notes(writer: Persona) -> None:
    turns = [
        {"content": "ok thanks!", "kind": "message"},
        {"content": "\U0001f44d", "kind": "message"},
        {"content": "I am moving to Lyon next spring with my partner", "kind": "message"},
        {"content": "Remember: my daughter's birthday is 4 June", "kind": "message"},
        {"content": "ok", "kind": "note"},
    ]
    body = post(writer, turns).json()
    assert all(item["created"] for item in body)
    kinds = {item["content"]: (item["kind"], item["metadata"].get("ephemeral", False)) for item in body}
    assert kinds == {
        "ok thanks!": ("message", True),
        "\U0001f44d": ("message", True),
        "I am moving to Lyon next spring with my partner": ("message", False),
        "my daughter's birthday is 4 June": ("note", False),
        "ok": ("note", False),
    }
    client = writer.client()
    listed = {m["content"] for m in client.get("/v1/memories").json()["results"]}
    assert "ok thanks!" not in listed and "I am moving to Lyon next spring with my partner" in listed
    everything = {m["content"] for m in client.get("/v1/memories?include_ephemeral=true").json()["results"]}
    assert "ok thanks!" in everything
    embed_pending()
    hits = client.post("/v1/search", {"query": "ok thanks", "k": 10}, format="json").json()["results"]
    assert "ok thanks!" not in {h["memory"]["content"] for h in hits}
    hits = client.post(
        "/v1/search", {"query": "ok thanks", "k": 10, "filters": {"include_ephemeral": True}}, format="json"
    ).json()["results"]
    assert "ok thanks!" in {h["memory"]["content"] for h in hits}


@pytest.mark.parametrize(
    ("policy", "stored"),
    [
        ("all", {"ok", "We ship on Friday", "remember: the door code changed"}),
        ("manual", {"the door code changed"}),
        ("off", set()),
    ],
)
def test_all_manual_and_off_policies(writer: Persona, policy: str, stored: set[str]) -> None:
    turns = [{"content": c, "kind": "message"} for c in ("ok", "We ship on Friday", "remember: the door code changed")]
    with override_settings(EASYMEMORY_MEMORY_POLICY=policy):
        response = post(writer, turns)
    assert response.status_code == (201 if stored else 200)
    assert {m.content for m in Memory.objects.all()} == stored
    declined = [item for item in response.json() if item["id"] is None]
    assert len(declined) == 3 - len(stored)
    assert all(policy in item["skipped"] for item in declined)
    note = post(writer, {"content": "a plain note", "kind": "note"})
    assert note.status_code == 201  # other kinds are never affected
