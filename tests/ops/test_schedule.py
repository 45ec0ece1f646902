"""Deforum-style schedules: parsing, hand-computed values, interpolation, error positions."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeloom.errors import ValidationError
from nodeloom.ops.schedule import ScheduleError, evaluate_expression, parse_schedule, schedule_values


def test_linear_between_keyframes_matches_hand_values():
    v = schedule_values("0:(1.0), 30:(1.02)", 31)
    assert v[0] == pytest.approx(1.0)
    assert v[15] == pytest.approx(1.01)
    assert v[10] == pytest.approx(1.0 + 0.02 * 10 / 30)
    assert v[30] == pytest.approx(1.02)


def test_values_hold_before_first_and_after_last_keyframe():
    v = schedule_values("10:(2), 20:(4)", 30)
    assert v[:11].tolist() == [2.0] * 11
    assert v[15] == pytest.approx(3.0)
    assert v[20:].tolist() == [4.0] * 10


def test_step_interpolation_holds_previous_value():
    v = schedule_values("0:(0), 10:(5), 20:(1)", 21, interpolation="step")
    assert v[9] == 0 and v[10] == 5 and v[19] == 5 and v[20] == 1


def test_cubic_interpolation_is_a_natural_spline():
    v = schedule_values("0:(0), 10:(10), 20:(0)", 21, interpolation="cubic")
    # natural spline through (0,0) (10,10) (20,0): y''(10)/2 = -0.15, slope at 0 = 1.5,
    # cubic term -0.005 → y(5) = 1.5·5 − 0.005·125 = 6.875 (and symmetric at 15)
    assert v[10] == pytest.approx(10.0)
    assert v[5] == pytest.approx(6.875)
    assert v[15] == pytest.approx(6.875)


def test_easing_curves_pass_through_keyframes_and_shape_the_middle():
    lin = schedule_values("0:(0), 10:(1)", 11)
    ein = schedule_values("0:(0), 10:(1)", 11, interpolation="ease_in")
    eio = schedule_values("0:(0), 10:(1)", 11, interpolation="ease_in_out")
    assert ein[0] == 0 and ein[10] == 1
    assert ein[5] == pytest.approx(0.125)  # u³ at u = 0.5
    assert ein[2] < lin[2]
    assert eio[5] == pytest.approx(0.5)


def test_expressions_in_t_and_max_f_are_evaluated_every_frame():
    v = schedule_values("0:(sin(t/10)), 20:(2)", 25)
    assert v[5] == pytest.approx(math.sin(0.5))
    assert v[19] == pytest.approx(math.sin(1.9))
    assert v[22] == 2.0
    w = schedule_values("0:(t/max_f)", 11)
    assert w[5] == pytest.approx(0.5)
    assert schedule_values("0:(2^3)", 1)[0] == 8.0  # numexpr's ^ is power


def test_frame_can_be_an_expression_in_max_f():
    keys = parse_schedule("0:(0), max_f:(10)", max_frames=21)
    assert [k.frame for k in keys] == [0, 20]
    assert schedule_values("0:(0), max_f:(10)", 21)[10] == pytest.approx(5.0)


def test_bare_number_means_a_constant():
    assert schedule_values("1.5", 4).tolist() == [1.5] * 4


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("0:(1.0), 30:(1.02", 12, "unclosed"),
        ("0:(1.0) 30:(2)", 8, "expected `,`"),
        ("0:(foo*2)", 3, "unknown name `foo`"),
        ("0:(1), 10:(2 + bar)", 15, "unknown name `bar`"),
        ("0:(1), 5 (2)", 7, "no `:`"),
        ("0: 1", 3, "expected `(`"),
        ("0:()", 3, "empty value"),
        ("0:(__import__('os'))", 3, "unknown function"),
    ],
)
def test_errors_point_at_the_position(text, position, fragment):
    with pytest.raises(ScheduleError) as info:
        parse_schedule(text, max_frames=40)
    err = info.value
    assert err.position == position
    assert fragment in err.message
    assert f"position {position}" in err.message
    assert err.details.splitlines()[1] == " " * position + "^"
    assert err.to_dict()["extra_info"]["position"] == position


def test_attribute_access_is_refused():
    with pytest.raises(ScheduleError, match="unsupported syntax"):
        evaluate_expression("t.real", {"t": 1.0})


def test_bad_arguments_are_named():
    with pytest.raises(ValidationError, match="`max_frames` must be ≥ 1"):
        schedule_values("0:(1)", 0)
    with pytest.raises(ValidationError, match="`interpolation` must be one of"):
        schedule_values("0:(1)", 5, interpolation="bouncy")


def test_later_duplicate_keyframe_wins():
    assert schedule_values("0:(1), 0:(3)", 2).tolist() == [3.0, 3.0]


def test_division_by_zero_is_reported_at_the_expression():
    with pytest.raises(ScheduleError) as info:
        schedule_values("0:(1), 5:(1/(t-6))", 10)
    assert info.value.position == 10
    assert np.isfinite(schedule_values("0:(1/(t+1))", 3)).all()


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(0, 40), st.floats(-100, 100, allow_nan=False), min_size=1, max_size=6))
def test_linear_schedules_pass_through_keys_and_stay_within_them(keys):
    text = ", ".join(f"{f}:({v!r})" for f, v in sorted(keys.items()))
    values = schedule_values(text, 41)
    for f, v in keys.items():
        assert values[f] == pytest.approx(v)
    assert values.min() >= min(keys.values()) - 1e-9 and values.max() <= max(keys.values()) + 1e-9
