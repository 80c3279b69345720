from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdms.core.registers import RegisterSeries, advance, capacity_kwh, consumption, register_delta

# A 6-digit register with one decimal: 99999.9, then 0.0. Values are drawn in tenths, as it shows them.
CAPACITY = capacity_kwh(digits=6, decimals=1)
TENTHS = int(CAPACITY * 10)


def test_a_six_digit_one_decimal_register_wraps_at_one_hundred_thousand() -> None:
    assert CAPACITY == 100_000.0
    assert capacity_kwh(digits=5, decimals=0) == 100_000.0
    assert capacity_kwh(digits=8, decimals=2) == 1_000_000.0


def test_a_drop_from_near_the_top_to_near_zero_is_a_rollover_with_the_energy_across_it() -> None:
    step = register_delta(99_999.5, 0.7, capacity=CAPACITY, expected=1.2)
    assert step.rolled_over
    assert step.kwh == pytest.approx(1.2)


def test_a_drop_that_disagrees_with_the_interval_energy_is_backwards() -> None:
    step = register_delta(99_999.5, 0.7, capacity=CAPACITY, expected=40.0)
    assert step.backwards
    assert step.kwh is None


def test_a_drop_in_the_middle_of_the_register_is_backwards_even_without_the_interval_energy() -> None:
    assert register_delta(52_000.0, 51_990.0, capacity=CAPACITY).backwards
    assert register_delta(70_000.0, 3.0, capacity=CAPACITY).backwards


def test_a_register_that_never_wraps_calls_every_drop_backwards() -> None:
    assert register_delta(99_999.5, 0.7, capacity=None).backwards


def test_rounding_below_a_watt_hour_is_not_a_step_backwards() -> None:
    step = register_delta(100.0004, 100.0, capacity=CAPACITY)
    assert not step.backwards
    assert step.kwh == 0.0


def test_an_estimate_carried_forward_wraps_like_the_meter() -> None:
    assert advance(99_999.0, 2.5, capacity=CAPACITY) == pytest.approx(1.5)
    assert advance(99_999.0, 2.5, capacity=None) == pytest.approx(100_001.5)


def _registers(start_tenths: int, energies_tenths: list[int]) -> list[float]:
    values = [start_tenths]
    for energy in energies_tenths:
        values.append((values[-1] + energy) % TENTHS)
    return [v / 10 for v in values]


# Interval energies up to 50 kWh (far below the wrap window); starts anywhere, often just below the top.
energies = st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=60)
starts = st.one_of(
    st.integers(min_value=0, max_value=TENTHS - 1), st.integers(min_value=TENTHS - 3000, max_value=TENTHS - 1)
)


@given(start=starts, true_energies=energies)
def test_consumption_across_rollovers_is_the_sum_of_the_true_interval_energies(
    start: int, true_energies: list[int]
) -> None:
    series = RegisterSeries(_registers(start, true_energies), CAPACITY)
    total, backwards = consumption([series])
    assert backwards == 0
    assert total == pytest.approx(sum(true_energies) / 10, abs=1e-6)


@given(start=starts, true_energies=energies)
def test_with_the_interval_energies_known_every_rollover_is_still_recognised(
    start: int, true_energies: list[int]
) -> None:
    series = RegisterSeries(_registers(start, true_energies), CAPACITY, expected=[e / 10 for e in true_energies])
    total, backwards = consumption([series])
    assert backwards == 0
    assert total == pytest.approx(sum(true_energies) / 10, abs=1e-6)


@given(
    old_start=starts,
    new_start=st.integers(min_value=0, max_value=TENTHS - 1),
    true_energies=energies,
    cut=st.integers(min_value=0, max_value=60),
    new_digits=st.sampled_from([(6, 1), (5, 0), (7, 2)]),
)
def test_consumption_across_wraps_and_an_exchange_is_the_sum_of_the_true_interval_energies(
    old_start: int, new_start: int, true_energies: list[int], cut: int, new_digits: tuple[int, int]
) -> None:
    """The old meter runs to its final register, the new one from its initial one (another size)."""
    cut = min(cut, len(true_energies))
    before, after = true_energies[:cut], true_energies[cut:]
    new_capacity = capacity_kwh(digits=new_digits[0], decimals=new_digits[1])
    new_tenths = int(new_capacity * 10)
    new_registers = [(new_start % new_tenths) / 10]
    for energy in after:
        new_registers.append(((round(new_registers[-1] * 10) + energy) % new_tenths) / 10)
    total, backwards = consumption(
        [RegisterSeries(_registers(old_start, before), CAPACITY), RegisterSeries(new_registers, new_capacity)]
    )
    assert backwards == 0
    assert total == pytest.approx(sum(true_energies) / 10, abs=1e-6)


@given(start=st.integers(min_value=10_000, max_value=TENTHS - 20_000), drop=st.integers(min_value=100, max_value=9_000))
def test_a_true_backwards_step_is_never_counted_as_consumption(start: int, drop: int) -> None:
    registers = [start / 10, (start - drop) / 10]
    total, backwards = consumption([RegisterSeries(registers, CAPACITY)])
    assert backwards == 1
    assert total == 0.0
