"""Window features against brute-force implementations, on random data (hypothesis)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_detection.data.source import TABLE_DDL
from fraud_detection.features import batch
from fraud_detection.features.catalog import CARD_WINDOWS_DAYS, LABELLED_WINDOWS_DAYS, TERMINAL_WINDOWS_DAYS
from fraud_detection.features.asof import asof_indices, latest_versions
from fraud_detection.features.streaming import WINDOW_MS, CardActivity, streaming_features, streaming_features_columns

DAY_MS = 86_400_000

# Events of a few cards over three days: (card, epoch ms, transaction id, cents).
events_strategy = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.integers(0, 3 * DAY_MS).map(lambda ms: ms - ms % 1000 if ms % 7 else ms),
        st.integers(0, 10_000),
        st.integers(0, 50_000),
    ),
    max_size=60,
    unique_by=lambda event: event[2],
)


def brute_force_streaming(events: list[tuple], card: int, t_ms: int) -> dict[str, float]:
    own = [(time, cents) for c, time, _, cents in events if c == card and time < t_ms]
    values = {}
    for label, window_ms in WINDOW_MS.items():
        inside = [cents for time, cents in own if time >= t_ms - window_ms]
        values[f"card_tx_count_{label}"] = float(len(inside))
        values[f"card_amount_sum_{label}"] = sum(inside) / 100.0
    latest = max((time for time, _ in own), default=None)
    values["card_seconds_since_last_tx"] = (t_ms - latest) / 1000.0 if latest is not None else math.nan
    return values


def same(left: dict, right: dict) -> bool:
    return left.keys() == right.keys() and all(
        left[k] == right[k] or (math.isnan(left[k]) and math.isnan(right[k])) for k in left
    )


@settings(max_examples=150, deadline=None)
@given(events=events_strategy, query_ms=st.integers(-DAY_MS, 4 * DAY_MS), card=st.integers(0, 2))
def test_state_features_match_brute_force(events, query_ms, card):
    activity = CardActivity()
    for c, time, transaction_id, cents in events:
        if c == card:
            activity.add((time, transaction_id, cents))

    assert same(streaming_features(activity, query_ms), brute_force_streaming(events, card, query_ms))


@settings(max_examples=150, deadline=None)
@given(events=events_strategy, lag_ms=st.integers(0, 2 * DAY_MS), card=st.integers(0, 2), offset_ms=st.integers(0, DAY_MS))
def test_pruned_state_keeps_needed_events(events, lag_ms, card, offset_ms):
    own = sorted((time, transaction_id, cents) for c, time, transaction_id, cents in events if c == card)
    full, pruned = CardActivity(), CardActivity()
    for event in own:
        full.add(event)
        pruned.add(event)
    cutoff = (own[-1][0] if own else 0) - lag_ms
    pruned.prune(cutoff)
    # Any request at or after cutoff + longest window gets the same features.
    query_ms = cutoff + max(WINDOW_MS.values()) + offset_ms

    assert same(streaming_features(pruned, query_ms), streaming_features(full, query_ms))


@settings(max_examples=150, deadline=None)
@given(events=events_strategy, in_time_order=st.booleans())
def test_vectorised_features_match_brute_force(events, in_time_order):
    # Events in time order take the radix-sort path, others the general one.
    if in_time_order:
        events = sorted(events, key=lambda event: event[1])
    cards = np.array([e[0] for e in events], dtype=np.int64)
    times = np.array([e[1] for e in events], dtype=np.int64)
    cents = np.array([e[3] for e in events], dtype=np.int64)

    columns = streaming_features_columns(cards, times, cents)

    for row, (card, time, transaction_id, _) in enumerate(events):
        actual = {name: float(values[row]) for name, values in columns.items()}
        assert same(actual, brute_force_streaming(events, card, time)), transaction_id


# Batch aggregates

transactions_strategy = st.lists(
    st.tuples(
        st.integers(0, 3),  # card
        st.integers(0, 3),  # terminal
        st.integers(0, 110 * 86_400 - 1),  # seconds after the history start
        st.integers(1, 90_000),  # cents
        st.integers(0, 1),  # label
    ),
    max_size=80,
)
HISTORY_START = datetime(2018, 1, 1)
WEEK_END = datetime(2018, 4, 16)


def _source(transactions) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute(TABLE_DDL)
    for index, (card, terminal, seconds, cents, label) in enumerate(transactions):
        connection.execute(
            "INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?, ?)",
            [index, HISTORY_START + timedelta(seconds=seconds), card, terminal, cents / 100, cents, label],
        )
    return connection


def _frame(transactions) -> pd.DataFrame:
    frame = pd.DataFrame(transactions, columns=["card", "terminal", "seconds", "cents", "label"])
    frame["time"] = [HISTORY_START + timedelta(seconds=int(s)) for s in frame["seconds"]]
    return frame


def _window(frame, days, delay=0):
    end = WEEK_END - timedelta(days=delay)
    return frame[(frame["time"] >= end - timedelta(days=days)) & (frame["time"] < end)]


def _close(actual, expected) -> bool:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        return actual is None or pd.isna(actual)
    return math.isclose(float(actual), float(expected), rel_tol=1e-12, abs_tol=1e-9)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transactions=transactions_strategy, delay=st.integers(0, 10))
def test_card_aggregates_match_brute_force(transactions, delay):
    frame = _frame(transactions)
    with _source(transactions) as connection:
        records = batch.card_aggregates(connection, WEEK_END, delay).set_index("card_id")

    active = set(_window(frame, 97)["card"])
    assert set(records.index) == active
    for card in active:
        own = frame[frame["card"] == card]
        record = records.loc[card]
        for days in CARD_WINDOWS_DAYS:
            cents = _window(own, days)["cents"]
            assert record[f"card_tx_count_{days}d"] == len(cents)
            assert _close(record[f"card_amount_sum_{days}d"], cents.sum() / 100)
            assert _close(record[f"card_amount_mean_{days}d"], cents.mean() / 100 if len(cents) else None)
            assert _close(record[f"card_amount_max_{days}d"], cents.max() / 100 if len(cents) else None)
        cents_30 = _window(own, 30)["cents"] / 100
        assert _close(record["card_amount_std_30d"], cents_30.std(ddof=1) if len(cents_30) >= 2 else None)
        assert record["card_terminal_count_30d"] == _window(own, 30)["terminal"].nunique()
        assert record["card_fraud_count_30d"] == _window(own, 30, delay)["label"].sum()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transactions=transactions_strategy, delay=st.integers(0, 10))
def test_terminal_aggregates_honour_label_delay(transactions, delay):
    frame = _frame(transactions)
    with _source(transactions) as connection:
        records = batch.terminal_aggregates(connection, WEEK_END, delay).set_index("terminal_id")

    for terminal in set(_window(frame, 97)["terminal"]):
        own = frame[frame["terminal"] == terminal]
        record = records.loc[terminal]
        for days in TERMINAL_WINDOWS_DAYS:
            assert record[f"terminal_tx_count_{days}d"] == len(_window(own, days))
        for days in LABELLED_WINDOWS_DAYS:
            # Only transactions at least `delay` days before the week end have known labels.
            labelled = _window(own, days, delay)
            assert record[f"terminal_labelled_tx_count_{days}d"] == len(labelled)
            assert record[f"terminal_fraud_count_{days}d"] == labelled["label"].sum()
            expected_rate = labelled["label"].mean() if len(labelled) else None
            assert _close(record[f"terminal_fraud_rate_{days}d"], expected_rate)


@settings(max_examples=100, deadline=None)
@given(
    record_ids=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20),
    query_ids=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20),
)
def test_asof_large_identifiers_match_brute_force(record_ids, query_ids):
    # Identifiers far apart or negative take the sorted path instead of the lookup table.
    record_times = np.arange(len(record_ids), dtype=np.int64) * 10
    query_times = np.arange(len(query_ids), dtype=np.int64) * 7

    found = asof_indices(np.array(record_ids), record_times, np.array(query_ids), query_times)

    for row, (entity, time) in enumerate(zip(query_ids, query_times)):
        candidates = [i for i, (e, t) in enumerate(zip(record_ids, record_times)) if e == entity and t <= time]
        expected = max(candidates, key=lambda i: (record_times[i], i)) if candidates else -1
        assert found[row] == expected


def brute_force_asof(record_ids, record_times, query_ids, query_times) -> list[int]:
    expected = []
    for entity, time in zip(query_ids, query_times):
        candidates = [i for i, (e, t) in enumerate(zip(record_ids, record_times)) if e == entity and t <= time]
        expected.append(max(candidates, key=lambda i: (record_times[i], i)) if candidates else -1)
    return expected


# Few entities and few distinct times, so records share (entity, time) pairs and queries fall
# before, between, on and after them, and on entities without records.
records_strategy = st.lists(st.tuples(st.integers(0, 5), st.sampled_from([0, 10, 20, 30])), max_size=30)
queries_strategy = st.lists(st.tuples(st.integers(0, 7), st.integers(-5, 40)), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(records=records_strategy, queries=queries_strategy, use_grid=st.booleans())
def test_asof_both_paths_match_brute_force(records, queries, use_grid):
    record_ids = [entity for entity, _ in records]
    record_times = [time for _, time in records]
    query_ids = [entity for entity, _ in queries]
    query_times = [time for _, time in queries]

    found = asof_indices(
        np.array(record_ids, dtype=np.int64), np.array(record_times, dtype=np.int64),
        np.array(query_ids), np.array(query_times), use_grid=use_grid,
    )

    assert found.tolist() == brute_force_asof(record_ids, record_times, query_ids, query_times)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from([0.0, 1.5, 3.0]), st.integers(0, 3), st.integers(0, 3), st.booleans()),
        max_size=30,
    )
)
def test_latest_versions_match_brute_force(rows):
    identifiers, times, writes, invocations, deleted = (np.array(column) for column in zip(*rows)) if rows else [np.array([])] * 5

    latest = latest_versions(identifiers, times, [writes, invocations], deleted)

    expected = []
    for key in {(row[0], row[1]) for row in rows}:
        versions = [i for i, row in enumerate(rows) if (row[0], row[1]) == key]
        newest = max(versions, key=lambda i: (rows[i][2], rows[i][3], i))
        if not rows[newest][4]:
            expected.append(newest)
    assert latest.tolist() == sorted(expected)
