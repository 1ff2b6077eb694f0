"""Which weeks the main job runs, given the weekly DAG's start and end dates."""

from __future__ import annotations

import os
from datetime import datetime

import pytest

from fraud_airflow.dag_defaults import date_from_env
from fraud_airflow.main_job import scheduled_weeks

WEEKS = [datetime(2018, 4, 2), datetime(2018, 4, 9), datetime(2018, 4, 16)]


def test_unset_start_begins_at_data(monkeypatch):
    monkeypatch.delenv("FRAUD_DETECTION_START_DATE", raising=False)
    monkeypatch.delenv("FRAUD_DETECTION_END_DATE", raising=False)

    assert scheduled_weeks(WEEKS) == WEEKS
    assert os.environ["FRAUD_DETECTION_START_DATE"] == "2018-04-02"


def test_start_and_end_dates_filter_weeks(monkeypatch):
    monkeypatch.setenv("FRAUD_DETECTION_START_DATE", "2018-04-09")
    monkeypatch.setenv("FRAUD_DETECTION_END_DATE", "2018-04-09")

    assert scheduled_weeks(WEEKS) == [datetime(2018, 4, 9)]


def test_start_after_data_names_setting(monkeypatch):
    monkeypatch.setenv("FRAUD_DETECTION_START_DATE", "2019-01-07")
    monkeypatch.delenv("FRAUD_DETECTION_END_DATE", raising=False)

    with pytest.raises(RuntimeError, match="FRAUD_DETECTION_START_DATE 2019-01-07"):
        scheduled_weeks(WEEKS)


def test_invalid_date_names_variable(monkeypatch):
    monkeypatch.setenv("FRAUD_DETECTION_START_DATE", "yesterday")

    with pytest.raises(ValueError, match="Invalid FRAUD_DETECTION_START_DATE 'yesterday'"):
        date_from_env("FRAUD_DETECTION_START_DATE")
