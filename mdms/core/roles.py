"""The three kinds of people, as Django groups. Staff superusers see everything."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models.signals import m2m_changed
from django.dispatch import receiver

# A page asks for the user's roles several times (the view, the navigation, the badge): the groups
# are read once per user object, which lives as long as the request.
_CACHE_ATTRIBUTE = "_mdms_role_names"


class Role(StrEnum):
    CONSUMER = "consumer"
    OPERATOR = "operator"
    BILLING = "billing"


def user_roles(user: User | AnonymousUser) -> set[Role]:
    if not user.is_authenticated:
        return set()
    if getattr(user, "is_superuser", False):
        return {Role.OPERATOR, Role.BILLING}
    names: frozenset[str] | None = getattr(user, _CACHE_ATTRIBUTE, None)
    if names is None:
        names = frozenset(user.groups.values_list("name", flat=True))
        setattr(user, _CACHE_ATTRIBUTE, names)
    return {role for role in Role if role.value in names}


def has_role(user: User | AnonymousUser, role: Role) -> bool:
    return role in user_roles(user)


@receiver(m2m_changed, sender=User.groups.through)
def _forget_cached_roles(sender: Any, instance: Any, **kwargs: Any) -> None:
    # user.groups.add(...) changes this very object's roles; the next question reads them again.
    if isinstance(instance, User) and hasattr(instance, _CACHE_ATTRIBUTE):
        delattr(instance, _CACHE_ATTRIBUTE)
