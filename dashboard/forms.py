"""Dashboard forms: they parse browser input; the services still do all validation of substance."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta
from typing import Any, cast

from django import forms
from django.conf import settings
from django.forms.fields import InvalidJSONInput
from django.utils import timezone

from accounts.roles import ROLE_CHOICES
from core.inputs import json_problem, printable
from memory.models import EnrichmentState, Kind
from memory.search import MAX_K
from memory.selectors import MemoryFilters
from memory.services import MemoryInput

KIND_CHOICES = [("", "Any kind"), *Kind.choices]
STATE_CHOICES = [("", "Any state"), *EnrichmentState.choices]


def split_tags(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class FilterForm(forms.Form):
    """Filters shared by the search and memory list pages (all optional, all in the query string)."""

    kind = forms.ChoiceField(choices=KIND_CHOICES, required=False)
    tags = forms.CharField(required=False, max_length=500, help_text="comma-separated; any of them")
    user_ref = forms.CharField(required=False, max_length=200, label="End user")
    agent_id = forms.CharField(required=False, max_length=200, label="Agent")
    session_id = forms.CharField(required=False, max_length=200, label="Session")
    created_after = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    created_before = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def to_filters(self) -> MemoryFilters:
        data = self.cleaned_data

        def day_start(day: Any) -> datetime | None:
            return timezone.make_aware(datetime.combine(day, time.min)) if day else None

        before = data.get("created_before")
        return MemoryFilters(
            kinds=[data["kind"]] if data.get("kind") else [],
            tags_any=split_tags(data.get("tags") or ""),
            user_ref=data.get("user_ref") or None,
            agent_id=data.get("agent_id") or None,
            session_id=data.get("session_id") or None,
            created_after=day_start(data.get("created_after")),
            # "before" is inclusive of the chosen day, as people read a date range.
            created_before=day_start(before + timedelta(days=1)) if before else None,
        )

    # Fields that narrow the result set; the query text and the result count are not filters.
    NOT_FILTERS = frozenset({"q", "k"})

    def active_count(self) -> int:
        if not self.is_bound or not hasattr(self, "cleaned_data"):
            return 0
        return sum(1 for name in self.fields if name not in self.NOT_FILTERS and self.cleaned_data.get(name))


class SearchForm(FilterForm):
    q = forms.CharField(required=False, max_length=1000, label="Query")
    k = forms.IntegerField(required=False, min_value=1, max_value=MAX_K, initial=10, label="Results")
    as_of = forms.DateField(
        required=False,
        label="As of",
        help_text="what had happened by the end of this day, and the graph as it was then",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def to_filters(self) -> MemoryFilters:
        day = self.cleaned_data.get("as_of")
        end_of_day = timezone.make_aware(datetime.combine(day, time.max)) if day else None
        return replace(super().to_filters(), as_of=end_of_day)


class MemoryListForm(FilterForm):
    state = forms.ChoiceField(choices=STATE_CHOICES, required=False, label="Enrichment")


class BoundedJSONField(forms.JSONField):
    """JSON text whose decoding cannot end in a RecursionError (thousands of nested brackets) and
    whose values the database can store; the memory services then apply the metadata bounds."""

    def to_python(self, value: Any) -> Any:
        try:
            parsed = super().to_python(value)
        except RecursionError as exc:
            raise forms.ValidationError("metadata is nested too deeply") from exc
        problem = json_problem(parsed, max_depth=settings.EASYMEMORY_MAX_METADATA_DEPTH)
        if problem is not None:
            raise forms.ValidationError(f"metadata{'.' + problem[0] if problem[0] else ''} {problem[1]}")
        return parsed

    def bound_data(self, data: Any, initial: Any) -> Any:
        # Re-shown in the form as typed: never decoded again, and never with a lone surrogate.
        if isinstance(data, str):
            return InvalidJSONInput(printable(data))
        return super().bound_data(data, initial)


class MemoryForm(forms.Form):
    content = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "autofocus": True}), strip=False)
    kind = forms.ChoiceField(choices=Kind.choices, initial=Kind.NOTE.value)
    tags = forms.CharField(required=False, max_length=5000, help_text="comma-separated")
    importance = forms.FloatField(min_value=0.0, max_value=1.0, initial=0.5, widget=forms.NumberInput({"step": "0.05"}))
    user_ref = forms.CharField(required=False, max_length=200, label="End user")
    agent_id = forms.CharField(required=False, max_length=200, label="Agent")
    session_id = forms.CharField(required=False, max_length=200, label="Session")
    occurred_at = forms.DateTimeField(
        required=False, label="Occurred at", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    metadata = BoundedJSONField(required=False, initial=dict, widget=forms.Textarea(attrs={"rows": 3}))

    # Scope fields identify a memory's owner; the service does not let them change.
    SCOPE_FIELDS = ("user_ref", "agent_id", "session_id")

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if editing:
            for name in self.SCOPE_FIELDS:
                self.fields[name].disabled = True

    def clean_metadata(self) -> dict[str, Any]:
        value = self.cleaned_data.get("metadata")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("metadata must be a JSON object")
        return value

    def to_input(self) -> MemoryInput:
        data = self.cleaned_data
        return MemoryInput(
            content=data["content"],
            kind=data["kind"],
            tags=split_tags(data.get("tags") or ""),
            importance=data["importance"],
            user_ref=data.get("user_ref") or "",
            agent_id=data.get("agent_id") or "",
            session_id=data.get("session_id") or "",
            occurred_at=data.get("occurred_at"),
            metadata=data["metadata"],
        )

    def to_changes(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "content": data["content"],
            "kind": data["kind"],
            "tags": split_tags(data.get("tags") or ""),
            "importance": data["importance"],
            "occurred_at": data.get("occurred_at"),
            "metadata": data["metadata"],
        }


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=200)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="writer")
    expires_in_days = forms.IntegerField(required=False, min_value=1, max_value=3650, label="Expires after (days)")


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="reader")


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class TenantSwitchForm(forms.Form):
    tenant = forms.UUIDField()
    next = forms.CharField(required=False, max_length=2000)


class TenantCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=64, required=False, help_text="from the name when empty")


class EntitySearchForm(forms.Form):
    q = forms.CharField(
        required=False, max_length=300, widget=forms.TextInput({"type": "search", "placeholder": "Find an entity…"})
    )
    type = forms.ChoiceField(required=False, choices=[("", "Any type")])

    def __init__(self, *args: Any, types: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["type"]).choices = [("", "Any type"), *((t, t) for t in (types or []))]


UPLOAD_KINDS = [
    ("file", "Document (.md, .txt, .pdf, .docx, .html)"),
    ("slack", "Slack export (.zip)"),
    ("mbox", "Mailbox (mbox)"),
    ("json", "JSON (EasyMemory / Mem0 export)"),
]


class UploadForm(forms.Form):
    kind = forms.ChoiceField(choices=UPLOAD_KINDS, label="What is it")
    file = forms.FileField()


class IndexPathForm(forms.Form):
    path = forms.CharField(max_length=1000, label="Directory on the server")
    pattern = forms.CharField(max_length=200, initial="*.md")
    recursive = forms.BooleanField(required=False, initial=True, label="Include sub-directories")


class OAuthAppForm(forms.Form):
    name = forms.CharField(max_length=255)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="reader")


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False, max_length=64, help_text='e.g. memory.create or "memory.*"')
    actor_type = forms.ChoiceField(
        required=False,
        choices=[("", "Anyone"), ("user", "user"), ("api_key", "API key"), ("oauth_app", "OAuth app"),
                 ("system", "system")],  # fmt: skip
    )
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome"), ("ok", "ok"), ("denied", "denied"),
                                                         ("error", "error")])  # fmt: skip
    target_id = forms.CharField(required=False, max_length=200, label="Target id")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class RateLimitForm(forms.Form):
    """An API key's or OAuth application's own rate limit; empty: the installation's default."""

    rate_limit_per_min = forms.IntegerField(required=False, min_value=1, max_value=6_000_000, label="per minute")
    rate_limit_burst = forms.IntegerField(required=False, min_value=1, max_value=1_000_000, label="burst")
