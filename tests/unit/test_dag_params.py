"""Times typed into DAG params: UTC, offsets and bad input."""

from __future__ import annotations

from datetime import datetime

import pytest

from fraud_airflow.dag_params import parse_utc_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-09-24", datetime(2018, 9, 24)),
        ("2018-09-24T10:00:00Z", datetime(2018, 9, 24, 10)),
        ("2018-09-24T10:00:00+02:00", datetime(2018, 9, 24, 8)),
        (" 2018-09-24 10:00:00 ", datetime(2018, 9, 24, 10)),
    ],
)
def test_time_read_as_utc(text, expected):
    assert parse_utc_time("start", text) == expected


def test_empty_param_is_none():
    assert parse_utc_time("start", "") is None


def test_invalid_time_names_param():
    with pytest.raises(ValueError, match="Invalid param start '20/04/2018': use an ISO 8601 time"):
        parse_utc_time("start", "20/04/2018")
