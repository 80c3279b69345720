"""Writes for Green Button Connect: register a third-party application, grant and revoke subscriptions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import (
    AbstractApplication,
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_refresh_token_model,
)

from greenbutton.models import Subscription
from greenbutton.scopes import OFFERED_BY_TEXT
from mdms.core.models import Meter


@dataclass(frozen=True)
class RegisteredApplication:
    application: AbstractApplication
    client_secret: str  # shown once: only its hash is stored


def application_register(*, name: str, redirect_uris: Sequence[str]) -> RegisteredApplication:
    """A confidential third-party client for the authorization-code flow (PKCE is required of every client)."""
    if not redirect_uris:
        raise ValidationError({"redirect_uris": "Give at least one redirect URI."})
    secret = generate_client_secret()
    application = get_application_model()(
        name=name,
        client_type=AbstractApplication.CLIENT_CONFIDENTIAL,
        authorization_grant_type=AbstractApplication.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(redirect_uris),
        client_secret=secret,
        hash_client_secret=True,
    )
    application.full_clean()
    application.save()
    return RegisteredApplication(application, secret)


@transaction.atomic
def subscription_grant(
    *,
    user: User,
    application: AbstractApplication,
    scope: str,
    meters: Sequence[Meter],
    start_date: dt.date,
    end_date: dt.date | None,
) -> Subscription:
    """Record the consumer's consent; a second consent to the same application replaces the first's terms."""
    if scope not in OFFERED_BY_TEXT:
        raise ValidationError({"scope": "Not a scope this utility offers."})
    if not meters:
        raise ValidationError({"meters": "Choose at least one meter."})
    if end_date is not None and end_date < start_date:
        raise ValidationError({"end_date": "The last day is before the first."})
    terms = {"scope": scope, "start_date": start_date, "end_date": end_date}
    active = Subscription.objects.select_for_update().filter(
        user=user, application=application, revoked_at__isnull=True
    )
    subscription = active.first()
    if subscription is None:
        try:
            with transaction.atomic():  # a savepoint: two consents at once meet the unique constraint
                subscription = Subscription.objects.create(user=user, application=application, **terms)
        except IntegrityError:
            subscription = active.get()
    for name, value in terms.items():
        setattr(subscription, name, value)
    subscription.save()
    subscription.meters.set(meters)
    return subscription


@transaction.atomic
def subscription_revoke(*, user: User, subscription_pk: int) -> Subscription:
    """Revoke a grant of the user's: every token of that application for the user stops working at once."""
    subscription = (
        Subscription.objects.select_for_update()
        .filter(pk=subscription_pk, user=user, revoked_at__isnull=True)
        .select_related("application")
        .first()
    )
    if subscription is None:
        raise Http404("No such connection")
    subscription.revoked_at = timezone.now()
    subscription.save(update_fields=["revoked_at", "updated_at"])
    pair = {"user": user, "application": subscription.application}
    get_refresh_token_model().objects.filter(**pair).delete()
    get_access_token_model().objects.filter(**pair).delete()
    get_grant_model().objects.filter(**pair).delete()
    return subscription
