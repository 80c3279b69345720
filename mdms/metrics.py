"""Prometheus metrics of the whole MDMS for /metrics: one collector reading the shared state at scrape time.

Every figure here lives outside the web process (Redis, PostgreSQL, MongoDB), so each web worker
answers the same numbers and a scrape is right across processes: the ingest counters and the
batch-latency histogram that the ingest workers keep in Redis, the backlog of each stored-batches
follower, Celery's queue lengths, open incidents, active anomalies, billing runs and outbox
deliveries. HTTP request latency by view comes from django-prometheus's middleware, in the
process's own registry (or prometheus_client's multiprocess files under gunicorn, when
PROMETHEUS_MULTIPROC_DIR is set).

A source that fails (MongoDB down, say) costs only its own families: mdms_metrics_source_up says
which, and the rest of the scrape still answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from billing import selectors as billing
from billing.rollups import GROUP as ROLLUPS_GROUP
from ingest import counters
from ingest.parsing import Reason
from mdms.core import stored_batches
from monitoring import selectors as monitoring
from monitoring.outages import OUTAGES_GROUP
from monitoring.services import DETECT_GROUP

logger = logging.getLogger(__name__)

# The followers of the stored-batches stream (mdms.core.stored_batches), by the name operators see.
FOLLOWERS = {"rollups": ROLLUPS_GROUP, "detection": DETECT_GROUP, "outages": OUTAGES_GROUP}
# Celery's queues: the default one (web-triggered and periodic jobs), the ingest workers', and one
# per follower of the stored-batches stream (settings.CELERY_TASK_ROUTES).
CELERY_QUEUES = ("celery", "ingest", "rollups", "detect", "outages")
# Celery's Redis transport keeps a queue's prioritised messages in sibling lists named
# "{queue}\x06\x16{priority}" (its default priority steps); the length of a queue is their sum.
CELERY_PRIORITY_SUFFIXES = ("", *(f"\x06\x16{priority}" for priority in (3, 6, 9)))

# Ingest counters (ingest.counters.COUNTS): metric name, help.
INGEST_COUNTERS = {
    "received": ("mdms_ingest_messages_received", "MQTT messages taken from the broker by the ingest workers."),
    "readings_received": (
        "mdms_ingest_readings_received",
        "Readings in those messages (an interval block holds many).",
    ),
    "stored": ("mdms_ingest_readings_stored", "Readings written to MongoDB."),
    "events_stored": ("mdms_ingest_events_stored", "Meter events written to MongoDB."),
    "replies_stored": ("mdms_ingest_replies_stored", "Command replies written to MongoDB."),
    "duplicates": ("mdms_ingest_duplicates", "Exact copies skipped at ingest (MQTT at-least-once)."),
    "conflicting_duplicates": (
        "mdms_ingest_conflicting_duplicates",
        "Readings of an already stored interval with other values (stored, flagged by VEE).",
    ),
    "batches": ("mdms_ingest_batches", "Batches flushed to MongoDB and acknowledged."),
}


def _ingest() -> Iterator[Metric]:
    snapshot = counters.snapshot()
    for field, (name, help_text) in INGEST_COUNTERS.items():
        yield CounterMetricFamily(name, help_text, value=snapshot[field])
    dead = CounterMetricFamily(
        "mdms_ingest_dead_letters", "Messages (or elements) dead-lettered, by reason.", labels=["reason"]
    )
    by_reason = {reason.value: 0 for reason in Reason} | snapshot["dead_letters_by_reason"]
    for reason, count in sorted(by_reason.items()):
        dead.add_metric([reason], count)
    yield dead
    lag = GaugeMetricFamily(
        "mdms_ingest_newest_reading_age_seconds",
        "Age of the newest reading of the last stored batch, now (meter clock to now; grows while nothing arrives).",
    )
    if snapshot.get("lag_now_s") is not None:
        lag.add_metric([], snapshot["lag_now_s"])
    yield lag
    histogram = counters.latency_histogram()
    yield HistogramMetricFamily(
        "mdms_ingest_batch_latency_seconds",
        "Time from a batch's first message received to the batch stored and acknowledged.",
        buckets=histogram.buckets,
        sum_value=histogram.sum_s,
    )


def _followers() -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "mdms_stored_batches_follower_lag",
        "Stored-batch entries a follower has not finished (not yet taken, or taken and not done).",
        labels=["follower"],
    )
    for follower, group in FOLLOWERS.items():
        family.add_metric([follower], stored_batches.backlog(group))
    yield family


def _celery() -> Iterator[Metric]:
    client = stored_batches.connection()
    pipe = client.pipeline(transaction=False)
    for queue in CELERY_QUEUES:
        for suffix in CELERY_PRIORITY_SUFFIXES:
            pipe.llen(f"{queue}{suffix}")
    lengths = iter(pipe.execute())
    family = GaugeMetricFamily("mdms_celery_queue_length", "Tasks waiting in a Celery queue.", labels=["queue"])
    for queue in CELERY_QUEUES:
        family.add_metric([queue], sum(next(lengths) for _ in CELERY_PRIORITY_SUFFIXES))
    yield family


def _labelled_gauge(name: str, help_text: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _monitoring() -> Iterator[Metric]:
    yield _labelled_gauge(
        "mdms_outage_incidents_open",
        "Open outage incidents, by duration class (momentary under 5 minutes, else sustained).",
        "duration",
        monitoring.open_incident_counts(),
    )


def _anomalies() -> Iterator[Metric]:
    yield _labelled_gauge(
        "mdms_anomalies_active",
        "Anomalies flagged in the last 24 hours (the operator pages' active window), by severity.",
        "severity",
        monitoring.active_anomaly_severity_counts(),
    )


def _billing() -> Iterator[Metric]:
    yield _labelled_gauge("mdms_billing_runs", "Billing runs, by state.", "state", billing.billing_run_counts())
    yield _labelled_gauge(
        "mdms_outbox_deliveries",
        "Versions of BILLDET outbox files, by SFTP delivery status.",
        "status",
        billing.outbox_delivery_counts(),
    )


# Each source reads one store; issue 17's command states join here as one more source.
SOURCES: dict[str, Callable[[], Iterable[Metric]]] = {
    "ingest": _ingest,
    "followers": _followers,
    "celery": _celery,
    "incidents": _monitoring,
    "anomalies": _anomalies,
    "billing": _billing,
}


class MdmsCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "mdms_metrics_source_up", "1 when this scrape could read the source, else 0.", labels=["source"]
        )
        for source, read in SOURCES.items():
            try:
                families = list(read())
            except Exception:  # a store that is down must not take the other figures with it
                logger.exception("metrics: cannot read %s", source)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up


def exposition() -> bytes:
    """The whole scrape in Prometheus's text format: this process's (or every gunicorn worker's)
    HTTP metrics, then the MDMS's own."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        process_registry = CollectorRegistry()
        MultiProcessCollector(process_registry)  # type: ignore[no-untyped-call]
    else:
        process_registry = REGISTRY
    own = CollectorRegistry(auto_describe=False)
    own.register(MdmsCollector())
    return generate_latest(process_registry) + generate_latest(own)
