"""The daily data hub job, thin: it calls ingest.datahub.services.

One task pulls the connectors one after the other rather than one task per connector: the hub
allows one request per second to all of us together, so parallel tasks would not finish sooner,
they would only hold more workers asleep in the rate limiter while the 5-second followers wait.
A run stops after RUN_BUDGET_S and queues its own continuation from the next connector: a task
never outlives the broker's visibility timeout (an hour), which would deliver it a second time.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from ingest.datahub import services

RUN_BUDGET_S = 30 * 60.0


@shared_task(name="ingest.datahub_pull_yesterday", ignore_result=True)
def datahub_pull_yesterday(after_pk: int = 0) -> dict[str, Any]:
    summary = services.datahub_pull_due(after_pk=after_pk, budget_s=RUN_BUDGET_S)
    if summary.next_after_pk is not None:
        datahub_pull_yesterday.delay(after_pk=summary.next_after_pk)
    return {
        "ok": summary.ok,
        "errors": summary.errors,
        "busy": summary.busy,
        "readings_stored": summary.readings_stored,
        "continues_after": summary.next_after_pk,
    }
