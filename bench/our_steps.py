"""Benchmark steps that run our code, each started by bench/harness.py in a process of its own.

Usage: ``.venv/bin/python bench/our_steps.py JOB.json``. The job's ``step`` names a function of
:data:`STEPS`. The job file also carries the step's inputs and the path of the JSON result.
Every step times only its measured work (``seconds``) and reports set-up, such as reading its
inputs, under other keys. With ``"profile": true`` a step also runs the measured work under
cProfile and returns the functions with the largest cumulative time.
"""

from __future__ import annotations

import cProfile
import io
import json
import logging
import pstats
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (bench/ is not a package)

from fraud_detection.config import Settings  # noqa: E402
from fraud_detection.data.source import connect, load_transactions_csv, transaction_time_range, week_boundaries  # noqa: E402
from fraud_detection.features import batch  # noqa: E402
from fraud_detection.features.catalog import CARD_RECENT_ACTIVITY, CARD_WEEKLY, TERMINAL_WEEKLY  # noqa: E402
from fraud_detection.features.point_in_time import batch_feature_columns, build_feature_frame  # noqa: E402
from fraud_detection.pipelines.weekly import stage_weekly_aggregates, week_key  # noqa: E402
from fraud_detection.stores.local import LocalFeatureStore  # noqa: E402

log = logging.getLogger("bench.our_steps")

PROFILE_LINES = 25


class Profiler:
    """Run measured work under cProfile when the job requests it, and keep the report."""

    def __init__(self, enabled: bool):
        self.profile = cProfile.Profile() if enabled else None
        self.report = ""

    @contextmanager
    def measure(self) -> Iterator[None]:
        if self.profile is not None:
            self.profile.enable()
        try:
            yield
        finally:
            if self.profile is not None:
                self.profile.disable()

    def finish(self) -> dict[str, Any]:
        if self.profile is None:
            return {}
        buffer = io.StringIO()
        pstats.Stats(self.profile, stream=buffer).sort_stats("cumulative").print_stats(PROFILE_LINES)
        return {"profile": buffer.getvalue()}


def _settings(job: dict[str, Any]) -> Settings:
    return Settings(home=Path(job["home"]), label_delay_days=job.get("label_delay_days", 7))


def _open_store(settings: Settings, root: str | None = None) -> LocalFeatureStore:
    return LocalFeatureStore(Path(root) if root else settings.home / "feature-store", settings.quarantine_root)


def _transaction_count(settings: Settings) -> int:
    with connect(settings.source_database) as connection:
        return connection.execute("SELECT count(*) FROM transactions").fetchone()[0]


# Set-up steps.


def generate_synthetic(job: dict[str, Any]) -> dict[str, Any]:
    """Generate a synthetic data set with data/synthetic.py and write it as CSV."""
    from fraud_detection.data.synthetic import generate_transactions, write_transactions_csv

    started = time.perf_counter()
    transactions = generate_transactions(
        n_customers=job["cards"], n_terminals=job["terminals"], days=job["days"], start=job["start"], seed=job["seed"]
    )
    generated = time.perf_counter()
    write_transactions_csv(transactions, job["csv_path"])
    return {
        "rows": len(transactions),
        "cards_with_transactions": int(transactions["CUSTOMER_ID"].nunique()),
        "terminals_with_transactions": int(transactions["TERMINAL_ID"].nunique()),
        "fraud_rate": float(transactions["TX_FRAUD"].mean()),
        "first": str(transactions["TX_DATETIME"].min()),
        "last": str(transactions["TX_DATETIME"].max()),
        "generate_seconds": generated - started,
        "write_csv_seconds": time.perf_counter() - generated,
    }


def load_source(job: dict[str, Any]) -> dict[str, Any]:
    """Load the transactions CSV into the source datastore, as the main job does."""
    settings = _settings(job)
    started = time.perf_counter()
    loaded = load_transactions_csv(Path(job["csv_path"]), settings.source_database, settings.quarantine_root)
    seconds = time.perf_counter() - started
    with connect(settings.source_database) as connection:
        cards, terminals = connection.execute(
            "SELECT count(DISTINCT customer_id), count(DISTINCT terminal_id) FROM transactions"
        ).fetchone()
    return {
        "seconds": seconds,
        "rows_loaded": loaded.rows_loaded,
        "rows_quarantined": loaded.rows_quarantined,
        "cards": cards,
        "terminals": terminals,
        "first": str(loaded.first_transaction),
        "last": str(loaded.last_transaction),
    }


