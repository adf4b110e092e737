"""People: invitations (create, revoke, accept), one's own account (password, sessions), and
every account for superusers. Thin: parse the form, look up through access helpers, call one service."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model, login, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts.authentication import SESSION_TENANT_KEY, principal_for_session
from accounts.invitations import (
    account_create,
    account_create_from_invitation,
    invitation_accept,
    invitation_create,
    invitation_for_token,
    invitation_list_for,
    invitation_revoke,
    invitation_state,
)
from accounts.models import Invitation, Tenant
from accounts.roles import ROLE_CHOICES
from accounts.scoping import get_scoped_or_404
from accounts.selectors import membership_list_for
from accounts.user_services import (
    account_list,
    account_membership_set,
    account_set_active,
    password_reset_link_create,
    user_password_change,
    user_session_record,
    user_sessions_for,
    user_sign_out_everywhere,
)
from core.errors import InvalidInput
from dashboard.access import DashboardRequest, dashboard_view, page
from dashboard.forms import AccountCreateForm, AccountMembershipForm, InvitationForm, PasswordChangeForm, SignUpForm
from dashboard.selectors import member_list_for, tenant_list_all

NEW_INVITE_SESSION = "dashboard_new_invitation"
NEW_RESET_SESSION = "dashboard_new_reset_link"


def _put_error(form: Any, exc: InvalidInput) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def _invite_link_base(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("dashboard:invitation-accept", args=["TOKEN"])).replace("TOKEN/", "")


# --- members and invitations (tenant admins) ------------------------------------------------


@dashboard_view(get="admin", post="admin")
def members(request: DashboardRequest) -> HttpResponse:
    """The tenant's members and its invitations; the form makes a new invitation."""
    principal = request.principal
    form = InvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = invitation_create(
                principal=principal,
                role=form.cleaned_data["role"],
                email=form.cleaned_data.get("email") or "",
                expires_in_days=form.cleaned_data["expires_in_days"],
                link_base=_invite_link_base(request),
            )
        except InvalidInput as exc:
            _put_error(form, exc)
        else:
            # Post/redirect/get: the link rides in the session for exactly one page view.
            request.session[NEW_INVITE_SESSION] = {
                "id": str(created.invitation.pk),
                "url": f"{_invite_link_base(request)}{created.token}/",
                "email": created.invitation.email,
            }
            return redirect("dashboard:members")
    new_invite = request.session.pop(NEW_INVITE_SESSION, None)
    invitations = [(inv, invitation_state(inv)) for inv in invitation_list_for(principal.tenant)[:100]]
    response = page(
        request,
        "dashboard/admin/members.html",
        form=form,
        members=member_list_for(principal.tenant),
        invitations=invitations,
        new_invite=new_invite,
        role_choices=ROLE_CHOICES,
        section="members",
    )
    if new_invite:
        response["Cache-Control"] = "no-store"
    return response


@dashboard_view(post="admin")
def invitation_revoke_view(request: DashboardRequest, invitation_id: str) -> HttpResponse:
    principal = request.principal
    invitation = get_scoped_or_404(Invitation, principal.tenant, pk=invitation_id)
    try:
        invitation_revoke(principal=principal, invitation=invitation)
    except InvalidInput as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Invitation revoked: its link no longer works.")
    return redirect("dashboard:members")


@never_cache
@sensitive_post_parameters("password", "password_again")
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    """Public: whoever holds the link signs in (or creates an account) and joins."""
    invitation = invitation_for_token(token)
    form = SignUpForm(request.POST if request.method == "POST" and request.POST.get("step") == "create" else None)
    error = ""
    if request.method == "POST" and invitation is not None:
        try:
            if request.POST.get("step") == "accept":
                if not request.user.is_authenticated:
                    return redirect_to_login(request.path)
                membership = invitation_accept(token=token, user=request.user)
                user = request.user
            elif form.is_valid():
                user = account_create_from_invitation(
                    token=token,
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password"],
                    email=form.cleaned_data.get("email") or "",
                )
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                membership = None
            else:
                membership = user = None
        except InvalidInput as exc:
            if exc.field in form.fields:
                form.add_error(exc.field, exc.message)
            else:
                error = exc.message
        else:
            if user is not None:
                request.session[SESSION_TENANT_KEY] = str(invitation.tenant_id)
                role = membership.role if membership is not None else invitation.role
                messages.success(request, f"Welcome to {invitation.tenant.name}: you are a {role} here.")
                return redirect("dashboard:search")
    status = 200 if invitation is not None else 404
    response = render(
        request, "dashboard/account/invitation.html", {"invitation": invitation, "form": form, "error": error},
        status=status,
    )  # fmt: skip
    # The token is in this page's URL: never sent to another site (no-referrer would send "Origin: null"
    # with the form, which the CSRF check refuses).
    response["Referrer-Policy"] = "same-origin"
    return response


# --- one's own account ------------------------------------------------------------------------


def _account_context(request: HttpRequest, user: User) -> dict[str, Any]:
    """The frame's context for pages that need a signed-in user but no tenant."""
    principal = principal_for_session(request)
    context: dict[str, Any] = {"memberships": membership_list_for(user), "section": "account"}
    if principal is not None and principal.tenant is not None:
        context.update(
            principal=principal,
            tenant=principal.tenant,
            can_write=principal.has_scope("memory:write"),
            is_admin=principal.has_scope("admin"),
        )
    return context


