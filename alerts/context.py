"""The header's link to a consumer's notifications with its unread count (templates/base.html), on every page."""

from __future__ import annotations

from functools import cached_property

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest

from alerts.selectors import unread_count
from mdms.core.roles import Role, has_role


class NotificationsBadge:
    """Lazy: a page that does not show the header asks nothing, and one that does asks once."""

    def __init__(self, user: User | AnonymousUser) -> None:
        self.user = user

    @cached_property
    def show(self) -> bool:
        return has_role(self.user, Role.CONSUMER)

    @cached_property
    def unread(self) -> int:
        return unread_count(self.user)


def notifications(request: HttpRequest) -> dict[str, NotificationsBadge]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"notifications_badge": NotificationsBadge(user)}
