"""Pricing a bill with the tariff versions in effect on its days.

The usage of each stretch of days with one version is computed on its own (the same determinants
as the whole bill, over fewer days) and priced with that version (billing.pricing.line_items_by_version).
Bills inside one version's days, and tariffs without versions, cost nothing more than before.
"""

from __future__ import annotations

import datetime as dt

from billing import determinants as det
from billing import pricing
from billing.billable_usage import determinants_for
from mdms.core.models import Account


def bill_line_items(
    *, account: Account, determinants: det.Determinants, terms: det.TariffTerms, usage_end: dt.datetime | None = None
) -> list[pricing.LineItem]:
    d = determinants
    spans = det.version_spans(terms.versions, d.billed_start, d.billed_end)
    if len(spans) == 1:
        version = spans[0][2]
        return pricing.line_items(d, det.terms_with_prices(terms, version) if version else terms)
    parts: list[tuple[det.Determinants, det.TariffTerms]] = []
    for start, end, version in spans:
        window = det.Window(d.period_start, d.period_end, start, end, usage_end if end == d.billed_end else None)
        outcome = determinants_for([account], {account.pk: window}, lambda _account: terms)[account.pk]
        if isinstance(outcome, Exception):
            raise outcome
        parts.append((outcome, det.terms_with_prices(terms, version) if version else terms))
    return pricing.line_items_by_version(parts, d)
