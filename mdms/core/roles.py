"""The three kinds of people, as Django groups. Staff superusers see everything."""

from __future__ import annotations

from enum import StrEnum

from django.contrib.auth.models import AnonymousUser, User


class Role(StrEnum):
    CONSUMER = "consumer"
    OPERATOR = "operator"
    BILLING = "billing"


def user_roles(user: User | AnonymousUser) -> set[Role]:
    if not user.is_authenticated:
        return set()
    if getattr(user, "is_superuser", False):
        return {Role.OPERATOR, Role.BILLING}
    names = set(user.groups.values_list("name", flat=True))
    return {role for role in Role if role.value in names}


def has_role(user: User | AnonymousUser, role: Role) -> bool:
    return role in user_roles(user)
