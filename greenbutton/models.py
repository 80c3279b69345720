"""A consumer's Green Button Connect grant to a third-party application."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from oauth2_provider.settings import oauth2_settings

from greenbutton.scopes import EspiScope
from mdms.core.models import Meter


class Subscription(models.Model):
    """What one consumer lets one application read: meters, function blocks (the ESPI scope) and days.

    One active subscription per (consumer, application): every token the application holds for the
    consumer reads this one, so consenting again updates it (same id, same resourceURI) and revoking
    it deletes every token at once. A revoked row is kept as the record of what was shared.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="espi_subscriptions")
    application = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="espi_subscriptions"
    )
    meters = models.ManyToManyField(Meter, related_name="espi_subscriptions")
    scope = models.CharField(max_length=200, help_text="The ESPI scope string granted (greenbutton.scopes).")
    start_date = models.DateField(help_text="First local day shared.")
    end_date = models.DateField(null=True, blank=True, help_text="Last local day shared; empty: ongoing.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "application"],
                condition=models.Q(revoked_at__isnull=True),
                name="espi_one_active_subscription",
            )
        ]

    def __str__(self) -> str:
        return f"Subscription {self.pk}: {self.user} → {self.application}"

    @property
    def espi_scope(self) -> EspiScope:
        return EspiScope.parse(self.scope)
