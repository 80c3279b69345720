"""Stored forecasts and the capacity warnings they raise.

Forecasts are kept in PostgreSQL, one row per run and series with the 48 hourly values as JSON
arrays: about 16 series an hour for the demo grid (a few hundred rows a day, pruned after
FORECAST_KEEP_DAYS). They are read whole (a chart, the comparison with what happened), never
queried by hour, and warnings point at the run that raised them, which a foreign key keeps
honest; MongoDB would add a collection for no gain.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from mdms.core.models import Feeder, Region


class ForecastRun(models.Model):
    """One forecast of every region and feeder from an origin (the top of an hour, UTC)."""

    origin = models.DateTimeField(unique=True, help_text="First hour forecast (UTC, top of the hour).")
    model = models.CharField(max_length=80)
    horizon_hours = models.PositiveSmallIntegerField(default=48)
    computed_at = models.DateTimeField()
    duration_s = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-origin"]

    def __str__(self) -> str:
        return f"forecast from {self.origin:%Y-%m-%d %H:%M} UTC"


class ForecastSeries(models.Model):
    """A region's or a feeder's hourly net load forecast (kW, the hour's average) with its 80% band."""

    run = models.ForeignKey(ForecastRun, on_delete=models.CASCADE, related_name="series")
    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="+")
    feeder = models.ForeignKey(Feeder, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    net_kw = models.JSONField(help_text="Hourly values from the run's origin; null where history is too thin.")
    low_kw = models.JSONField()
    high_kw = models.JSONField()
    peak_kw = models.FloatField(null=True, blank=True)
    peak_at = models.DateTimeField(null=True, blank=True, help_text="Start of the peak hour (UTC).")
    meters = models.PositiveIntegerField(default=0)
    history_hours = models.PositiveIntegerField(default=0, help_text="Hours with data the forecast rests on.")

    class Meta:
        ordering = ["run", "region", "feeder"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "region"], condition=Q(feeder__isnull=True), name="forecast_one_region_series_per_run"
            ),
            models.UniqueConstraint(
                fields=["run", "feeder"], condition=Q(feeder__isnull=False), name="forecast_one_feeder_series_per_run"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.feeder or self.region} in {self.run}"


class CapacityWarning(models.Model):
    """A feeder whose forecast peak exceeds its share of rating: one row per episode.

    Opened by the first forecast that exceeds, updated by the next ones while they still do,
    closed by the first that no longer does. At most one is open per feeder (a constraint).
    """

    feeder = models.ForeignKey(Feeder, on_delete=models.CASCADE, related_name="capacity_warnings")
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    opened_by = models.ForeignKey(ForecastRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    last_run = models.ForeignKey(ForecastRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    peak_kw = models.FloatField(help_text="The newest forecast's peak.")
    peak_at = models.DateTimeField(help_text="Start of that peak hour (UTC).")
    highest_peak_kw = models.FloatField(help_text="The highest forecast peak in the episode.")
    capacity_kw = models.DecimalField(max_digits=10, decimal_places=1, help_text="The feeder's rating then.")
    threshold_share = models.FloatField(help_text="FORECAST_CAPACITY_WARNING_SHARE then.")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["feeder"], condition=Q(closed_at__isnull=True), name="one_open_capacity_warning_per_feeder"
            )
        ]

    def __str__(self) -> str:
        return f"{self.feeder.code}: {self.peak_kw:.0f} kW forecast against {self.capacity_kw} kW"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def share_of_rating(self) -> float:
        return self.peak_kw / float(self.capacity_kw) if self.capacity_kw else 0.0
