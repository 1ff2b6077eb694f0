"""Weekly per-card and per-terminal aggregates, computed from the source datastore.

A record for week end ``E`` aggregates transactions in ``[E - window, E)``. Fraud counts use
only labels known at ``E``: the labelled windows are ``[E - delay - window, E - delay)``.
Amounts are summed as integer cents, so the same week always yields bit-identical values.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from fraud_detection.features.catalog import (
    CARD_WEEKLY,
    CARD_WINDOWS_DAYS,
    ENTITY_LOOKBACK_DAYS,
    LABELLED_WINDOWS_DAYS,
    TERMINAL_WEEKLY,
    TERMINAL_WINDOWS_DAYS,
)

log = logging.getLogger(__name__)


def _timestamp(value: datetime) -> str:
    return f"TIMESTAMP '{value:%Y-%m-%d %H:%M:%S}'"


def _in_window(end: datetime, days: int, label_delay_days: int = 0) -> str:
    window_end = end - timedelta(days=label_delay_days)
    window_start = window_end - timedelta(days=days)
    return f"tx_datetime >= {_timestamp(window_start)} AND tx_datetime < {_timestamp(window_end)}"


def _active(week_end: datetime) -> str:
    lookback_start = week_end - timedelta(days=ENTITY_LOOKBACK_DAYS)
    return f"count(*) FILTER (WHERE tx_datetime >= {_timestamp(lookback_start)}) > 0"


def _history_start(week_end: datetime, label_delay_days: int) -> datetime:
    longest_labelled = max(LABELLED_WINDOWS_DAYS) + label_delay_days
    return week_end - timedelta(days=max(ENTITY_LOOKBACK_DAYS, longest_labelled))


def card_aggregates(connection: duckdb.DuckDBPyConnection, week_end: datetime, label_delay_days: int) -> pd.DataFrame:
    """Return one ``card-weekly-aggregates`` record per card active before ``week_end``."""
    parts = []
    for days in CARD_WINDOWS_DAYS:
        window = _in_window(week_end, days)
        parts += [
            f"count(*) FILTER (WHERE {window}) AS count_{days}",
            f"coalesce(sum(tx_amount_cents) FILTER (WHERE {window}), 0) AS cents_{days}",
            f"max(tx_amount_cents) FILTER (WHERE {window}) AS max_cents_{days}",
        ]
    window_30 = _in_window(week_end, 30)
    parts += [
        f"coalesce(sum(tx_amount_cents * tx_amount_cents) FILTER (WHERE {window_30}), 0) AS squares_30",
        f"count(DISTINCT terminal_id) FILTER (WHERE {window_30}) AS card_terminal_count_30d",
        f"count(*) FILTER (WHERE tx_fraud = 1 AND {_in_window(week_end, 30, label_delay_days)}) AS card_fraud_count_30d",
    ]
    sql = (
        f"SELECT customer_id AS card_id, {', '.join(parts)} FROM transactions "
        f"WHERE tx_datetime >= {_timestamp(_history_start(week_end, label_delay_days))} "
        f"AND tx_datetime < {_timestamp(week_end)} "
        f"GROUP BY customer_id "
        f"HAVING {_active(week_end)} "
        f"ORDER BY customer_id"
    )
    raw = connection.sql(sql).df()
    frame = pd.DataFrame({"card_id": raw["card_id"].astype("int64"), "event_time": float(_epoch(week_end))})
    for days in CARD_WINDOWS_DAYS:
        count = raw[f"count_{days}"].astype("int64")
        cents = raw[f"cents_{days}"].astype("float64")
        frame[f"card_tx_count_{days}d"] = count
        frame[f"card_amount_sum_{days}d"] = cents / 100.0
        frame[f"card_amount_mean_{days}d"] = (cents / count.where(count > 0)) / 100.0
        frame[f"card_amount_max_{days}d"] = raw[f"max_cents_{days}"].astype("float64") / 100.0
    frame["card_amount_std_30d"] = _sample_std(raw["count_30"], raw["cents_30"], raw["squares_30"])
    frame["card_terminal_count_30d"] = raw["card_terminal_count_30d"].astype("int64")
    frame["card_fraud_count_30d"] = raw["card_fraud_count_30d"].astype("int64")
    return frame[CARD_WEEKLY.feature_names]


def terminal_aggregates(
    connection: duckdb.DuckDBPyConnection, week_end: datetime, label_delay_days: int
) -> pd.DataFrame:
    """Return one ``terminal-weekly-aggregates`` record per terminal active before ``week_end``."""
    parts = [f"count(*) FILTER (WHERE {_in_window(week_end, d)}) AS terminal_tx_count_{d}d" for d in TERMINAL_WINDOWS_DAYS]
    window_30 = _in_window(week_end, 30)
    parts += [
        f"coalesce(sum(tx_amount_cents) FILTER (WHERE {window_30}), 0) AS cents_30",
        f"count(DISTINCT customer_id) FILTER (WHERE {window_30}) AS terminal_card_count_30d",
    ]
    for days in LABELLED_WINDOWS_DAYS:
        labelled = _in_window(week_end, days, label_delay_days)
        parts += [
            f"count(*) FILTER (WHERE {labelled}) AS terminal_labelled_tx_count_{days}d",
            f"count(*) FILTER (WHERE tx_fraud = 1 AND {labelled}) AS terminal_fraud_count_{days}d",
        ]
    sql = (
        f"SELECT terminal_id, {', '.join(parts)} FROM transactions "
        f"WHERE tx_datetime >= {_timestamp(_history_start(week_end, label_delay_days))} "
        f"AND tx_datetime < {_timestamp(week_end)} "
        f"GROUP BY terminal_id "
        f"HAVING {_active(week_end)} "
        f"ORDER BY terminal_id"
    )
    raw = connection.sql(sql).df()
    frame = pd.DataFrame({"terminal_id": raw["terminal_id"].astype("int64"), "event_time": float(_epoch(week_end))})
    for days in TERMINAL_WINDOWS_DAYS:
        frame[f"terminal_tx_count_{days}d"] = raw[f"terminal_tx_count_{days}d"].astype("int64")
    count_30 = frame["terminal_tx_count_30d"]
    frame["terminal_amount_mean_30d"] = (raw["cents_30"].astype("float64") / count_30.where(count_30 > 0)) / 100.0
    frame["terminal_card_count_30d"] = raw["terminal_card_count_30d"].astype("int64")
    for days in LABELLED_WINDOWS_DAYS:
        labelled = raw[f"terminal_labelled_tx_count_{days}d"].astype("int64")
        frauds = raw[f"terminal_fraud_count_{days}d"].astype("int64")
        frame[f"terminal_labelled_tx_count_{days}d"] = labelled
        frame[f"terminal_fraud_count_{days}d"] = frauds
        frame[f"terminal_fraud_rate_{days}d"] = frauds.astype("float64") / labelled.where(labelled > 0)
    return frame[TERMINAL_WEEKLY.feature_names]


def _sample_std(count: pd.Series, cents: pd.Series, squares: pd.Series) -> pd.Series:
    """Return the sample standard deviation in currency units from integer cent sums, NaN below two values."""
    n = count.astype("float64")
    total = cents.astype("float64")
    variance = (squares.astype("float64") - total * total / n) / (n - 1)
    variance = variance.where(n >= 2).clip(lower=0.0)
    return np.sqrt(variance) / 100.0


def _epoch(value: datetime) -> float:
    return (value - datetime(1970, 1, 1)).total_seconds()