# Weekly aggregates and ingestion.


def weekly_aggregates(job: dict[str, Any]) -> dict[str, Any]:
    """Compute both batch groups' records for every week, and ingest or stage them.

    ``mode`` is ``compute`` (compute only), ``ingest`` (compute, then ingest each week into a new
    local feature store's online and offline stores) or ``stage`` (compute and write the
    weekly job's staging Parquet files).
    """
    settings = _settings(job)
    mode = job["mode"]
    first, last = transaction_time_range(settings.source_database)
    weeks = week_boundaries(first, last)
    store = None
    if mode == "ingest":
        store = _open_store(settings, job.get("store_root"))
        for spec in (CARD_WEEKLY, TERMINAL_WEEKLY):
            store.create_feature_group(spec)

    profiler = Profiler(job.get("profile", False))
    records = {CARD_WEEKLY.name: 0, TERMINAL_WEEKLY.name: 0}
    compute_seconds = ingest_seconds = 0.0
    staged: list[dict[str, str]] = []
    started = time.perf_counter()
    with profiler.measure():
        if mode == "stage":
            for week_end in weeks:
                paths = stage_weekly_aggregates(settings, week_end)
                staged.append({"ingest_id": week_key(week_end), **paths})
                for name, path in paths.items():
                    records[name] += pq.read_metadata(path).num_rows
        else:
            with connect(settings.source_database) as connection:
                for week_end in weeks:
                    week_started = time.perf_counter()
                    frames = {
                        CARD_WEEKLY.name: batch.card_aggregates(connection, week_end, settings.label_delay_days),
                        TERMINAL_WEEKLY.name: batch.terminal_aggregates(connection, week_end, settings.label_delay_days),
                    }
                    computed = time.perf_counter()
                    compute_seconds += computed - week_started
                    for name, frame in frames.items():
                        records[name] += len(frame)
                        if store is not None:
                            store.ingest(name, frame, ingest_id=week_key(week_end))
                    ingest_seconds += time.perf_counter() - computed
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "weeks": len(weeks),
        "first_week_end": str(weeks[0]),
        "last_week_end": str(weeks[-1]),
        "records": records,
        "compute_seconds": compute_seconds,
        "ingest_seconds": ingest_seconds if store is not None else None,
        "staged": staged,
        **profiler.finish(),
    }


def _read_staged(staged: list[dict[str, str]]) -> list[tuple[str, str, pd.DataFrame]]:
    frames = []
    for week in staged:
        for name in (CARD_WEEKLY.name, TERMINAL_WEEKLY.name):
            frames.append((week["ingest_id"], name, pd.read_parquet(week[name])))
    return frames


def ingest_staged(job: dict[str, Any]) -> dict[str, Any]:
    """Ingest the staged weekly records, in week order, into a new local feature store.

    The staged files are read before the clock starts, so ``seconds`` covers ``ingest`` alone:
    row checks, the offline store's Parquet writes and the online store's upserts.
    """
    settings = _settings(job)
    store = _open_store(settings, job["store_root"])
    for spec in (CARD_WEEKLY, TERMINAL_WEEKLY):
        store.create_feature_group(spec)
    frames = _read_staged(job["staged"])
    target_stores = tuple(job["target_stores"])

    profiler = Profiler(job.get("profile", False))
    written = 0
    started = time.perf_counter()
    with profiler.measure():
        for ingest_id, name, frame in frames:
            written += store.ingest(name, frame, ingest_id=ingest_id, target_stores=target_stores).records_written
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "records": written,
        "rows_per_second": written / seconds,
        "ingest_calls": len(frames),
        "online_records": {name: store.count_online_records(name) for name in (CARD_WEEKLY.name, TERMINAL_WEEKLY.name)}
        if "online" in target_stores
        else None,
        **profiler.finish(),
    }