@sensitive_post_parameters("old_password", "new_password", "new_password_again")
def account_page(request: HttpRequest) -> HttpResponse:
    """Your tenants and roles, your password, your signed-in sessions."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponse(status=405)
    form = PasswordChangeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            user_password_change(
                user=request.user,
                old_password=form.cleaned_data["old_password"],
                new_password=form.cleaned_data["new_password"],
            )
        except InvalidInput as exc:
            _put_error(form, exc)
        else:
            # This session stays signed in; the others end (their password hash no longer matches).
            update_session_auth_hash(request, request.user)  # new session key
            user_sign_out_everywhere(user=request.user, keep_session_key=request.session.session_key)
            user_session_record(
                user=request.user,
                session_key=request.session.session_key or "",
                client_addr=request.META.get("REMOTE_ADDR", ""),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
            )
            messages.success(request, "Password changed. Your other sessions have ended.")
            return redirect("dashboard:account")
    sessions = user_sessions_for(request.user)
    context = _account_context(request, request.user) | {
        "form": form,
        "sessions": sessions,
        "current_key": request.session.session_key,
    }
    return render(request, "dashboard/account/account.html", context)


def account_sessions_end(request: HttpRequest) -> HttpResponse:
    """Sign out everywhere else (this browser stays signed in)."""
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("dashboard:account"))
    if request.method != "POST":
        return HttpResponse(status=405)
    ended = user_sign_out_everywhere(user=request.user, keep_session_key=request.session.session_key)
    messages.success(request, f"Signed out of {ended} other session{'s' if ended != 1 else ''}.")
    return redirect("dashboard:account")


class PasswordResetConfirm(auth_views.PasswordResetConfirmView):
    """The one-time set-password link an operator hands out (Django's token: it stops working once used)."""

    template_name = "dashboard/account/reset_confirm.html"
    success_url = reverse_lazy("dashboard:password-reset-done")
    post_reset_login = False

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        user_sign_out_everywhere(user=form.user, actor=form.user)
        return response


def password_reset_done(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/account/reset_done.html")


# --- every account (superusers) ----------------------------------------------------------------


@dashboard_view(get="memory:read", post="memory:read")
def accounts(request: DashboardRequest) -> HttpResponse:
    """Every account on the server, for superusers only (the operators)."""
    principal = request.principal
    if not request.user.is_superuser:
        return page(request, "dashboard/forbidden.html", status=403)
    form = AccountCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = account_create(
                username=form.cleaned_data["username"],
                password=None,
                email=form.cleaned_data.get("email") or "",
                principal=principal,
            )
        except InvalidInput as exc:
            _put_error(form, exc)
        else:
            _remember_reset_link(request, principal, user)
            messages.success(request, f"Account {user.get_username()} created: hand over the set-password link.")
            return redirect("dashboard:accounts")
    new_link = request.session.pop(NEW_RESET_SESSION, None)
    response = page(
        request,
        "dashboard/admin/accounts.html",
        form=form,
        accounts=account_list()[:500],
        tenants=tenant_list_all(),
        role_choices=ROLE_CHOICES,
        new_link=new_link,
        section="accounts",
    )
    if new_link:
        response["Cache-Control"] = "no-store"
    return response


def _remember_reset_link(request: HttpRequest, principal: Any, user: Any) -> None:
    uid, token = password_reset_link_create(principal=principal, user=user)
    url = request.build_absolute_uri(reverse("dashboard:password-reset", args=[uid, token]))
    request.session[NEW_RESET_SESSION] = {"user": user.get_username(), "url": url}


@dashboard_view(post="memory:read")
def account_update(request: DashboardRequest, user_id: int) -> HttpResponse:
    """One action on one account: reset link, (de)activate, sign out everywhere, add to a tenant."""
    principal = request.principal
    if not request.user.is_superuser:
        return page(request, "dashboard/forbidden.html", status=403)
    user = get_user_model().objects.filter(pk=user_id).first()  # unscoped: superusers manage every account
    if user is None:
        raise Http404("not found")
    action = request.POST.get("action", "")
    try:
        if action == "reset":
            _remember_reset_link(request, principal, user)
        elif action in ("activate", "deactivate"):
            account_set_active(principal=principal, user=user, active=action == "activate")
            messages.success(request, f"{user.get_username()} {action}d.")
        elif action == "signout":
            ended = user_sign_out_everywhere(user=user, actor=principal)
            messages.success(request, f"{user.get_username()}: {ended} session(s) ended.")
        elif action == "membership":
            form = AccountMembershipForm(request.POST)
            if not form.is_valid():
                raise InvalidInput("tenant", "choose a tenant and a role")
            tenant = Tenant.objects.filter(pk=form.cleaned_data["tenant"]).first()  # unscoped: superuser
            if tenant is None:
                raise InvalidInput("tenant", "no such tenant")
            account_membership_set(principal=principal, user=user, tenant=tenant, role=form.cleaned_data["role"])
            messages.success(request, f"{user.get_username()} is {form.cleaned_data['role']} in {tenant.name}.")
        else:
            raise InvalidInput("action", "unknown action")
    except InvalidInput as exc:
        messages.error(request, exc.message)
    return redirect("dashboard:accounts")
