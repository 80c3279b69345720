from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from mdms.core import selectors
from mdms.core.roles import Role, user_roles


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Each role's starting page: a consumer's own accounts and meters; staff see the grid."""
    roles = user_roles(request.user)
    context = {
        "roles": sorted(r.value for r in roles),
        "accounts": selectors.accounts_for_user(request.user)[:50] if Role.CONSUMER in roles else [],
        "meters": selectors.meters_for_user(request.user)[:50] if Role.CONSUMER in roles else [],
        "grid": selectors.grid_summary() if Role.OPERATOR in roles else [],
        "cycles": selectors.accounts_by_cycle_day() if Role.BILLING in roles else [],
    }
    return render(request, "portal/home.html", context)
