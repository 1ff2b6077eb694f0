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

# First week boundary the weekly DAG processes. The default is the first Monday of the
# Fraud Detection Handbook's simulated data (2018-04-01 to 2018-09-30); set
# FRAUD_DETECTION_START_DATE for your own data.
START_DATE = pendulum.parse(os.environ.get("FRAUD_DETECTION_START_DATE", "2018-04-02"), tz="UTC")
# Last week boundary the weekly DAG schedules; unset, catchup runs up to today.
END_DATE = pendulum.parse(os.environ["FRAUD_DETECTION_END_DATE"], tz="UTC") if os.environ.get("FRAUD_DETECTION_END_DATE") else None

# Assets, so that the UI shows which DAG feeds which.
CARD_WEEKLY_ASSET = Asset(name="card-weekly-aggregates", uri="feature-group://card-weekly-aggregates")
TERMINAL_WEEKLY_ASSET = Asset(name="terminal-weekly-aggregates", uri="feature-group://terminal-weekly-aggregates")
VALIDATED_FEATURES_ASSET = Asset(name="validated-features", uri="feature-group://validated-features")
DEPLOYED_MODEL_ASSET = Asset(name="card-fraud-model", uri="model-package-group://card-fraud-xgboost")
