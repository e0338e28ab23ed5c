"""Course lengths as people write and read them: `10d`, `3w`, `4m`, `1y` into months (the file
contract), and months back into days, weeks or months."""

from __future__ import annotations

import pytest

from cno_pathway.patient.durations import duration_words, parse_duration


@pytest.mark.parametrize("text, months", [("4", 4.0), ("4m", 4.0), ("1y", 12.0), ("2w", 0.46),
                                          ("3 weeks", 0.69), ("10d", 0.3285), ("1.5", 1.5)])
def test_parse_duration(text, months):
    assert parse_duration(text) == pytest.approx(months, abs=1e-4)


@pytest.mark.parametrize("text", ["", "-1", "1e3", "0x10", "3 fortnights", "04", "1_000"])
def test_parse_duration_refuses_what_it_cannot_read(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("months, words", [
    (0.3, "9 days"), (0.5, "15 days"), (0.46, "2 weeks"), (0.69, "3 weeks"),
    (parse_duration("1d"), "1 day"), (parse_duration("10d"), "10 days"),
    (parse_duration("4w"), "4 weeks"), (0.95, "29 days"), (0.999, "30 days"),
    (0.001, "under 1 day"), (0, "0 days"),
    (1, "1 month"), (1.5, "1.5 months"), (6, "6 months"), (12, "12 months")])
def test_duration_words(months, words):
    assert duration_words(months) == words


@pytest.mark.parametrize("text", ["1d", "6d", "13d", "2w", "3w", "27d", "4w", "29d"])
def test_a_short_course_reads_back_as_written(text):
    words = duration_words(parse_duration(text))
    number, unit = words.split()
    assert unit.startswith("day" if text.endswith("d") else "week")
    assert number == text[:-1]
