"""Number formats of the portal: energy, power and shares, with their units."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def kwh(value: float | Decimal | None) -> str:
    """kWh with as many decimals as help reading it: 0.42 kWh, 12.3 kWh, 1,234 kWh."""
    if value is None:
        return "—"
    number = float(value)
    if abs(number) >= 1000:
        return f"{number:,.0f} kWh"
    if abs(number) >= 10:
        return f"{number:.1f} kWh"
    return f"{number:.2f} kWh"


@register.filter
def kw(watts: float | None) -> str:
    return "—" if watts is None else f"{float(watts) / 1000:.2f} kW"


@register.filter
def percent(share: float | Decimal | None) -> str:
    """A share 0..1 as a whole percentage; never rounds a non-zero share to 0 % or a partial one to 100 %."""
    if share is None:
        return "—"
    value = float(share) * 100
    if 0 < value < 0.5:
        return "<1 %"
    if 99.5 <= value < 100:
        return ">99 %"
    return f"{value:.0f} %"