# --- issue 19: invitations, accounts, tenants, bulk actions, graph controls ---------------


class InvitationForm(forms.Form):
    email = forms.EmailField(required=False, help_text="optional: the link is mailed when a mail server is set up")
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="reader")
    expires_in_days = forms.IntegerField(min_value=1, max_value=30, initial=7, label="Expires after (days)")


class SignUpForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput({"autocomplete": "username"}))
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput({"autocomplete": "new-password"}), max_length=512)
    password_again = forms.CharField(
        widget=forms.PasswordInput({"autocomplete": "new-password"}), max_length=512, label="Password (again)"
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password") and data.get("password") != data.get("password_again"):
            self.add_error("password_again", "the two passwords differ")
        return data


class PasswordChangeForm(forms.Form):
    old_password = forms.CharField(
        widget=forms.PasswordInput({"autocomplete": "current-password"}), max_length=512, label="Current password"
    )
    new_password = forms.CharField(
        widget=forms.PasswordInput({"autocomplete": "new-password"}), max_length=512, label="New password"
    )
    new_password_again = forms.CharField(
        widget=forms.PasswordInput({"autocomplete": "new-password"}), max_length=512, label="New password (again)"
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("new_password") and data.get("new_password") != data.get("new_password_again"):
            self.add_error("new_password_again", "the two passwords differ")
        return data


class AccountCreateForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)


class AccountMembershipForm(forms.Form):
    tenant = forms.UUIDField()
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class TenantRenameForm(forms.Form):
    name = forms.CharField(max_length=200)


class TenantDeleteForm(forms.Form):
    confirm = forms.CharField(max_length=64, label="Type the tenant's slug to confirm")


BULK_ACTIONS = [
    ("delete", "Delete"),
    ("tags_add", "Add tags"),
    ("tags_remove", "Remove tags"),
    ("rescope", "Move to scope"),
    ("export", "Export"),
]


class BulkForm(forms.Form):
    """A bulk action over checked ids, or over everything the list's filters match (`all`)."""

    action = forms.ChoiceField(choices=BULK_ACTIONS)
    all = forms.BooleanField(required=False, label="All matching this filter")
    tags = forms.CharField(required=False, max_length=5000)
    user_ref = forms.CharField(required=False, max_length=200, strip=False)
    agent_id = forms.CharField(required=False, max_length=200, strip=False)
    session_id = forms.CharField(required=False, max_length=200, strip=False)
    filters = forms.CharField(required=False, max_length=4000)  # the list's query string
    confirmed = forms.BooleanField(required=False)
    next = forms.CharField(required=False, max_length=2000)

    def params(self) -> dict[str, Any]:
        data = self.cleaned_data
        if data["action"] in ("tags_add", "tags_remove"):
            return {"tags": split_tags(data.get("tags") or "")}
        if data["action"] == "rescope":
            # An empty box leaves that field as it is; "-" clears it.
            scope = {name: data.get(name) or "" for name in ("user_ref", "agent_id", "session_id")}
            return {name: ("" if value == "-" else value) for name, value in scope.items() if value}
        return {}


class GraphControlsForm(forms.Form):
    q = forms.CharField(required=False, max_length=300)
    entity = forms.IntegerField(required=False, min_value=1)
    depth = forms.TypedChoiceField(choices=[(1, "1"), (2, "2"), (3, "3")], coerce=int, initial=1, required=False)
    as_of = forms.DateField(required=False, label="As of", widget=forms.DateInput(attrs={"type": "date"}))
    predicate = forms.CharField(required=False, max_length=100, label="Relation")
