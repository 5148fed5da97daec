"""Known-answer tests of SUS ranking, round schedule and the unlabeled loss ramp (``nnunet_dumm.selection``)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from nnunet_dumm.selection import RoundSchedule, rank_cases, unlabeled_loss_weight

# --- rank_cases -----------------------------------------------------------------------------------------------


def test_rank_cases_ascending_by_uncertainty():
    assert rank_cases({"a": 0.3, "b": 0.1, "c": 0.2, "d": 0.0}) == ["d", "b", "c", "a"]


def test_rank_cases_breaks_ties_by_case_id():
    uncertainty = {"case_3": 0.5, "case_1": 0.5, "case_2": 0.1, "case_0": 0.5}
    assert rank_cases(uncertainty) == ["case_2", "case_0", "case_1", "case_3"]


def test_rank_cases_is_independent_of_insertion_order():
    items = [(f"c{i:02d}", round(i % 4 * 0.25, 2)) for i in range(20)]
    expected = rank_cases(dict(items))
    for seed in range(5):
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        assert rank_cases(dict(shuffled)) == expected
    assert expected[:5] == ["c00", "c04", "c08", "c12", "c16"]


def test_rank_cases_empty():
    assert rank_cases({}) == []


# --- RoundSchedule --------------------------------------------------------------------------------------------


def test_default_schedule_is_half_then_all_with_equal_shares():
    schedule = RoundSchedule()
    assert schedule.fractions == (0.5, 1.0)
    assert schedule.epoch_shares == (1.0, 1.0)
    assert schedule.num_rounds == 2
    assert schedule.round_start_epochs(10) == [0, 5]


def test_round_at_epoch_for_every_epoch_of_default_schedule():
    schedule = RoundSchedule()
    assert [schedule.round_at_epoch(e, 10) for e in range(10)] == [0] * 5 + [1] * 5


def test_round_starts_follow_unequal_shares():
    schedule = RoundSchedule(fractions=(0.25, 0.5, 1.0), epoch_shares=(1.0, 1.0, 2.0))
    assert schedule.round_start_epochs(100) == [0, 25, 50]
    assert schedule.round_at_epoch(0, 100) == 0
    assert schedule.round_at_epoch(24, 100) == 0
    assert schedule.round_at_epoch(25, 100) == 1
    assert schedule.round_at_epoch(49, 100) == 1
    assert schedule.round_at_epoch(50, 100) == 2
    assert schedule.round_at_epoch(99, 100) == 2


def test_single_round_covers_all_epochs():
    schedule = RoundSchedule(fractions=(1.0,), epoch_shares=(1.0,))
    assert schedule.round_start_epochs(7) == [0]
    assert {schedule.round_at_epoch(e, 7) for e in range(7)} == {0}


@pytest.mark.parametrize(
    ("fraction", "num_cases", "expected"),
    [(0.5, 10, 5), (0.5, 9, 5), (0.3, 10, 3), (0.31, 10, 4), (0.01, 10, 1), (0.01, 1, 1), (1.0, 7, 7)],
)
def test_select_takes_ceil_fraction_at_least_one_as_prefix(fraction, num_cases, expected):
    schedule = RoundSchedule(fractions=(fraction,), epoch_shares=(1.0,))
    ranking = [f"case_{i}" for i in range(num_cases)]
    selected = schedule.select(ranking, 0)
    assert len(selected) == expected
    assert selected == ranking[:expected]


def test_select_per_round_of_default_schedule():
    schedule = RoundSchedule()
    ranking = ["e", "b", "a", "d", "c"]
    assert schedule.select(ranking, 0) == ["e", "b", "a"]  # ceil(2.5) = 3
    assert schedule.select(ranking, 1) == ranking
    assert isinstance(schedule.select(tuple(ranking), 1), list)


@pytest.mark.parametrize(
    ("fractions", "shares"),
    [
        ((1.0, 0.5), (1.0, 1.0)),  # decreasing
        ((0.0, 1.0), (1.0, 1.0)),  # fraction 0
        ((0.5, 1.5), (1.0, 1.0)),  # fraction > 1
        ((-0.5, 1.0), (1.0, 1.0)),
        ((0.5, 1.0), (1.0,)),  # length mismatch
        ((0.5,), (1.0, 1.0)),
        ((), ()),  # no rounds
        ((0.5, 1.0), (1.0, 0.0)),  # non-positive share
        ((0.5, 1.0), (-1.0, 1.0)),
    ],
)
def test_invalid_schedules_raise(fractions, shares):
    with pytest.raises(ValueError):
        RoundSchedule(fractions=fractions, epoch_shares=shares)


def test_equal_fractions_are_allowed():
    assert RoundSchedule(fractions=(0.5, 0.5, 1.0), epoch_shares=(1.0, 1.0, 1.0)).num_rounds == 3


# --- unlabeled_loss_weight ------------------------------------------------------------------------------------


def test_ramp_starts_at_exp_minus_five():
    assert unlabeled_loss_weight(0, 100, lambda_max=2.0, rampup_fraction=0.2) == pytest.approx(2.0 * math.exp(-5))


def test_ramp_known_midpoint():
    # rampup over 20 epochs; epoch 10 -> t = 0.5 -> exp(-5 / 4)
    assert unlabeled_loss_weight(10, 100, 1.0, 0.2) == pytest.approx(math.exp(-1.25))


def test_ramp_reaches_lambda_max_at_and_after_its_end():
    for epoch in (20, 21, 50, 99, 100):
        assert unlabeled_loss_weight(epoch, 100, lambda_max=3.0, rampup_fraction=0.2) == 3.0
    assert unlabeled_loss_weight(19, 100, 3.0, 0.2) < 3.0


@pytest.mark.parametrize(("num_epochs", "rampup_fraction"), [(100, 0.2), (10, 0.3), (7, 1.0), (1000, 0.05)])
def test_ramp_is_monotone_non_decreasing(num_epochs, rampup_fraction):
    values = [unlabeled_loss_weight(e, num_epochs, 1.5, rampup_fraction) for e in range(num_epochs + 1)]
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert values[-1] == 1.5
    assert all(0 < v <= 1.5 for v in values)


def test_no_rampup_gives_lambda_max_always():
    assert [unlabeled_loss_weight(e, 10, 0.7, 0.0) for e in range(10)] == [0.7] * 10


def test_zero_lambda_max_gives_zero():
    assert [unlabeled_loss_weight(e, 10, 0.0, 0.5) for e in range(10)] == [0.0] * 10