def stream_recent_activity(job: dict[str, Any]) -> dict[str, Any]:
    """Fill ``card-recent-activity`` by replaying the last day through the streaming processor."""
    from fraud_detection.stream_processor import StreamProcessor, read_seed_history, read_transactions

    settings = _settings(job)
    store = _open_store(settings, job["store_root"])
    store.create_feature_group(CARD_RECENT_ACTIVITY)
    _, last = transaction_time_range(settings.source_database)
    end = last + timedelta(seconds=1)
    start = end - timedelta(days=1)
    started = time.perf_counter()
    processor = StreamProcessor(store)
    processor.seed(read_seed_history(settings.source_database, start, timedelta(milliseconds=processor.retention_ms)))
    stats = processor.process(read_transactions(settings.source_database, start, end))
    return {
        "seconds": time.perf_counter() - started,
        "accepted": stats.accepted,
        "online_records": store.count_online_records(CARD_RECENT_ACTIVITY.name),
    }


# Point-in-time training sets.


def pit_feature_frame(job: dict[str, Any]) -> dict[str, Any]:
    """Build the full point-in-time feature frame of every transaction with ``build_feature_frame``."""
    settings = _settings(job)
    store = _open_store(settings, job.get("store_root"))
    first, last = transaction_time_range(settings.source_database)
    expected = _transaction_count(settings)

    profiler = Profiler(job.get("profile", False))
    baseline = harness.current_rss_bytes()
    started = time.perf_counter()
    with profiler.measure():
        frame = build_feature_frame(settings.source_database, store, first, last + timedelta(seconds=1))
    seconds = time.perf_counter() - started

    # A point-in-time join must return exactly one row per input transaction.
    assert len(frame) == expected, f"build_feature_frame returned {len(frame)} rows for {expected} transactions"
    assert frame["transaction_id"].is_unique, "build_feature_frame returned a transaction more than once"
    return {
        "seconds": seconds,
        "rows": len(frame),
        "transactions": expected,
        "columns": len(frame.columns),
        "rss_before_bytes": baseline,
        **profiler.finish(),
    }


def pit_batch_features(job: dict[str, Any]) -> dict[str, Any]:
    """Join every transaction to both batch groups' offline records with ``batch_feature_columns``.

    The transactions (card, terminal, time) are read before the clock starts, as Feast gets its
    entity DataFrame in memory. The clock covers the join and the DataFrame of the entity and
    feature columns, the form Feast's ``to_df()`` returns. With ``output_path`` the joined columns are written to Parquet
    after the clock stops, for the comparison with Feast's result.
    """
    settings = _settings(job)
    store = _open_store(settings, job.get("store_root"))
    read_started = time.perf_counter()
    with connect(settings.source_database) as connection:
        inputs = connection.sql(
            "SELECT transaction_id, customer_id AS card_id, terminal_id, epoch_ms(tx_datetime) AS ts_ms "
            "FROM transactions ORDER BY tx_datetime, transaction_id"
        ).fetchnumpy()
    inputs = {name: np.asarray(values) for name, values in inputs.items()}
    read_seconds = time.perf_counter() - read_started

    profiler = Profiler(job.get("profile", False))
    baseline = harness.current_rss_bytes()
    started = time.perf_counter()
    with profiler.measure():
        columns = batch_feature_columns(store, inputs["card_id"], inputs["terminal_id"], inputs["ts_ms"])
        joined_at = time.perf_counter()
        # Feast's to_df() returns a DataFrame of the entity and feature columns, so ours does too.
        # The columns become its blocks as they are, without a copy.
        frame = pd.DataFrame({**inputs, **columns}, copy=False)
    seconds = time.perf_counter() - started
    to_frame_seconds = seconds - (joined_at - started)
    measured_peak = harness.peak_rss_bytes()

    expected = len(inputs["transaction_id"])
    lengths = {name: len(values) for name, values in columns.items()}
    assert set(lengths.values()) == {expected}, f"batch_feature_columns returned columns of lengths {lengths} for {expected} transactions"
    assert len(frame) == expected, f"the DataFrame has {len(frame)} rows for {expected} transactions"
    del frame

    card_found = int(np.count_nonzero(~np.isnan(columns["card_features_event_time"])))
    terminal_found = int(np.count_nonzero(~np.isnan(columns["terminal_features_event_time"])))
    if job.get("output_path"):
        # Missing values are written as Parquet nulls, not NaN, because DuckDB 2.0.1 assumes by
        # default that a Parquet float column contains no NaN and folds isnan() to false.
        arrays = {name: pa.array(values, from_pandas=True) for name, values in columns.items()}
        pq.write_table(pa.table({"transaction_id": inputs["transaction_id"], **arrays}), job["output_path"])
    return {
        "seconds": seconds,
        "rows": expected,
        "feature_columns": len(columns),
        "rows_with_card_record": card_found,
        "rows_with_terminal_record": terminal_found,
        "input_read_seconds": read_seconds,
        "to_frame_seconds": to_frame_seconds,
        "rss_before_bytes": baseline,
        "measured_peak_rss_bytes": measured_peak,
        **profiler.finish(),
    }


