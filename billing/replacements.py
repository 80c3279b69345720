"""Estimates replaced by actuals: noticed by the rollup follower, judged for billing afterwards.

The actual wins over the estimate in every read already, and the rollup follower recomputes the
days the actual's batch touched, so the rollups, the charts and the next bill follow by themselves.
What is left is the bill issued while the estimate stood: it never changes, but billing staff are
proposed a re-bill (billing.rebill_proposals). This module records, for each stored batch the
follower takes, the estimates that now have a measured reading (EstimateReplacement, one row per
interval: seeing the same replacement again, a re-send or a redelivered batch, adds nothing).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from billing.models import EstimateReplacement
from mdms.core import stored_batches
from mdms.core.models import Meter
from mdms.core.timeseries import replacements as store


def replacements_record(batches: Sequence[stored_batches.StoredBatch]) -> int:
    """Record the estimates these stored reading batches replaced; returns how many were seen (new or not)."""
    rows: list[EstimateReplacement] = []
    for batch in batches:
        if batch.kind != "readings":
            continue
        # (min_ts - an interval, max_ts]: the batch's interval ends are in [min_ts, max_ts].
        found = store.estimates_with_actuals(batch.meter_pks, batch.min_ts - dt.timedelta(microseconds=1), batch.max_ts)
        rows.extend(
            EstimateReplacement(
                meter_id=row["meter"],
                ts=row["ts"],
                estimate_import_kwh=row["estimate_import_kwh"] or 0.0,
                estimate_export_kwh=row["estimate_export_kwh"],
                estimate_method=str(row["method"] or "")[:24],
                actual_import_kwh=row["actual_import_kwh"],
                actual_export_kwh=row["actual_export_kwh"],
                actual_received_at=row["actual_received_at"],
            )
            for row in found
        )
    if not rows:
        return 0
    # A reading of a meter deleted from Postgres still rolls up; it has no bill to judge.
    known = set(Meter.objects.filter(pk__in={row.meter_id for row in rows}).values_list("pk", flat=True))
    rows = [row for row in rows if row.meter_id in known]
    # The unique (meter, ts) keeps the first sighting: a replacement seen twice is one row.
    EstimateReplacement.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(rows)
