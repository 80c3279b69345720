"""Who lives behind a meter: the household and installation the load model draws from."""

from __future__ import annotations

import random
from dataclasses import dataclass

# Mean household consumption in France is about 4.5 MWh a year (12 kWh a day); a person adds
# about a kWh a day on top of the fridge, standby and lighting.
BASE_LOAD_W_PER_PERSON = 45.0
DWELLINGS = ("apartment", "house")


@dataclass(frozen=True)
class MeterProfile:
    serial: str
    household_size: int  # people
    dwelling: str  # "apartment" or "house"
    electric_heating: bool
    has_solar: bool
    solar_capacity_kw: float  # peak (kWc); 0 without solar
    nominal_voltage_v: float = 230.0
    nominal_frequency_hz: float = 50.0
    rated_current_a: float = 60.0
    feeder: str = ""  # meters on one feeder share its voltage profile
    initial_register_import_kwh: float = 0.0
    initial_register_export_kwh: float = 0.0

    @property
    def base_load_w(self) -> float:
        """Always-on load: fridge, standby, ventilation."""
        return 90.0 + BASE_LOAD_W_PER_PERSON * self.household_size + (40.0 if self.dwelling == "house" else 0.0)

    @property
    def heating_w(self) -> float:
        """Electric heating at full demand (a cold winter night)."""
        if not self.electric_heating:
            return 0.0
        return 2500.0 if self.dwelling == "house" else 1400.0


def profile_for(
    serial: str,
    *,
    seed: int,
    has_solar: bool | None = None,
    solar_capacity_kw: float | None = None,
    solar_share: float = 0.15,
    nominal_voltage_v: float = 230.0,
    nominal_frequency_hz: float = 50.0,
    rated_current_a: float = 60.0,
    feeder: str = "",
) -> MeterProfile:
    """The same (serial, seed) always gives the same household.

    has_solar comes from the meter registry when known; otherwise solar_share of meters get panels.
    """
    rng = random.Random(f"profile:{seed}:{serial}")
    household_size = rng.choices([1, 2, 3, 4, 5], weights=[35, 33, 14, 12, 6])[0]
    dwelling = rng.choices(DWELLINGS, weights=[45, 55])[0]
    electric_heating = rng.random() < 0.35
    if has_solar is None:
        has_solar = rng.random() < solar_share
    else:
        rng.random()  # keep later draws independent of where has_solar came from
    if has_solar and not solar_capacity_kw:
        solar_capacity_kw = rng.choice([3.0, 3.0, 4.5, 6.0, 9.0]) if dwelling == "house" else rng.choice([1.5, 3.0])
    return MeterProfile(
        serial=serial,
        household_size=household_size,
        dwelling=dwelling,
        electric_heating=electric_heating,
        has_solar=has_solar,
        solar_capacity_kw=float(solar_capacity_kw or 0.0) if has_solar else 0.0,
        nominal_voltage_v=nominal_voltage_v,
        nominal_frequency_hz=nominal_frequency_hz,
        rated_current_a=rated_current_a,
        feeder=feeder,
        initial_register_import_kwh=round(rng.uniform(2000.0, 40000.0), 3),
        initial_register_export_kwh=round(rng.uniform(100.0, 5000.0), 3) if has_solar else 0.0,
    )