# The peer's inputs and the floors.


def export_feast_inputs(job: dict[str, Any]) -> dict[str, Any]:
    """Write Feast's inputs: each batch group's offline records and the entity rows, as Parquet.

    A feature view's file has the record identifier, ``event_timestamp`` (the record's event
    time as a UTC timestamp) and the value features. The entity file has every transaction's
    id, card, terminal and time as ``event_timestamp``.
    """
    settings = _settings(job)
    store = _open_store(settings, job.get("store_root"))
    started = time.perf_counter()
    counts = {}
    for spec, path in ((CARD_WEEKLY, job["card_path"]), (TERMINAL_WEEKLY, job["terminal_path"])):
        records = store.read_offline(spec.name)
        columns = {spec.record_identifier: records[spec.record_identifier].astype("int64")}
        columns["event_timestamp"] = pd.to_datetime(records[spec.event_time_feature], unit="s", utc=True).dt.as_unit("us")
        for feature in spec.value_features:
            columns[feature.name] = records[feature.name]
        pq.write_table(pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False), path)
        counts[spec.name] = len(records)
    escaped = str(job["entity_path"]).replace("'", "''")
    with connect(settings.source_database) as connection:
        connection.execute(
            "COPY (SELECT transaction_id, customer_id AS card_id, terminal_id, "
            "timezone('UTC', tx_datetime) AS event_timestamp FROM transactions ORDER BY tx_datetime, transaction_id) "
            f"TO '{escaped}' (FORMAT parquet)"
        )
        entity_rows = connection.execute(f"SELECT count(*) FROM read_parquet('{escaped}')").fetchone()[0]
    return {"seconds": time.perf_counter() - started, "records": counts, "entity_rows": entity_rows}


def bare_scan(job: dict[str, Any]) -> dict[str, Any]:
    """Read every transaction from the source datastore into pandas with one DuckDB query."""
    settings = _settings(job)
    started = time.perf_counter()
    with duckdb.connect(str(settings.source_database), read_only=True) as connection:
        frame = connection.sql("SELECT * FROM transactions").df()
    return {"seconds": time.perf_counter() - started, "rows": len(frame), "columns": len(frame.columns)}


def bare_asof(job: dict[str, Any]) -> dict[str, Any]:
    """Join the entity rows to both feature files with DuckDB's ASOF LEFT JOIN, into pandas.

    This is a floor, not an equivalent: it applies no TTL.
    """
    entity, card, terminal = (str(job[key]).replace("'", "''") for key in ("entity_path", "card_path", "terminal_path"))
    sql = (
        "SELECT e.*, c.* EXCLUDE (card_id, event_timestamp), t.* EXCLUDE (terminal_id, event_timestamp) "
        f"FROM read_parquet('{entity}') e "
        f"ASOF LEFT JOIN read_parquet('{card}') c ON e.card_id = c.card_id AND e.event_timestamp >= c.event_timestamp "
        f"ASOF LEFT JOIN read_parquet('{terminal}') t "
        "ON e.terminal_id = t.terminal_id AND e.event_timestamp >= t.event_timestamp"
    )
    started = time.perf_counter()
    with duckdb.connect() as connection:
        frame = connection.sql(sql).df()
    return {"seconds": time.perf_counter() - started, "rows": len(frame), "columns": len(frame.columns)}


