"""Point-in-time training sets and weekly backfills on a small synthetic data set."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraud_detection.data.source import connect, load_transactions_csv, week_boundaries
from fraud_detection.data.synthetic import generate_transactions, write_transactions_csv
from fraud_detection.features import batch
from fraud_detection.features.catalog import BATCH_FEATURE_GROUPS, CARD_WEEKLY, TERMINAL_WEEKLY
from fraud_detection.features.point_in_time import build_feature_frame
from fraud_detection.stores.local import LocalFeatureStore

LABEL_DELAY_DAYS = 7
PERIOD = (datetime(2018, 4, 9), datetime(2018, 5, 14))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("pit")
    frame = generate_transactions(n_customers=120, n_terminals=240, days=42, seed=3)
    database = root / "source.duckdb"
    load_transactions_csv(write_transactions_csv(frame, root / "tx.csv"), database, root / "quarantine")
    return database


def _store(root, name):
    store = LocalFeatureStore(root / name, root / name / "quarantine")
    for spec in BATCH_FEATURE_GROUPS:
        store.create_feature_group(spec)
    return store


def _ingest_week(store, database, week_end):
    with connect(database) as connection:
        cards = batch.card_aggregates(connection, week_end, LABEL_DELAY_DAYS)
        terminals = batch.terminal_aggregates(connection, week_end, LABEL_DELAY_DAYS)
    key = f"week-ending-{week_end:%Y-%m-%d}"
    store.ingest(CARD_WEEKLY.name, cards, ingest_id=key)
    store.ingest(TERMINAL_WEEKLY.name, terminals, ingest_id=key)


def _weeks():
    return week_boundaries(datetime(2018, 4, 1), datetime(2018, 5, 12))


@pytest.fixture(scope="module")
def training(source, tmp_path_factory):
    store = _store(tmp_path_factory.mktemp("stores"), "in-order")
    for week_end in _weeks():
        _ingest_week(store, source, week_end)
    return build_feature_frame(source, store, *PERIOD)


def test_one_row_per_transaction(source, training):
    with connect(source) as connection:
        expected = connection.execute(
            "SELECT count(*) FROM transactions WHERE tx_datetime >= ? AND tx_datetime < ?", list(PERIOD)
        ).fetchone()[0]

    assert len(training) == expected
    assert training["transaction_id"].is_unique


@pytest.mark.parametrize("column", ["card_features_event_time", "terminal_features_event_time"])
def test_no_feature_record_from_future(training, column):
    tx_seconds = (training["tx_datetime"] - pd.Timestamp("1970-01-01")).dt.total_seconds()
    used = training[column].notna()

    assert used.mean() > 0.9
    assert (training.loc[used, column] <= tx_seconds[used]).all()


@pytest.mark.parametrize("column", ["card_features_event_time", "terminal_features_event_time"])
def test_feature_record_within_ttl(training, column):
    tx_seconds = (training["tx_datetime"] - pd.Timestamp("1970-01-01")).dt.total_seconds()
    used = training[column].notna()

    assert (tx_seconds[used] < training.loc[used, column] + CARD_WEEKLY.ttl.total_seconds()).all()


def test_record_is_latest_week_boundary(training):
    # Active cards get a record every Monday, so a row with one uses the Monday at or before it.
    times = training["tx_datetime"]
    monday = times.dt.normalize() - pd.to_timedelta(times.dt.day_of_week, unit="D")
    expected = (monday - pd.Timestamp("1970-01-01")).dt.total_seconds()
    used = training["card_features_event_time"].notna()

    np.testing.assert_array_equal(training.loc[used, "card_features_event_time"].to_numpy(), expected[used].to_numpy())


def test_labels_used_are_known_at_transaction_time(source, training):
    # Fraud counts of the record at E come from transactions before E - delay <= t - delay.
    with connect(source) as connection:
        history = connection.execute("SELECT terminal_id, tx_datetime, tx_fraud FROM transactions").df()
    sample = training.dropna(subset=["terminal_features_event_time"]).sample(200, random_state=1)
    for row in sample.itertuples():
        labels_known_until = pd.Timestamp(row.terminal_features_event_time, unit="s") - pd.Timedelta(days=LABEL_DELAY_DAYS)
        window = history[
            (history["terminal_id"] == row.terminal_id)
            & (history["tx_datetime"] >= labels_known_until - pd.Timedelta(days=30))
            & (history["tx_datetime"] < labels_known_until)
        ]
        assert labels_known_until <= row.tx_datetime - pd.Timedelta(days=LABEL_DELAY_DAYS)
        assert row.terminal_fraud_count_30d == window["tx_fraud"].sum()


def test_rerun_week_gives_identical_offline_data(source, tmp_path):
    once = _store(tmp_path, "once")
    twice = _store(tmp_path, "twice")
    for week_end in _weeks():
        _ingest_week(once, source, week_end)
        _ingest_week(twice, source, week_end)
        _ingest_week(twice, source, week_end)

    for spec in BATCH_FEATURE_GROUPS:
        pd.testing.assert_frame_equal(twice.read_offline(spec.name), once.read_offline(spec.name))


def test_out_of_order_backfill_matches_in_order(source, tmp_path):
    in_order = _store(tmp_path, "in-order")
    shuffled = _store(tmp_path, "shuffled")
    weeks = _weeks()
    for week_end in weeks:
        _ingest_week(in_order, source, week_end)
    assert len(weeks) == 7
    for week_end in [weeks[i] for i in (3, 0, 6, 5, 1, 4, 2, 0)]:
        _ingest_week(shuffled, source, week_end)

    for spec in BATCH_FEATURE_GROUPS:
        expected = in_order.read_offline(spec.name)
        pd.testing.assert_frame_equal(shuffled.read_offline(spec.name), expected)
        latest = expected.sort_values(spec.event_time_feature).groupby(spec.record_identifier).tail(1)
        identifiers = latest[spec.record_identifier].tolist()
        online = shuffled.get_records({spec.name: identifiers}, as_of=weeks[-1].timestamp())[spec.name]
        online_times = {key: record[spec.event_time_feature] for key, record in online.items()}
        assert online_times == dict(zip(identifiers, latest[spec.event_time_feature]))
