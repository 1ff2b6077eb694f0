"""Defaults shared by the project's DAGs: owner, retries, start date and assets."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset

OWNER = "fraud-ml"

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
}



def date_from_env(name: str, default: str | None = None) -> pendulum.DateTime | None:
    """Return the UTC date in environment variable ``name`` (ISO 8601), ``default`` when unset."""
    text = os.environ.get(name) or default
    if text is None:
        return None
    try:
        return pendulum.parse(text, tz="UTC")
    except ValueError as error:
        raise ValueError(f"Invalid {name} {text!r}: use an ISO 8601 date such as 2018-04-02 ({error}).") from None


# First week boundary the weekly DAG processes. The default is the first Monday of the
# Fraud Detection Handbook's simulated data (2018-04-01 to 2018-09-30); set
# FRAUD_DETECTION_START_DATE for your own data.
START_DATE = date_from_env("FRAUD_DETECTION_START_DATE", "2018-04-02")
# Last week boundary the weekly DAG schedules; unset, catchup runs up to today.
END_DATE = date_from_env("FRAUD_DETECTION_END_DATE")

# Assets, so that the UI shows which DAG feeds which.
CARD_WEEKLY_ASSET = Asset(name="card-weekly-aggregates", uri="feature-group://card-weekly-aggregates")
TERMINAL_WEEKLY_ASSET = Asset(name="terminal-weekly-aggregates", uri="feature-group://terminal-weekly-aggregates")
VALIDATED_FEATURES_ASSET = Asset(name="validated-features", uri="feature-group://validated-features")
DEPLOYED_MODEL_ASSET = Asset(name="card-fraud-model", uri="model-package-group://card-fraud-xgboost")
