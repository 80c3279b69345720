"""Who may open the staff pages: operators see the grid pages, billing staff the billing pages.

Anyone else gets a 404, as a consumer does for another customer's meter: a staff page never
confirms to an outsider that it exists. Staff superusers hold both roles (mdms.core.roles).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponseBase

from mdms.core.roles import Role, has_role

View = Callable[..., HttpResponseBase]


def role_required(role: Role) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        @login_required
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not has_role(request.user, role):
                raise Http404("No such page.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


operator_required = role_required(Role.OPERATOR)
billing_required = role_required(Role.BILLING)