def compare_with_feast(job: dict[str, Any]) -> dict[str, Any]:
    """Compare our batch features with Feast's, row by row on the transaction id, in DuckDB.

    Two values agree when both are NULL or they differ by at most 1e-9 relative. Both files
    must store missing values as NULL, not NaN. Returns Feast's row count, the transactions it lost or repeated, and per feature
    the rows that disagree.
    """
    ours, theirs = (str(job[key]).replace("'", "''") for key in ("ours_path", "feast_path"))
    features = [f.name for spec in (CARD_WEEKLY, TERMINAL_WEEKLY) for f in spec.value_features]

    def value(alias: str, name: str) -> str:
        return f'CAST({alias}."{name}" AS DOUBLE)'

    disagreements = []
    for name in features:
        a, b = value("o", name), value("f", name)
        disagreements.append(
            f"count(*) FILTER (WHERE ({a} IS NULL) <> ({b} IS NULL) "
            f"OR abs({a} - {b}) > 1e-9 * greatest(1.0, abs({a}))) AS \"{name}\""
        )
    with duckdb.connect() as connection:
        connection.execute(f"CREATE VIEW ours AS SELECT * FROM read_parquet('{ours}')")
        connection.execute(f"CREATE VIEW feast AS SELECT * FROM read_parquet('{theirs}')")
        ours_rows = connection.execute("SELECT count(*) FROM ours").fetchone()[0]
        feast_rows, feast_distinct = connection.execute(
            "SELECT count(*), count(DISTINCT transaction_id) FROM feast"
        ).fetchone()
        lost = connection.execute(
            "SELECT count(*) FROM ours o ANTI JOIN feast f ON o.transaction_id = f.transaction_id"
        ).fetchone()[0]
        row = connection.execute(
            f"SELECT {', '.join(disagreements)} FROM ours o "
            "JOIN (SELECT * FROM feast QUALIFY row_number() OVER (PARTITION BY transaction_id) = 1) f "
            "USING (transaction_id)"
        ).fetchone()
        card_missing = connection.execute(
            f"SELECT count(*) FILTER (WHERE {value('o', 'card_tx_count_7d')} IS NULL), "
            f"count(*) FILTER (WHERE {value('f', 'card_tx_count_7d')} IS NULL) "
            "FROM ours o JOIN (SELECT * FROM feast QUALIFY row_number() OVER (PARTITION BY transaction_id) = 1) f "
            "USING (transaction_id)"
        ).fetchone()
    by_feature = {name: count for name, count in zip(features, row) if count}
    return {
        "ours_rows": ours_rows,
        "feast_rows": feast_rows,
        "feast_distinct_transactions": feast_distinct,
        "transactions_missing_from_feast": lost,
        "disagreeing_rows_by_feature": by_feature,
        "rows_without_card_record": {"ours": card_missing[0], "feast": card_missing[1]},
    }


# Online reads.


def sample_entities(job: dict[str, Any]) -> dict[str, Any]:
    """Draw (card, terminal) pairs from the last week's transactions, with replacement, seeded."""
    settings = _settings(job)
    _, last = transaction_time_range(settings.source_database)
    with connect(settings.source_database) as connection:
        pairs = connection.execute(
            "SELECT customer_id, terminal_id FROM transactions WHERE tx_datetime >= $since ORDER BY transaction_id",
            {"since": last - timedelta(days=7)},
        ).fetchnumpy()
    rng = np.random.default_rng(job["seed"])
    picks = rng.integers(0, len(pairs["customer_id"]), job["count"])
    sample = np.stack([pairs["customer_id"][picks], pairs["terminal_id"][picks]], axis=1).tolist()
    Path(job["output_path"]).write_text(json.dumps(sample))
    return {"pairs": len(sample), "drawn_from": len(pairs["customer_id"])}


