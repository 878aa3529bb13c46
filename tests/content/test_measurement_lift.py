"""Lift of a variant over its control: interval against hand and published values, verdicts."""

from __future__ import annotations

import math

import pytest

from content.measurement import HOLDOUT, Lift, compare_arms, difference_interval
from content.measurement_selectors import ArmResult, Metrics, choose_control

Z95 = 1.959963984540054


def _wilson_by_hand(successes: int, trials: int) -> tuple[float, float]:
    p = successes / trials
    denominator = 1 + Z95**2 / trials
    centre = (p + Z95**2 / (2 * trials)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / trials + Z95**2 / (4 * trials**2)) / denominator
    return centre - half, centre + half


def test_difference_interval_matches_a_hand_computed_newcombe_interval() -> None:
    # 30 of 200 variant visitors converted, 15 of 200 held-out visitors.
    p1, p2 = 30 / 200, 15 / 200
    l1, u1 = _wilson_by_hand(30, 200)
    l2, u2 = _wilson_by_hand(15, 200)
    low = (p1 - p2) - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = (p1 - p2) + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)

    interval = difference_interval(30, 200, 15, 200)

    assert interval.low == pytest.approx(low, abs=1e-9)
    assert interval.high == pytest.approx(high, abs=1e-9)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.0128, 0.1381)


def test_difference_interval_matches_newcombes_published_examples() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10.
    first = difference_interval(56, 70, 48, 80)
    second = difference_interval(9, 10, 3, 10)

    assert (round(first.low, 4), round(first.high, 4)) == (0.0524, 0.3339)
    assert (round(second.low, 4), round(second.high, 4)) == (0.1705, 0.8090)


def test_a_clear_win_says_the_variant_converts_better_with_points_and_interval() -> None:
    lift = compare_arms(
        metric="conversion",
        arm="b",
        control=HOLDOUT,
        successes=30,
        visitors=200,
        control_successes=15,
        control_visitors=200,
        min_visitors=100,
    )

    assert lift.verdict == "variant b converts better: +7.5 points (95% CI +1.3 to +13.8)"
    assert lift.significant
    assert lift.difference == pytest.approx(0.075)
    assert lift.relative == pytest.approx(1.0)


def test_a_clear_loss_says_worse_and_clicks_have_their_own_words() -> None:
    conversion = compare_arms(
        metric="conversion",
        arm="a",
        control="",
        successes=15,
        visitors=200,
        control_successes=30,
        control_visitors=200,
        min_visitors=100,
    )
    clicks = compare_arms(
        metric="click",
        arm="a",
        control="",
        successes=15,
        visitors=200,
        control_successes=30,
        control_visitors=200,
        min_visitors=100,
    )

    assert conversion.verdict == "variant a converts worse: -7.5 points (95% CI -13.8 to -1.3)"
    assert clicks.verdict == "variant a gets fewer clicks: -7.5 points (95% CI -13.8 to -1.3)"
    assert conversion.relative == pytest.approx(-0.5)


def test_an_interval_spanning_zero_is_not_yet_significant() -> None:
    lift = compare_arms(
        metric="conversion",
        arm="b",
        control=HOLDOUT,
        successes=22,
        visitors=200,
        control_successes=18,
        control_visitors=200,
        min_visitors=100,
    )

    assert lift.verdict.startswith("not yet significant: +2.0 points (95% CI ")
    assert not lift.significant
    assert lift.interval is not None
    assert lift.interval.low < 0 < lift.interval.high


def test_below_the_minimum_sample_there_is_no_verdict_and_no_interval() -> None:
    def lift(control_visitors: int) -> Lift:
        return compare_arms(
            metric="conversion",
            arm="b",
            control=HOLDOUT,
            successes=60,
            visitors=200,
            control_successes=1,
            control_visitors=control_visitors,
            min_visitors=100,
        )

    short = lift(99)
    enough = lift(100)

    assert short.verdict == "not enough data yet: the holdout has 99 visitors, 100 are needed"
    assert short.interval is None
    assert short.difference is None
    assert enough.verdict.startswith("variant b converts better: +29.0 points")


def test_no_control_conversions_gives_no_relative_lift_but_a_difference() -> None:
    lift = compare_arms(
        metric="conversion",
        arm="b",
        control=HOLDOUT,
        successes=10,
        visitors=100,
        control_successes=0,
        control_visitors=100,
        min_visitors=100,
    )

    assert lift.relative is None
    assert lift.difference == pytest.approx(0.1)
    assert lift.verdict.startswith("variant b converts better: +10.0 points")


def _arm(name: str, visitors: int) -> ArmResult:
    return ArmResult(arm=name, metrics=Metrics(visitors=visitors))


@pytest.mark.parametrize(
    ("arms", "control"),
    [
        ([_arm("a", 10), _arm("b", 50), _arm(HOLDOUT, 5)], HOLDOUT),
        ([_arm("", 10), _arm("b", 50)], ""),
        ([_arm("a", 10), _arm("b", 50)], "b"),
        ([_arm("a", 50), _arm("b", 50)], "a"),
        ([_arm("", 50)], None),
        ([], None),
    ],
)
def test_control_is_the_holdout_else_the_plain_block_else_the_most_seen_arm(
    arms: list[ArmResult], control: str | None
) -> None:
    assert choose_control(arms) == control
