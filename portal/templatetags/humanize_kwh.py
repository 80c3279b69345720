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


@register.filter
def duration(seconds: float | str | None) -> str:
    """A span of time in the two largest units that say it: 0.8 s, 42 s, 3 min 5 s, 3 h 12 min, 163 d 1 h."""
    if seconds is None or seconds == "":  # "" is the template's missing value
        return "—"
    value = float(seconds)
    sign, value = ("-", -value) if value < 0 else ("", value)
    if value < 10:
        return f"{sign}{value:.1f} s"
    whole = round(value)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    first = next(index for index, (amount, _unit) in enumerate(units) if amount)
    shown = [f"{amount} {unit}" for amount, unit in units[first : first + 2] if amount]
    return sign + " ".join(shown)
