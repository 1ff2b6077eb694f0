"""Training/serving parity: the endpoint's feature vector equals the training row exactly.

A small synthetic data set goes through the real pieces: the source datastore, weekly
aggregates in the local feature store, the streaming processor, the point-in-time training
frame and the online serving path.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import numpy as np
import pytest

from fraud_detection.data.source import connect, load_transactions_csv, week_boundaries
from fraud_detection.data.synthetic import generate_transactions, write_transactions_csv
from fraud_detection.features import batch
from fraud_detection.features.catalog import CARD_WEEKLY, FEATURE_GROUPS, TERMINAL_WEEKLY, model_feature_names
from fraud_detection.features.point_in_time import build_feature_frame
from fraud_detection.features.request import feature_matrix
from fraud_detection.serving.online_features import TransactionRequest, build_online_feature_frame
from fraud_detection.stores.local import LocalFeatureStore
from fraud_detection.stream_processor import StreamProcessor, read_seed_history, read_transactions

WEEK_END = datetime(2018, 4, 23)
SCORED = (WEEK_END, WEEK_END + timedelta(days=1))
LATENESS_SECONDS = 300


@pytest.fixture
def world(tmp_path):
    # Each test gets its own stores: a stream's records must not meet another stream's.
    root = tmp_path
    frame = generate_transactions(n_customers=150, n_terminals=300, days=24, seed=11)
    database = root / "source.duckdb"
    load_transactions_csv(write_transactions_csv(frame, root / "tx.csv"), database, root / "quarantine")
    store = LocalFeatureStore(root / "feature-store", root / "quarantine")
    for spec in FEATURE_GROUPS:
        store.create_feature_group(spec)
    for boundary in week_boundaries(datetime(2018, 4, 1), WEEK_END - timedelta(days=1)):
        with connect(database) as connection:
            store.ingest(CARD_WEEKLY.name, batch.card_aggregates(connection, boundary, 7), ingest_id=f"{boundary:%F}")
            store.ingest(TERMINAL_WEEKLY.name, batch.terminal_aggregates(connection, boundary, 7), ingest_id=f"{boundary:%F}")
    training = build_feature_frame(database, store, *SCORED).set_index("transaction_id")
    return database, store, training


def _serving_row(store, transaction, training) -> np.ndarray:
    row = training.loc[transaction.transaction_id]
    request = TransactionRequest(
        transaction.transaction_id, int(row["card_id"]), int(row["terminal_id"]), float(row["tx_amount"]),
        row["tx_datetime"].to_pydatetime(),
    )
    return feature_matrix(build_online_feature_frame(store, [request]))[0]


def _mismatches(expected: np.ndarray, actual: np.ndarray, transaction_id: int) -> list[str]:
    names = model_feature_names()
    return [
        f"transaction {transaction_id}, {names[i]}: training {expected[i]!r}, serving {actual[i]!r}"
        for i in range(len(names))
        if not (expected[i] == actual[i] or (np.isnan(expected[i]) and np.isnan(actual[i])))
    ]


def _processor(database, store) -> StreamProcessor:
    processor = StreamProcessor(store, allowed_lateness_seconds=LATENESS_SECONDS, micro_batch_size=1)
    retention = timedelta(milliseconds=processor.retention_ms)
    processor.seed(read_seed_history(database, SCORED[0], retention))
    return processor


def test_in_order_stream_matches_training(world):
    database, store, training = world
    processor = _processor(database, store)
    expected_rows = feature_matrix(training.reset_index())
    mismatches = []
    for index, transaction in enumerate(read_transactions(database, *SCORED)):
        before = _serving_row(store, transaction, training)
        processor.process([transaction])
        after = _serving_row(store, transaction, training)
        expected = expected_rows[training.index.get_loc(transaction.transaction_id)]
        mismatches += _mismatches(expected, before, transaction.transaction_id)
        mismatches += _mismatches(expected, after, transaction.transaction_id)
    assert index + 1 == len(training)
    assert mismatches == []


def test_shuffled_stream_with_duplicates_matches_training(world):
    database, store, training = world
    processor = _processor(database, store)
    transactions = read_transactions(database, *SCORED)
    generator = random.Random(5)
    # Each transaction arrives up to the allowed lateness after its event time, some twice.
    delivery = [(t.time_ms + generator.uniform(0, LATENESS_SECONDS * 1000), t) for t in transactions]
    delivery += [(key + 1.0, t) for key, t in generator.sample(delivery, len(delivery) // 10)]
    delivery.sort(key=lambda item: item[0])
    pending = sorted(transactions, key=lambda t: t.time_ms)
    expected_rows = feature_matrix(training.reset_index())
    mismatches, checked = [], 0
    for _, transaction in delivery:
        # Score every transaction whose predecessors have all arrived, before this one is applied.
        horizon = max(processor.max_time_ms or 0, transaction.time_ms) - LATENESS_SECONDS * 1000
        while pending and pending[0].time_ms <= horizon:
            due = pending.pop(0)
            expected = expected_rows[training.index.get_loc(due.transaction_id)]
            mismatches += _mismatches(expected, _serving_row(store, due, training), due.transaction_id)
            checked += 1
        processor.process([transaction])
    assert processor.stats.too_late == 0
    assert processor.stats.duplicates == len(delivery) - len(transactions)
    assert checked > 0.9 * len(transactions)
    assert mismatches == []
