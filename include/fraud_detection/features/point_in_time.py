"""Point-in-time correct feature frames for training and batch transform.

Each transaction in ``[start, end)`` gets exactly one row:

- batch features from the latest offline record whose event time is at or before the
  transaction time (an as-of join). They are missing when there is no such record or its TTL
  has run out by the transaction time, the same rule the online store applies;
- streaming features by the serving definition (:mod:`fraud_detection.features.streaming`);
- request-time features from :func:`fraud_detection.features.request.request_feature_columns`.

``card_features_event_time`` and ``terminal_features_event_time`` record which batch record
each row used, so a row can be audited for leakage; they are not model features.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from fraud_detection.features.asof import asof_indices, latest_versions
from fraud_detection.features.catalog import CARD_WEEKLY, TERMINAL_WEEKLY
from fraud_detection.features.request import request_feature_columns
from fraud_detection.features.spec import FeatureGroupSpec
from fraud_detection.features.streaming import streaming_features_columns
from fraud_detection.stores.base import FeatureStore

log = logging.getLogger(__name__)

TRANSACTION_COLUMNS = ["transaction_id", "tx_datetime", "card_id", "terminal_id", "tx_amount", "tx_fraud"]


def _numpy_columns(relation: duckdb.DuckDBPyRelation) -> dict[str, np.ndarray]:
    """Fetch a relation as numpy arrays, with SQL NULL as NaN in numeric columns."""
    # One chunk per column, so a column without nulls converts to numpy without a copy.
    table = relation.to_arrow_table().combine_chunks()
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        if column.null_count:
            columns[name] = column.to_numpy(zero_copy_only=False).astype("float64")
        else:
            columns[name] = column.to_numpy()
    return columns


def build_feature_frame(source_database: Path, store: FeatureStore, start: datetime, end: datetime) -> pd.DataFrame:
    """Return the feature frame of every transaction with ``start <= tx_datetime < end``."""
    escaped = str(source_database).replace("'", "''")
    with duckdb.connect() as connection:
        connection.execute(f"ATTACH '{escaped}' AS source (READ_ONLY)")
        # The whole history before `end`: windows and the time since the last transaction look back.
        # The columns are NOT NULL, so DuckDB writes them straight into numpy arrays.
        relation = connection.sql(
            "SELECT transaction_id, tx_datetime, customer_id AS card_id, terminal_id, tx_amount, "
            "tx_amount_cents, tx_fraud, epoch_ms(tx_datetime) AS ts_ms "
            f"FROM source.transactions WHERE tx_datetime < TIMESTAMP '{end:%Y-%m-%d %H:%M:%S.%f}'"
        )
        history = {name: np.asarray(values) for name, values in relation.fetchnumpy().items()}
    streaming = streaming_features_columns(history["card_id"], history["ts_ms"], history["tx_amount_cents"])
    # Rows in time order, then by id. The datastore usually stores them that way already.
    order = np.lexsort((history["transaction_id"], history["ts_ms"]))
    if np.array_equal(order, np.arange(len(order))):
        order = slice(None)
    first = int(np.searchsorted(history["ts_ms"][order], _epoch_ms(start), side="left"))
    rows = order[first:] if isinstance(order, np.ndarray) else slice(first, None)
    columns = {name: history[name][rows] for name in TRANSACTION_COLUMNS}
    columns.update({name: values[rows] for name, values in streaming.items()})
    ts_ms = history["ts_ms"][rows]
    columns.update(batch_feature_columns(store, columns["card_id"], columns["terminal_id"], ts_ms))
    columns.update(request_feature_columns(columns))
    # Arrow's split_blocks keeps one block per column, so no array is copied to consolidate them.
    frame = pa.table(columns).to_pandas(split_blocks=True)
    log.info("Built point-in-time features for %d transactions in [%s, %s)", len(frame), start, end)
    return frame


def batch_feature_columns(
    store: FeatureStore, card_ids: np.ndarray, terminal_ids: np.ndarray, ts_ms: np.ndarray
) -> dict[str, np.ndarray]:
    """Join transactions (card, terminal, epoch milliseconds) to both batch groups' offline records.

    The two groups are joined in two threads, because DuckDB and numpy release the GIL for most
    of the work.
    """

    def join(spec: FeatureGroupSpec, entities: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
        table_sql = store.offline_table_sql(spec.name, all_versions=True)
        with duckdb.connect() as connection:
            rows = _numpy_columns(connection.sql(f"SELECT * FROM {table_sql}"))
        return _batch_columns(spec, _latest_records(spec, rows), entities, ts_ms, prefix)

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="batch-features") as pool:
        card = pool.submit(join, CARD_WEEKLY, card_ids, "card_features")
        terminal = pool.submit(join, TERMINAL_WEEKLY, terminal_ids, "terminal_features")
        return {**card.result(), **terminal.result()}


def _epoch_ms(moment: datetime) -> int:
    return int((pd.Timestamp(moment) - pd.Timestamp("1970-01-01")) // pd.Timedelta(milliseconds=1))


def _latest_records(spec: FeatureGroupSpec, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keep the latest version of each offline record and drop deleted ones, as the offline store's SQL does."""
    keep = latest_versions(
        rows[spec.record_identifier],
        rows[spec.event_time_feature],
        [rows["write_time"].view(np.int64), rows["api_invocation_time"].view(np.int64)],
        rows["is_deleted"],
    )
    if len(keep) == len(rows[spec.record_identifier]):
        return rows
    return {name: values[keep] for name, values in rows.items()}


def _batch_columns(
    spec: FeatureGroupSpec, records: dict[str, np.ndarray], entities: np.ndarray, ts_ms: np.ndarray, prefix: str
) -> dict[str, np.ndarray]:
    """Join each transaction to its group's latest record at or before it, honouring the TTL."""
    event_time = _with_missing_row(records[spec.event_time_feature])
    record_ms = np.round(event_time[:-1] * 1000).astype(np.int64)
    index = asof_indices(records[spec.record_identifier], record_ms, entities, ts_ms)
    if spec.ttl is not None:
        # The online store's rule: a record is current while as_of < event_time + ttl.
        expired = ts_ms.astype("float64") / 1000.0 >= event_time[index] + spec.ttl.total_seconds()
        index[expired] = -1
    # Index -1 picks the missing-value row appended to every column, so no mask pass is needed.
    columns = {f"{prefix}_event_time": event_time[index]}
    columns.update({f.name: _with_missing_row(records[f.name])[index] for f in spec.value_features})
    return columns


def _with_missing_row(values: np.ndarray) -> np.ndarray:
    return np.append(values.astype("float64", copy=False), np.nan)
