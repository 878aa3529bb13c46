from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segments.rules.durations import MAX_DURATION, DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("48h", timedelta(hours=48)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(days=14)),
        (" 7 d ", timedelta(days=7)),
        ("0048h", timedelta(hours=48)),
        ("36500d", timedelta(days=36500)),
        ("3153600000s", timedelta(days=36500)),
    ],
)
def test_parse_duration_reads_a_whole_number_and_a_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


NOT_A_DURATION = "is not a duration; write a whole number and a unit: s, m, h, d or w (e.g. 48h)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", f"'' {NOT_A_DURATION}"),
        ("48", f"'48' {NOT_A_DURATION}"),
        ("h", f"'h' {NOT_A_DURATION}"),
        ("1.5h", f"'1.5h' {NOT_A_DURATION}"),
        ("-1h", f"'-1h' {NOT_A_DURATION}"),
        ("48 hours", f"'48 hours' {NOT_A_DURATION}"),
        ("1y", f"'1y' {NOT_A_DURATION}"),
        ("48H", f"'48H' {NOT_A_DURATION}"),
        ("1h30m", f"'1h30m' {NOT_A_DURATION}"),
        ("0h", "a duration must be longer than zero"),
        ("000s", "a duration must be longer than zero"),
        ("36501d", "a duration must be at most 36500d (100 years)"),
        ("5215w", "a duration must be at most 36500d (100 years)"),
        ("99999999999w", "a duration must be at most 36500d (100 years)"),
        # More digits than int() converts by default: still a DurationError.
        ("9" * 5000 + "h", "a duration must be at most 36500d (100 years)"),
    ],
)
def test_parse_duration_rejects_what_is_not_a_positive_bounded_duration(
    text: str, message: str
) -> None:
    with pytest.raises(DurationError) as excinfo:
        parse_duration(text)

    assert str(excinfo.value) == message


def test_leading_zeros_do_not_count_against_the_length_limit() -> None:
    assert parse_duration("0" * 5000 + "1h") == timedelta(hours=1)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=1), "1s"),
        (timedelta(seconds=90), "90s"),
        (timedelta(seconds=120), "2m"),
        (timedelta(minutes=30), "30m"),
        (timedelta(minutes=90), "90m"),
        (timedelta(hours=1), "1h"),
        (timedelta(hours=24), "24h"),
        (timedelta(hours=48), "48h"),
        (timedelta(hours=60), "60h"),
        (timedelta(days=3), "3d"),
        (timedelta(days=7), "7d"),
        (timedelta(days=14), "14d"),
        (timedelta(days=3, hours=1), "73h"),
        (timedelta(days=36500), "36500d"),
    ],
)
def test_format_duration_prints_the_form_editors_write(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@pytest.mark.parametrize("text", ["90s", "30m", "1h", "48h", "3d", "7d", "30d"])
def test_editor_forms_print_back_unchanged(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@given(st.integers(min_value=1, max_value=int(MAX_DURATION.total_seconds())))
def test_every_whole_second_duration_survives_format_then_parse(seconds: int) -> None:
    value = timedelta(seconds=seconds)

    assert parse_duration(format_duration(value)) == value


def test_digits_other_than_ascii_are_not_a_duration() -> None:
    with pytest.raises(DurationError):
        parse_duration("\u0663h")
