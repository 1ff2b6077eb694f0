"""Point-in-time correct feature frames for training and batch transform.

Each transaction in ``[start, end)`` gets exactly one row:

- batch features from the latest offline record whose event time is at or before the
  transaction time (a DuckDB ``ASOF`` join), or missing when there is none or its TTL has
  run out by the transaction time, the same rule the online store applies;
- streaming features by the serving definition (:mod:`fraud_detection.features.streaming`);
- request-time features from :func:`fraud_detection.features.request.add_request_features`.

``card_features_event_time`` and ``terminal_features_event_time`` record which batch record
each row used, so a row can be audited for leakage; they are not model features.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from fraud_detection.features.catalog import CARD_WEEKLY, TERMINAL_WEEKLY
from fraud_detection.features.request import add_request_features
from fraud_detection.features.spec import FeatureGroupSpec
from fraud_detection.features.streaming import streaming_features_sql
from fraud_detection.stores.base import FeatureStore

log = logging.getLogger(__name__)

TRANSACTION_COLUMNS = ["transaction_id", "tx_datetime", "card_id", "terminal_id", "tx_amount", "tx_fraud"]


def _join_columns(spec: FeatureGroupSpec, alias: str, prefix: str) -> str:
    columns = [f'{alias}."{f.name}"' for f in spec.value_features]
    columns.append(f'{alias}."{spec.event_time_feature}" AS {prefix}_event_time')
    return ", ".join(columns)


def build_feature_frame(source_database: Path, store: FeatureStore, start: datetime, end: datetime) -> pd.DataFrame:
    """Return the feature frame of every transaction with ``start <= tx_datetime < end``."""
    escaped = str(source_database).replace("'", "''")
    card_table = store.offline_table_sql(CARD_WEEKLY.name)
    terminal_table = store.offline_table_sql(TERMINAL_WEEKLY.name)
    with duckdb.connect() as connection:
        connection.execute(f"ATTACH '{escaped}' AS source (READ_ONLY)")
        connection.execute(
            "CREATE TEMP TABLE history AS SELECT transaction_id, tx_datetime, customer_id, terminal_id, "
            "tx_amount, tx_amount_cents, tx_fraud, epoch_ms(tx_datetime) AS ts_ms "
            "FROM source.transactions WHERE tx_datetime < $end",
            {"end": end},
        )
        connection.execute(
            f"CREATE TEMP TABLE scored AS SELECT * FROM ({streaming_features_sql('history')}) "
            "WHERE tx_datetime >= $start",
            {"start": start},
        )
        frame = connection.sql(
            f"""
            SELECT s.transaction_id, s.tx_datetime, s.customer_id AS card_id, s.terminal_id,
                   s.tx_amount, s.tx_fraud, s.ts_ms,
                   s.* EXCLUDE (transaction_id, tx_datetime, customer_id, terminal_id, tx_amount,
                                tx_amount_cents, tx_fraud, ts_ms),
                   {_join_columns(CARD_WEEKLY, 'c', 'card_features')},
                   {_join_columns(TERMINAL_WEEKLY, 't', 'terminal_features')}
            FROM scored s
            ASOF LEFT JOIN {card_table} c
                ON s.customer_id = c.card_id AND s.ts_ms / 1000.0 >= c.event_time
            ASOF LEFT JOIN {terminal_table} t
                ON s.terminal_id = t.terminal_id AND s.ts_ms / 1000.0 >= t.event_time
            ORDER BY s.tx_datetime, s.transaction_id
            """
        ).df()
    as_of = frame["ts_ms"].to_numpy(dtype="float64") / 1000.0
    _expire(frame, CARD_WEEKLY, "card_features_event_time", as_of)
    _expire(frame, TERMINAL_WEEKLY, "terminal_features_event_time", as_of)
    frame = frame.drop(columns=["ts_ms"])
    log.info("Built point-in-time features for %d transactions in [%s, %s)", len(frame), start, end)
    return add_request_features(frame)


def _expire(frame: pd.DataFrame, spec: FeatureGroupSpec, event_time_column: str, as_of: np.ndarray) -> None:
    """Blank the group's features, and its event time column, where the record is absent or past its TTL."""
    event_seconds = frame[event_time_column].to_numpy(dtype="float64", na_value=np.nan)
    unavailable = np.isnan(event_seconds)
    if spec.ttl is not None:
        unavailable |= as_of >= event_seconds + spec.ttl.total_seconds()
    frame[event_time_column] = frame[event_time_column].astype("float64").mask(unavailable)
    for feature in spec.value_features:
        column = frame[feature.name].astype("float64")
        frame[feature.name] = column.mask(unavailable)
