"""The three kinds of people, as Django groups. Staff superusers see everything."""

from __future__ import annotations

from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class Role(StrEnum):
    CONSUMER = "consumer"
    OPERATOR = "operator"
    BILLING = "billing"


def user_roles(user: AbstractBaseUser | AnonymousUser) -> set[Role]:
    if not user.is_authenticated:
        return set()
    if getattr(user, "is_superuser", False):
        return {Role.OPERATOR, Role.BILLING}
    names = set(user.groups.values_list("name", flat=True))  # type: ignore[union-attr]
    return {role for role in Role if role.value in names}


def has_role(user: AbstractBaseUser | AnonymousUser, role: Role) -> bool:
    return role in user_roles(user)
