"""The Celery beat schedule: every periodic job, in one place, each with when it fires in words.

Times are in settings.TIME_ZONE (CELERY_TIMEZONE), the utility's local time.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from mdms import config


def _datahub_pull_hour() -> int:
    """DATAHUB_PULL_HOUR (local hour of the data hub pull, default 7), read here because the settings
    import this module before Django is configured."""
    try:
        return config.env_int("DATAHUB_PULL_HOUR", 7, minimum=0, maximum=23)
    except config.ConfigError as exc:
        raise ImproperlyConfigured(str(exc)) from exc


# The stream followers' ticks. Each follower has its own queue and worker (settings.CELERY_TASK_ROUTES),
# so a tick waits only behind a run of its own kind, which stops taking work after its budget (10 to
# 30 s); a tick is dropped only after waiting this long, which no run should take, so a slow run can
# never have every tick discarded (a run that finds another of its kind at work returns at once).
FOLLOWER_EXPIRES_S = 120

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Every 5 seconds: judge the readings stored since the last run (anomalies visible within seconds).
    "monitoring-detect-anomalies": {
        "task": "monitoring.detect_anomalies",
        "schedule": 5.0,
        "options": {"expires": FOLLOWER_EXPIRES_S},
    },
    # Every 5 seconds: apply last gasps, power_on events and fresh readings to outage incidents.
    "monitoring-track-outages": {
        "task": "monitoring.track_outages",
        "schedule": 5.0,
        "options": {"expires": FOLLOWER_EXPIRES_S},
    },
    # Every night at 02:15 local time (after midnight UTC, summer and winter): rebuild every active
    # meter's hour-of-day baseline from its last 4 weeks, so detection never has to in the day.
    "monitoring-refresh-baselines": {"task": "monitoring.refresh_baselines", "schedule": crontab(hour=2, minute=15)},
    # Every 30 seconds: meters silent for MONITORING_SILENT_INTERVALS intervals become outage suspects.
    "monitoring-check-silent-meters": {
        "task": "monitoring.check_silent_meters",
        "schedule": 30.0,
        "options": {"expires": 30},
    },
    # Every 5 seconds: recompute the daily rollups (with their hourly values) of the meter-days the
    # ingest just stored.
    "billing-follow-stored-batches": {
        "task": "billing.follow_stored_batches",
        "schedule": 5.0,
        "options": {"expires": FOLLOWER_EXPIRES_S},
    },
    # Every hour at 7 minutes past (local time): forecast every region and feeder 48 hours ahead,
    # once the rollup follower has the hour that just ended, and open/close capacity warnings.
    "forecast-run-hourly": {"task": "forecast.run_hourly", "schedule": crontab(minute=7), "options": {"expires": 3000}},
    # Every 5 minutes: forecast the current hour if no run has forecast anything for it yet (after a
    # start, a restart or the first backfill of history); a no-op once the hour has its forecast.
    "forecast-catch-up": {"task": "forecast.catch_up", "schedule": 300.0, "options": {"expires": 300}},
    # Every day at 02:30 local time: validate and estimate yesterday for every meter in service.
    "billing-vee-yesterday": {"task": "billing.vee_yesterday", "schedule": crontab(hour=2, minute=30)},
    # Every day at 03:10 local time (after VEE at 02:30): export each finished local day not yet in
    # the data lake (catching up missed days), then tier verified raw days older than the retention.
    "lake-nightly": {"task": "lake.nightly", "schedule": crontab(hour=3, minute=10)},
    # At 08:00 local time on the 1st of every month: the monthly run, billing the previous month.
    "billing-monthly-run": {
        "task": "billing.bill_cycle_run",
        "schedule": crontab(hour=config.BILL_RUN_HOUR, minute=0, day_of_month=1),
    },
    # At 08:00 local time on the 2nd to the 28th: bill the accounts whose bill-cycle day is today.
    "billing-cycle-day-run": {
        "task": "billing.bill_cycle_run",
        "schedule": crontab(hour=config.BILL_RUN_HOUR, minute=0, day_of_month="2-28"),
    },
    # Every hour at 20 minutes past (local time): run each bill-cycle day of the last 7 whose run was
    # missed (the stack was down at 08:00), and again those whose accounts were held while the rollups
    # were behind; a date billed completely is left alone.
    "billing-cycle-catch-up": {
        "task": "billing.bill_cycle_catch_up",
        "schedule": crontab(minute=20),
        "options": {"expires": 3000},
    },
    # Every 4 minutes: sum the operator dashboard's grid figures into the cache (which keeps them 5
    # minutes), on a fleet large enough to cache them (portal.views.operator_data.GRID_CACHE_MIN_METERS).
    "portal-grid-refresh": {"task": "portal.grid_refresh", "schedule": 240.0, "options": {"expires": 240}},
    # Every 5 minutes: judge consumers' alert rules (projected bills at most hourly) and send the
    # waiting notification e-mails, retries included.
    "alerts-evaluate-rules": {"task": "alerts.evaluate_rules", "schedule": 300.0, "options": {"expires": 300}},
    # Every 5 minutes: from BILLING_FETCH_LEAD_S before a billing date's run, judge its accounts
    # (batch 1), ask the meters missing their closing read, and release later batches as reads arrive.
    "billing-deliveries-sweep": {"task": "billing.deliveries_sweep", "schedule": 300.0},
    # Every minute: record new or changed BILLDET files in the outbox and queue the SFTP delivery of
    # each one due (new, or failed and past its backoff); nothing while BILLING_SFTP_HOST is empty.
    "billing-outbox-sweep": {"task": "billing.outbox_sweep", "schedule": 60.0, "options": {"expires": 60}},
    # Every 15 seconds: complete on-demand reads whose reply arrived, estimate those timed out.
    "billing-on-demand-reads-sweep": {
        "task": "billing.on_demand_reads_sweep",
        "schedule": 15.0,
        "options": {"expires": 15},
    },
    # Every day at DATAHUB_PULL_HOUR:00 local time (07:00 by default, when hubs have published the
    # day before): pull yesterday's load curve, and missed days, for every enabled data hub connector.
    "ingest-datahub-pull-yesterday": {
        "task": "ingest.datahub_pull_yesterday",
        "schedule": crontab(hour=_datahub_pull_hour(), minute=0),
    },
    # Every night at 04:20 local time: delete expired Green Button Connect tokens and codes.
    "greenbutton-clear-expired-tokens": {
        "task": "greenbutton.clear_expired_tokens",
        "schedule": crontab(hour=4, minute=20),
    },
}
