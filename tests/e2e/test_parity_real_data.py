"""Training/serving parity on a full week of the handbook's real transactions.

Every transaction of the week is scored through the serving path, from the online store after
a streaming replay. The replay delivers transactions shuffled within the allowed lateness and
repeats some of them. Each served feature vector must equal its training-set row exactly.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import numpy as np
import pytest

from fraud_detection.data.source import connect, load_transactions_csv
from fraud_detection.features import batch
from fraud_detection.features.catalog import CARD_WEEKLY, FEATURE_GROUPS, TERMINAL_WEEKLY, model_feature_names
from fraud_detection.features.point_in_time import build_feature_frame
from fraud_detection.features.request import feature_matrix
from fraud_detection.serving.online_features import TransactionRequest, build_online_feature_frame
from fraud_detection.stores.local import LocalFeatureStore
from fraud_detection.stream_processor import StreamProcessor, read_seed_history, read_transactions

pytestmark = pytest.mark.e2e

WEEK_START = datetime(2018, 7, 16)
WEEK_END = WEEK_START + timedelta(days=7)
LABEL_DELAY_DAYS = 7
LATENESS_SECONDS = 300


@pytest.fixture(scope="module")
def week(handbook_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("parity-real")
    database = root / "source.duckdb"
    load_transactions_csv(handbook_data, database, root / "quarantine")
    store = LocalFeatureStore(root / "feature-store", root / "quarantine")
    for spec in FEATURE_GROUPS:
        store.create_feature_group(spec)
    # Records older than two weeks are past their TTL for every transaction of the week.
    for boundary in (WEEK_START - timedelta(days=14), WEEK_START - timedelta(days=7), WEEK_START):
        with connect(database) as connection:
            cards = batch.card_aggregates(connection, boundary, LABEL_DELAY_DAYS)
            terminals = batch.terminal_aggregates(connection, boundary, LABEL_DELAY_DAYS)
        store.ingest(CARD_WEEKLY.name, cards, ingest_id=f"{boundary:%F}")
        store.ingest(TERMINAL_WEEKLY.name, terminals, ingest_id=f"{boundary:%F}")
    training = build_feature_frame(database, store, WEEK_START, WEEK_END)
    return database, store, training


def _delivery(transactions, seed: int):
    """Deliver each transaction up to the allowed lateness late, and one in twenty twice."""
    generator = random.Random(seed)
    lateness_ms = LATENESS_SECONDS * 1000
    delivery = [(t.time_ms + generator.uniform(0, lateness_ms), t) for t in transactions]
    repeated = generator.sample(transactions, len(transactions) // 20)
    delivery += [(t.time_ms + generator.uniform(0, lateness_ms), t) for t in repeated]
    delivery.sort(key=lambda item: item[0])
    return delivery


def _chunks(delivery, span_ms: float):
    """Group deliveries into slices of at most ``span_ms`` of delivery time."""
    chunk, chunk_start = [], None
    for key, transaction in delivery:
        if chunk and key - chunk_start >= span_ms:
            yield chunk
            chunk = []
        if not chunk:
            chunk_start = key
        chunk.append(transaction)
    if chunk:
        yield chunk


def test_every_transaction_of_week_matches_training(week):
    database, store, training = week
    transactions = read_transactions(database, WEEK_START, WEEK_END)
    # Six hours of extra retention cover the longest quiet gap between deliveries, so no event
    # a due transaction needs is pruned before the transaction is scored.
    processor = StreamProcessor(
        store, allowed_lateness_seconds=LATENESS_SECONDS, micro_batch_size=10**9, retention_seconds=86_400 + 6 * 3600
    )
    processor.seed(read_seed_history(database, WEEK_START, timedelta(milliseconds=processor.retention_ms)))
    rows = {transaction_id: index for index, transaction_id in enumerate(training["transaction_id"])}
    expected = feature_matrix(training)
    names = model_feature_names()
    pending = sorted(transactions, key=lambda t: (t.time_ms, t.transaction_id))
    mismatches, checked = [], 0
    for chunk in _chunks(_delivery(transactions, seed=7), span_ms=30 * 60 * 1000):
        processor.process(chunk)
        horizon = processor.watermark_ms
        due = []
        while pending and pending[0].time_ms <= horizon:
            due.append(pending.pop(0))
        if not due:
            continue
        requests = [
            TransactionRequest(
                t.transaction_id,
                int(training["card_id"].iat[rows[t.transaction_id]]),
                int(training["terminal_id"].iat[rows[t.transaction_id]]),
                float(training["tx_amount"].iat[rows[t.transaction_id]]),
                training["tx_datetime"].iat[rows[t.transaction_id]].to_pydatetime(),
            )
            for t in due
        ]
        served = feature_matrix(build_online_feature_frame(store, requests))
        for request, actual in zip(requests, served):
            training_row = expected[rows[request.transaction_id]]
            differs = ~((training_row == actual) | (np.isnan(training_row) & np.isnan(actual)))
            mismatches += [
                f"transaction {request.transaction_id}, {names[i]}: training {training_row[i]!r}, serving {actual[i]!r}"
                for i in np.flatnonzero(differs)
            ]
            checked += 1

    assert processor.stats.too_late == 0
    assert processor.stats.duplicates == len(transactions) // 20
    assert checked >= len(transactions) - 200, "too few transactions were scored"
    assert mismatches[:20] == []
