"""The Celery beat schedule: every periodic job, in one place, each with when it fires in words.

Times are in settings.TIME_ZONE (CELERY_TIMEZONE), the utility's local time.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Every 5 seconds: judge the readings stored since the last run (anomalies visible within seconds).
    "monitoring-detect-anomalies": {"task": "monitoring.detect_anomalies", "schedule": 5.0, "options": {"expires": 5}},
    # Every 5 seconds: apply last gasps, power_on events and fresh readings to outage incidents.
    "monitoring-track-outages": {"task": "monitoring.track_outages", "schedule": 5.0, "options": {"expires": 5}},
    # Every night at 02:15 local time (after midnight UTC, summer and winter): rebuild every active
    # meter's hour-of-day baseline from its last 4 weeks, so detection never has to in the day.
    "monitoring-refresh-baselines": {"task": "monitoring.refresh_baselines", "schedule": crontab(hour=2, minute=15)},
    # Every 30 seconds: meters silent for MONITORING_SILENT_INTERVALS intervals become outage suspects.
    "monitoring-check-silent-meters": {
        "task": "monitoring.check_silent_meters",
        "schedule": 30.0,
        "options": {"expires": 30},
    },
    # Every 5 seconds: recompute the daily/hourly rollups of the meter-days the ingest just stored.
    "billing-follow-stored-batches": {
        "task": "billing.follow_stored_batches",
        "schedule": 5.0,
        "options": {"expires": 5},
    },
    # Every day at 02:30 local time: validate and estimate yesterday for every meter in service.
    "billing-vee-yesterday": {"task": "billing.vee_yesterday", "schedule": crontab(hour=2, minute=30)},
    # At 08:00 local time on the 1st of every month: the monthly run, billing the previous month.
    "billing-monthly-run": {"task": "billing.bill_cycle_run", "schedule": crontab(hour=8, minute=0, day_of_month=1)},
    # At 08:00 local time on the 2nd to the 28th: bill the accounts whose bill-cycle day is today.
    "billing-cycle-day-run": {
        "task": "billing.bill_cycle_run",
        "schedule": crontab(hour=8, minute=0, day_of_month="2-28"),
    },
    # Every 15 seconds: complete on-demand reads whose reply arrived, estimate those timed out.
    "billing-on-demand-reads-sweep": {
        "task": "billing.on_demand_reads_sweep",
        "schedule": 15.0,
        "options": {"expires": 15},
    },
}
