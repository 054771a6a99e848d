"""Rate arithmetic and the bounded history: made-up times, no clock."""

from __future__ import annotations

import pytest

from vtap.stats.rates import History, Point, Rate, Reading, growth, rate, restarted


def test_rate_is_the_difference_over_the_time_between_readings() -> None:
    got = rate(Reading(10.0, 100, 10_000), Reading(12.0, 300, 30_000))
    assert got == Rate(pps=100.0, bps=80_000.0)


def test_first_reading_uses_the_entry_average_once_it_is_old_enough() -> None:
    assert rate(None, Reading(5.0, 20, 2_000, age=2.0)) == Rate(10.0, 8_000.0)
    # a brand-new entry with one packet is no burst: no estimate yet
    assert rate(None, Reading(5.0, 1, 100, age=0.01)) == Rate()
    assert rate(None, Reading(5.0, 1, 100)) == Rate()


def test_no_elapsed_time_keeps_the_previous_rate() -> None:
    last = Rate(7.0, 700.0)
    assert rate(Reading(3.0, 1, 1), Reading(3.0, 9, 9), last) == last
    assert rate(Reading(3.0, 1, 1), Reading(2.0, 9, 9), last) == last  # clock stepped back


def test_counters_that_went_down_belong_to_a_new_entry() -> None:
    before, after = Reading(0.0, 1000, 100_000), Reading(1.0, 50, 5_000)
    assert restarted(before, after)
    assert growth(before, after) == (50, 5_000)
    assert rate(before, after) == Rate(50.0, 40_000.0)


def test_a_younger_entry_is_new_even_with_higher_counters() -> None:
    before, after = Reading(0.0, 10, 1_000, age=30.0), Reading(1.0, 40, 4_000, age=0.5)
    assert restarted(before, after)
    assert growth(before, after) == (40, 4_000)
    assert not restarted(Reading(0.0, 10, 1_000, age=1.0), Reading(1.0, 12, 1_200, age=2.0))


def test_history_keeps_the_last_points_oldest_first() -> None:
    history = History(3)
    for i in range(5):
        history.append(Point(float(i), i * 10.0, i * 100.0))
    assert len(history) == 3
    assert history.points() == [
        Point(2.0, 20.0, 200.0),
        Point(3.0, 30.0, 300.0),
        Point(4.0, 40.0, 400.0),
    ]


def test_history_before_it_is_full() -> None:
    history = History(4)
    history.append(Point(1.0, 1.0, 8.0))
    assert history.points() == [Point(1.0, 1.0, 8.0)]
    with pytest.raises(ValueError):
        History(0)
