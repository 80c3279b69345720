"""Who is calling, and what they may do.

Machine clients send `Authorization: Bearer <key>` (an ApiToken with scopes); people use their
portal session (with CSRF on writes). Each view names the scope an action needs; a session user
needs a role that goes with that scope. Consumers pass the role check for reads of their own
objects only: the querysets (portal.api.scoping) hold nothing else, so another's id is a 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from mdms.core.api_tokens import api_token_authenticate
from mdms.core.models_api import ApiToken
from mdms.core.roles import Role, user_roles

Scope = ApiToken.Scope

# Which people may use each scope's actions through their session (consumers only on their own objects).
ROLES_FOR_SCOPE: dict[str, frozenset[Role]] = {
    Scope.CIS_READ: frozenset({Role.CONSUMER, Role.OPERATOR, Role.BILLING}),
    Scope.BILLING: frozenset({Role.BILLING}),
    Scope.METER_ADMIN: frozenset({Role.OPERATOR}),
    Scope.COMMANDS: frozenset({Role.OPERATOR, Role.BILLING}),
}


class TokenUser(AnonymousUser):
    """request.user for a machine client: authenticated, but no person and no groups."""

    def __init__(self, token: ApiToken) -> None:
        self.token = token
        self.username = f"token:{token.name}"  # type: ignore[assignment]

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False

    def __str__(self) -> str:
        return self.username


class BearerTokenAuthentication(BaseAuthentication):
    keywords = (b"bearer", b"token")

    def authenticate(self, request: Request) -> tuple[TokenUser, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send exactly one token: 'Authorization: Bearer <key>'.")
        token = api_token_authenticate(parts[1].decode("latin-1"))
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked token.")
        return TokenUser(token), token

    def authenticate_header(self, request: Request) -> str:
        # Makes unauthenticated requests a 401 (with this challenge) rather than a 403.
        return 'Bearer realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "portal.api.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "description": "An API token issued by staff, with scopes."}


def token_of(request: Request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


def person_of(request: Request) -> User | None:
    return request.user if isinstance(request.user, User) else None


def required_scope(view: Any) -> str:
    """The scope of the view's current action: view.scopes maps actions to scopes, "*" is the default."""
    scopes: dict[str, str] = view.scopes
    action = getattr(view, "action", None) or request_method_action(view)
    return scopes.get(action, scopes["*"])


def request_method_action(view: Any) -> str:
    return str(view.request.method).lower()


def roles_for(view: Any, scope: str) -> frozenset[Role]:
    """The roles a person needs: the view's own `roles` when it names them, else the scope's."""
    override: frozenset[Role] | None = getattr(view, "roles", None)
    return override if override is not None else ROLES_FOR_SCOPE[scope]


class ScopedAccess(BasePermission):
    """Tokens need the action's scope; people need a role that goes with it.

    On routes that take an id, a person's role is checked only after the object was found in
    their own queryset, so someone else's id answers 404 whatever the action.
    """

    message = "Your credentials do not allow this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if getattr(view, "action_map", None) is not None and view.action is None:
            return True  # a method the route does not have: let the view answer 405
        scope = required_scope(view)
        token = token_of(request)
        if token is not None:
            if scope in token.scopes:
                return True
            # DRF makes a new permission object per request, so the message can name this request's scope.
            held = ", ".join(f"'{name}'" for name in token.scopes) or "none"
            self.message = f"This action needs a token with the '{scope}' scope; this token has {held}."
            return False
        lookup = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk")
        if lookup in view.kwargs:
            return True  # decided in has_object_permission, after the scoped lookup
        return bool(user_roles(request.user) & roles_for(view, scope))

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        if token_of(request) is not None:
            return True
        return bool(user_roles(request.user) & roles_for(view, required_scope(view)))
