"""Tariff versions in the pure core: which prices apply to which days, and prorating a price change."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing import determinants as det
from billing import pricing

CYCLE_START, CYCLE_END = dt.date(2026, 11, 1), dt.date(2026, 12, 1)
FLAT = det.TariffTerms(
    code="flat", currency="EUR", fixed_monthly_charge=Decimal("12.00"), energy_rate_per_kwh=Decimal("0.20000"),
    demand_charge_per_kw=Decimal("0"), export_credit_per_kwh=Decimal("0.05000"),
)  # fmt: skip


def version(day: dt.date, *, fixed: str = "12.00", rate: str = "0.20000", demand: str = "0") -> det.PriceVersion:
    return det.PriceVersion(day, Decimal(fixed), Decimal(rate), Decimal(demand), Decimal("0.05000"))


def usage(start: dt.date, end: dt.date, import_kwh: Decimal, export_kwh: Decimal = Decimal("0"),
          demand: Decimal | None = None) -> det.Determinants:  # fmt: skip
    return det.Determinants(
        period_start=CYCLE_START, period_end=CYCLE_END, billed_start=start, billed_end=end,
        cycle_days=(CYCLE_END - CYCLE_START).days, billed_days=(end - start).days,
        import_kwh=import_kwh, export_kwh=export_kwh, net_kwh=import_kwh - export_kwh, estimated_kwh=Decimal("0"),
        estimated_share=Decimal("0"), multiplier=Decimal("1"), intervals_expected=0, intervals_missing=0,
        max_demand_kw=demand, max_demand_at=None,
    )  # fmt: skip


days = st.integers(min_value=-40, max_value=70).map(lambda n: CYCLE_START + dt.timedelta(days=n))


@settings(max_examples=300, deadline=None)
@given(effective=st.lists(days, max_size=6, unique=True), first=st.integers(0, 28), length=st.integers(1, 30))
def test_version_spans_tile_the_days_and_each_names_the_version_in_effect(
    effective: list[dt.date], first: int, length: int
) -> None:
    start = CYCLE_START + dt.timedelta(days=first)
    end = start + dt.timedelta(days=length)
    versions = [version(day) for day in effective]

    spans = det.version_spans(versions, start, end)

    assert spans[0][0] == start and spans[-1][1] == end
    assert all(a_end == b_start for (_, a_end, _), (b_start, _, _) in itertools.pairwise(spans))
    for span_start, span_end, chosen in spans:
        assert span_start < span_end
        day = span_start
        while day < span_end:  # every day of the span has the same version in effect
            in_effect = max((v for v in versions if v.effective_from <= day), key=lambda v: v.effective_from,
                            default=None)  # fmt: skip
            assert in_effect == chosen
            day += dt.timedelta(days=1)


def test_a_price_change_in_the_middle_of_a_period_prorates_energy_and_the_fixed_charge() -> None:
    old, new = version(dt.date(2026, 1, 1)), version(dt.date(2026, 11, 11), fixed="15.00", rate="0.30000")
    spans = det.version_spans([old, new], CYCLE_START, CYCLE_END)
    assert [(a, b) for a, b, _ in spans] == [(CYCLE_START, dt.date(2026, 11, 11)), (dt.date(2026, 11, 11), CYCLE_END)]
    parts = [
        (usage(CYCLE_START, dt.date(2026, 11, 11), Decimal("100")), det.terms_with_prices(FLAT, old)),
        (usage(dt.date(2026, 11, 11), CYCLE_END, Decimal("200")), det.terms_with_prices(FLAT, new)),
    ]

    items = pricing.line_items_by_version(parts, usage(CYCLE_START, CYCLE_END, Decimal("300")))

    amounts = {item.code: item.amount for item in items}
    assert amounts == {
        "fixed@2026-11-01": Decimal("4.00"),  # 12.00 x 10/30
        "energy@2026-11-01": Decimal("20.00"),  # 100 kWh x 0.20
        "fixed@2026-11-11": Decimal("10.00"),  # 15.00 x 20/30
        "energy@2026-11-11": Decimal("60.00"),  # 200 kWh x 0.30
    }
    assert "01 Nov to 10 Nov" in items[0].description


def test_maximum_demand_is_charged_once_at_rates_weighted_by_days() -> None:
    terms = det.TariffTerms(**{**FLAT.__dict__, "demand_charge_per_kw": Decimal("2")})
    old, new = version(dt.date(2026, 1, 1), demand="2"), version(dt.date(2026, 11, 16), demand="4")
    parts = [
        (usage(CYCLE_START, dt.date(2026, 11, 16), Decimal("10"), demand=Decimal("3")), det.terms_with_prices(terms, old)),
        (usage(dt.date(2026, 11, 16), CYCLE_END, Decimal("10"), demand=Decimal("5")), det.terms_with_prices(terms, new)),
    ]  # fmt: skip

    items = pricing.line_items_by_version(parts, usage(CYCLE_START, CYCLE_END, Decimal("20"), demand=Decimal("5")))

    demand = [item for item in items if item.code.startswith("demand")]
    assert len(demand) == 1
    assert demand[0].quantity == Decimal("5") and demand[0].rate == Decimal("3.0000")  # (2 x 15 + 4 x 15) / 30
    assert demand[0].amount == Decimal("15.00")


@settings(max_examples=300, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 29), max_size=4, unique=True),
    kwh=st.lists(st.decimals(min_value=0, max_value=5000, places=3), min_size=5, max_size=5),
    export=st.decimals(min_value=0, max_value=100, places=3),
)
def test_versions_with_the_same_prices_bill_what_one_price_bills_to_within_rounding(
    cuts: list[int], kwh: list[Decimal], export: Decimal
) -> None:
    changes = sorted(CYCLE_START + dt.timedelta(days=c) for c in cuts)
    versions = [version(dt.date(2026, 1, 1)), *(version(day) for day in changes)]
    spans = det.version_spans(versions, CYCLE_START, CYCLE_END)
    parts = [
        (usage(a, b, kwh[n], export if n == 0 else Decimal("0")), det.terms_with_prices(FLAT, v or versions[0]))
        for n, (a, b, v) in enumerate(spans)
    ]
    whole = usage(CYCLE_START, CYCLE_END, sum((d.import_kwh for d, _ in parts), Decimal("0")), export)

    split_total = pricing.total(pricing.line_items_by_version(parts, whole))
    one_total = pricing.total(pricing.line_items(whole, FLAT))

    # Each part's lines are rounded to the cent on their own: at most half a cent per line apart.
    lines = len(pricing.line_items_by_version(parts, whole))
    assert abs(split_total - one_total) <= Decimal("0.005") * lines + Decimal("0.005")