def online_read(job: dict[str, Any]) -> dict[str, Any]:
    """Time ``get_records`` calls in-process: single cards and batches, after a warm-up.

    Scenarios: ``single_two_groups`` (one card's card-weekly-aggregates and its terminal's
    terminal-weekly-aggregates, as Feast reads them), ``single_three_groups`` (the same plus
    card-recent-activity, what the endpoint reads per request) and ``batch_two_groups``
    (``batch_size`` cards and their terminals in one call).
    """
    settings = _settings(job)
    store = _open_store(settings, job["store_root"])
    pairs = json.loads(Path(job["pairs_path"]).read_text())
    as_of = float(job["as_of"])
    warmup, reads, batches, batch_size = job["warmup"], job["reads"], job["batches"], job["batch_size"]
    singles = pairs[: warmup + reads]
    batch_pairs = pairs[warmup + reads :]

    def single_two(card: int, terminal: int) -> dict:
        return store.get_records({CARD_WEEKLY.name: [card], TERMINAL_WEEKLY.name: [terminal]}, as_of=as_of)

    def single_three(card: int, terminal: int) -> dict:
        return store.get_records(
            {CARD_WEEKLY.name: [card], TERMINAL_WEEKLY.name: [terminal], CARD_RECENT_ACTIVITY.name: [card]}, as_of=as_of
        )

    results: dict[str, Any] = {}
    for label, read, groups in (("single_two_groups", single_two, 2), ("single_three_groups", single_three, 3)):
        results[label] = {**_time_calls(read, [tuple(p) for p in singles], warmup), "records_requested": reads * groups}
    batch_calls = []
    for index in range(batches + warmup // 10):
        chunk = batch_pairs[index * batch_size : (index + 1) * batch_size]
        assert len(chunk) == batch_size, f"the pairs file has too few pairs for {batches} batches of {batch_size}"
        batch_calls.append(([p[0] for p in chunk], [p[1] for p in chunk]))

    def batch_two(cards: list[int], terminals: list[int]) -> dict:
        return store.get_records({CARD_WEEKLY.name: cards, TERMINAL_WEEKLY.name: terminals}, as_of=as_of)

    timed_batches = batch_calls[warmup // 10 :]
    requested = sum(len(set(cards)) + len(set(terminals)) for cards, terminals in timed_batches)
    results["batch_two_groups"] = {**_time_calls(batch_two, batch_calls, warmup // 10), "records_requested": requested}

    profiler = Profiler(job.get("profile", False))
    if profiler.profile is not None:
        with profiler.measure():
            for card, terminal in singles[:reads]:
                single_three(card, terminal)
    return {**results, "batch_size": batch_size, **profiler.finish()}


def _time_calls(read: Callable[..., dict], calls: list[tuple], warmup: int) -> dict[str, Any]:
    """Call ``read`` on each argument tuple and return latency percentiles after the warm-up calls.

    ``records_found`` counts the records returned by the timed calls, over all groups.
    """
    latencies = []
    found = 0
    for index, arguments in enumerate(calls):
        started = time.perf_counter_ns()
        records = read(*arguments)
        elapsed = time.perf_counter_ns() - started
        if index >= warmup:
            latencies.append(elapsed)
            found += sum(len(by_id) for by_id in records.values())
    return {**harness.latency_summary(latencies), "records_found": found}


STEPS = {
    step.__name__: step
    for step in (
        generate_synthetic,
        load_source,
        weekly_aggregates,
        ingest_staged,
        stream_recent_activity,
        pit_feature_frame,
        pit_batch_features,
        export_feast_inputs,
        bare_scan,
        bare_asof,
        compare_with_feast,
        sample_entities,
        online_read,
    )
}


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    job = harness.read_job()
    step = STEPS.get(job.get("step"))
    if step is None:
        sys.exit(f"Unknown step {job.get('step')!r}: use one of {', '.join(STEPS)}.")
    harness.write_result(job, step(job))


if __name__ == "__main__":
    main()
