"""Line items from determinants and a tariff: Decimal throughout, each amount rounded to the cent.

Pure: no database. The bill's total is the sum of its rounded line items, so that what a customer
adds up on paper is what they are charged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal

from billing.determinants import HOLIDAY, WEEKDAY, WEEKEND, Determinants, TariffTerms

CENT = Decimal("0.01")
QUANTITY = Decimal("0.0001")
# Day types in the order a bill lists them.
_DAY_ORDER = {WEEKDAY: 0, WEEKEND: 1, HOLIDAY: 2}


@dataclass(frozen=True)
class LineItem:
    code: str
    description: str
    quantity: Decimal
    unit: str
    rate: Decimal
    amount: Decimal
    estimated: bool = False


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def line_items(determinants: Determinants, terms: TariffTerms) -> list[LineItem]:
    d = determinants
    # Each line is flagged by its own energy: a time-of-use period without an estimated interval is not.
    import_estimated = d.estimated_import_kwh > 0
    items: list[LineItem] = []
    if terms.fixed_monthly_charge:
        # A move within the cycle prorates the fixed charge by days served.
        months = Decimal(d.billed_days) / Decimal(d.cycle_days)
        prorated = d.billed_days != d.cycle_days
        items.append(
            LineItem(
                code="fixed",
                description=f"Fixed charge ({d.billed_days}/{d.cycle_days} days)" if prorated else "Fixed charge",
                quantity=months.quantize(QUANTITY, rounding=ROUND_HALF_UP),
                unit="month",
                rate=terms.fixed_monthly_charge,
                amount=cents(terms.fixed_monthly_charge * months),
            )
        )
    if terms.is_time_of_use:
        keys = sorted(d.energy_by_period, key=lambda k: (_DAY_ORDER.get(k.split(":")[0], 9), k))
        for key in keys:
            kwh = d.energy_by_period[key]
            rate = terms.rate_for(key)
            day_kind, name = key.split(":", 1)
            items.append(
                LineItem(
                    code=f"energy:{key}",
                    description=f"Energy, {day_kind} {name}",
                    quantity=kwh,
                    unit="kWh",
                    rate=rate,
                    amount=cents(kwh * rate),
                    estimated=d.estimated_by_period.get(key, Decimal(0)) > 0,
                )
            )
    else:
        assert terms.energy_rate_per_kwh is not None
        items.append(
            LineItem(
                code="energy",
                description="Energy",
                quantity=d.import_kwh,
                unit="kWh",
                rate=terms.energy_rate_per_kwh,
                amount=cents(d.import_kwh * terms.energy_rate_per_kwh),
                estimated=import_estimated,
            )
        )
    if terms.demand_charge_per_kw and d.max_demand_kw:
        items.append(
            LineItem(
                code="demand",
                description="Maximum demand" + (f" ({d.max_demand_at:%Y-%m-%d %H:%M})" if d.max_demand_at else ""),
                quantity=d.max_demand_kw,
                unit="kW",
                rate=terms.demand_charge_per_kw,
                amount=cents(d.max_demand_kw * terms.demand_charge_per_kw),
            )
        )
    if terms.export_credit_per_kwh and d.export_kwh:
        items.append(
            LineItem(
                code="export_credit",
                description="Export credit",
                quantity=d.export_kwh,
                unit="kWh",
                rate=terms.export_credit_per_kwh,
                amount=-cents(d.export_kwh * terms.export_credit_per_kwh),
                estimated=d.estimated_export_kwh > 0,
            )
        )
    return items


def total(items: list[LineItem]) -> Decimal:
    return sum((item.amount for item in items), Decimal("0.00"))


def line_items_by_version(parts: list[tuple[Determinants, TariffTerms]], whole: Determinants) -> list[LineItem]:
    """Line items of a bill whose tariff changed price inside its period: each part (the usage of
    the days one version was in effect, and that version's terms) is priced on its own, and its lines
    name their days. A part's fixed charge covers its own days (its Determinants' billed_days over
    the cycle's days), so the fixed charges add up to the whole bill's share of the month.

    Maximum demand is one figure for the whole bill (`whole`): it is charged once, at the rates of
    the versions weighted by their days. With a single part this is `line_items` of that part.
    """
    if len(parts) == 1:
        return line_items(parts[0][0], parts[0][1])
    items: list[LineItem] = []
    for determinants, terms in parts:
        label = f"{determinants.billed_start:%d %b} to {determinants.billed_end - dt.timedelta(days=1):%d %b}"
        for item in line_items(replace(determinants, max_demand_kw=None), terms):
            items.append(replace(item, code=f"{item.code}@{determinants.billed_start.isoformat()}",
                                 description=f"{item.description}, {label}"))  # fmt: skip
    if whole.max_demand_kw and whole.billed_days:
        rate = sum((terms.demand_charge_per_kw * Decimal(d.billed_days) for d, terms in parts), Decimal("0")) / Decimal(
            whole.billed_days
        )
        if rate:
            items.append(
                LineItem(
                    code="demand",
                    description="Maximum demand"
                    + (f" ({whole.max_demand_at:%Y-%m-%d %H:%M})" if whole.max_demand_at else "")
                    + ", rate weighted by the days of each price",
                    quantity=whole.max_demand_kw,
                    unit="kW",
                    rate=rate.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP),
                    amount=cents(whole.max_demand_kw * rate),
                )
            )
    return items
