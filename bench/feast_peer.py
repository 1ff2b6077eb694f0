"""The peer's side of the benchmarks: Feast 0.67.0 runs the same work as our steps.

Usage: ``.venv-feast/bin/python bench/feast_peer.py JOB.json``, started by bench/harness.py
(``make bench-feast`` creates the virtualenv). The job's ``action`` is one of :data:`ACTIONS`:

- ``historical``: ``get_historical_features(...).to_df()`` with the ``duckdb`` offline store.
- ``online_write``: ``write_to_online_store`` of the staged weekly records into SQLite.
- ``materialize``: ``materialize`` from the offline files into SQLite, over all weeks in one
  call or once per week.
- ``online_read``: ``get_online_features(...).to_dict()`` for single cards and batches.

Each feature store is a Feast repository in the job's ``repo_dir``: a file registry, the
``duckdb`` offline store and the ``sqlite`` online store. It has two entities, ``card`` and
``terminal``, and two feature views that read the Parquet files written by our
``export_feast_inputs`` step. The feature views take their schema from those files.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (bench/ is not a package)

IMPORT_STARTED = time.perf_counter()
import feast  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType  # noqa: E402
from feast.types import Float64, Int64  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - IMPORT_STARTED

CARD_VIEW = "card_weekly_aggregates"
TERMINAL_VIEW = "terminal_weekly_aggregates"
# Our group names, as the staged weekly files are keyed, by feature view.
GROUP_OF_VIEW = {CARD_VIEW: "card-weekly-aggregates", TERMINAL_VIEW: "terminal-weekly-aggregates"}
JOIN_KEY_OF_VIEW = {CARD_VIEW: "card_id", TERMINAL_VIEW: "terminal_id"}
FEAST_TYPES = {"int64": Int64, "double": Float64}


def open_repository(job: dict[str, Any]) -> tuple[FeatureStore, dict[str, list[str]], float]:
    """Create the Feast repository and apply its entities and views.

    Returns the store, the value features of each view and the seconds the set-up took.
    """
    started = time.perf_counter()
    repo = Path(job["repo_dir"])
    repo.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project="fraud_bench",
        provider="local",
        registry=str(repo / "registry.db"),
        offline_store={"type": "duckdb"},
        online_store={"type": "sqlite", "path": str(repo / "online_store.db")},
        entity_key_serialization_version=3,
        repo_path=str(repo),
    )
    store = FeatureStore(config=config)

    ttl = timedelta(days=job["ttl_days"]) if job.get("ttl_days") else None
    entities = {
        CARD_VIEW: Entity(name="card", join_keys=["card_id"], value_type=ValueType.INT64),
        TERMINAL_VIEW: Entity(name="terminal", join_keys=["terminal_id"], value_type=ValueType.INT64),
    }

    views = []
    features = {}
    for view_name, path in ((CARD_VIEW, job["card_path"]), (TERMINAL_VIEW, job["terminal_path"])):
        join_key = JOIN_KEY_OF_VIEW[view_name]
        schema = pq.read_schema(path)
        fields = [Field(name=join_key, dtype=Int64)]
        for column in schema:
            if column.name in (join_key, "event_timestamp"):
                continue
            fields.append(Field(name=column.name, dtype=FEAST_TYPES[str(column.type)]))
        features[view_name] = [f.name for f in fields[1:]]
        views.append(
            FeatureView(
                name=view_name,
                entities=[entities[view_name]],
                ttl=ttl,
                schema=fields,
                source=FileSource(name=f"{view_name}_source", path=str(path), timestamp_field="event_timestamp"),
                online=True,
            )
        )

    store.apply([*entities.values(), *views])
    return store, features, time.perf_counter() - started


def feature_references(features: dict[str, list[str]]) -> list[str]:
    return [f"{view}:{name}" for view, names in features.items() for name in names]


def historical(job: dict[str, Any]) -> dict[str, Any]:
    """Join every entity row to both views with ``get_historical_features(...).to_df()``.

    The entity rows are read from Parquet before the clock starts. With ``output_path`` the
    result is written to Parquet after the clock stops, for the comparison with ours.
    """
    store, features, apply_seconds = open_repository(job)
    read_started = time.perf_counter()
    entity_df = pd.read_parquet(job["entity_path"])
    read_seconds = time.perf_counter() - read_started

    baseline = harness.current_rss_bytes()
    started = time.perf_counter()
    frame = store.get_historical_features(entity_df=entity_df, features=feature_references(features)).to_df()
    seconds = time.perf_counter() - started
    measured_peak = harness.peak_rss_bytes()

    if job.get("output_path"):
        names = [name for names in features.values() for name in names]
        frame[["transaction_id", *names]].to_parquet(job["output_path"], index=False)
    return {
        "seconds": seconds,
        "rows": len(frame),
        "entity_rows": len(entity_df),
        "distinct_transactions": int(frame["transaction_id"].nunique()),
        "columns": len(frame.columns),
        "rows_without_card_record": int(frame["card_tx_count_7d"].isna().sum()),
        "rows_without_terminal_record": int(frame["terminal_tx_count_7d"].isna().sum()),
        "apply_seconds": apply_seconds,
        "input_read_seconds": read_seconds,
        "import_seconds": IMPORT_SECONDS,
        "rss_before_bytes": baseline,
        "measured_peak_rss_bytes": measured_peak,
    }


def _feast_frame(path: str, join_key: str) -> pd.DataFrame:
    """Read one staged weekly file of ours and give it Feast's ``event_timestamp`` column."""
    frame = pd.read_parquet(path)
    frame["event_timestamp"] = pd.to_datetime(frame.pop("event_time"), unit="s", utc=True)
    frame[join_key] = frame[join_key].astype("int64")
    return frame


def _online_rows(job: dict[str, Any]) -> dict[str, int]:
    """Count the entities and rows of each feature view in Feast's SQLite online store."""
    counts = {}
    with sqlite3.connect(Path(job["repo_dir"]) / "online_store.db") as connection:
        for view in (CARD_VIEW, TERMINAL_VIEW):
            table = f"fraud_bench_{view}"
            entities, rows = connection.execute(f'SELECT count(DISTINCT entity_key), count(*) FROM "{table}"').fetchone()
            counts[view] = {"entities": entities, "feature_rows": rows}
    return counts


def online_write(job: dict[str, Any]) -> dict[str, Any]:
    """Write every staged week of both groups, in week order, with ``write_to_online_store``.

    The staged files are read and converted before the clock starts.
    """
    store, _, apply_seconds = open_repository(job)
    frames = []
    for week in job["staged"]:
        for view, group in GROUP_OF_VIEW.items():
            frames.append((view, _feast_frame(week[group], JOIN_KEY_OF_VIEW[view])))
    records = sum(len(frame) for _, frame in frames)

    started = time.perf_counter()
    for view, frame in frames:
        store.write_to_online_store(view, frame)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "records": records,
        "rows_per_second": records / seconds,
        "write_calls": len(frames),
        "online_store": _online_rows(job),
        "apply_seconds": apply_seconds,
        "import_seconds": IMPORT_SECONDS,
    }


def materialize(job: dict[str, Any]) -> dict[str, Any]:
    """Load the offline files into the online store with ``materialize``.

    ``per_week`` false: one call over all weeks, which keeps the latest record per entity.
    ``per_week`` true: one call per week end, each over a window that contains that week's records
    only, so every weekly record is written, as the weekly job writes them.
    """
    store, _, apply_seconds = open_repository(job)
    week_ends = [datetime.fromisoformat(w).replace(tzinfo=timezone.utc) for w in job["week_ends"]]
    if job["per_week"]:
        windows = [(end - timedelta(hours=1), end + timedelta(seconds=1)) for end in week_ends]
    else:
        windows = [(week_ends[0] - timedelta(days=1), week_ends[-1] + timedelta(seconds=1))]

    started = time.perf_counter()
    for start, end in windows:
        store.materialize(start_date=start, end_date=end)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "materialize_calls": len(windows),
        "online_store": _online_rows(job),
        "apply_seconds": apply_seconds,
        "import_seconds": IMPORT_SECONDS,
    }


def online_read(job: dict[str, Any]) -> dict[str, Any]:
    """Time ``get_online_features(...).to_dict()`` for single (card, terminal) pairs and batches.

    The repository must already hold the online records, from an ``online_write`` job with the
    same ``repo_dir``. Feast's online read applies no TTL against a request time, unlike ours.
    """
    store, features, _ = open_repository(job)
    references = feature_references(features)
    pairs = json.loads(Path(job["pairs_path"]).read_text())
    warmup, reads, batches, batch_size = job["warmup"], job["reads"], job["batches"], job["batch_size"]
    singles = pairs[: warmup + reads]
    batch_pairs = pairs[warmup + reads :]

    def read(rows: list[dict[str, int]]) -> dict[str, list]:
        return store.get_online_features(features=references, entity_rows=rows).to_dict()

    single_calls = [[{"card_id": card, "terminal_id": terminal}] for card, terminal in singles]
    batch_calls = []
    for index in range(batches + warmup // 10):
        chunk = batch_pairs[index * batch_size : (index + 1) * batch_size]
        assert len(chunk) == batch_size, f"the pairs file has too few pairs for {batches} batches of {batch_size}"
        batch_calls.append([{"card_id": card, "terminal_id": terminal} for card, terminal in chunk])
    return {
        "single_two_groups": _time_calls(read, single_calls, warmup),
        "batch_two_groups": _time_calls(read, batch_calls, warmup // 10),
        "batch_size": batch_size,
        "import_seconds": IMPORT_SECONDS,
    }


def _time_calls(read, calls: list[list[dict[str, int]]], warmup: int) -> dict[str, Any]:
    """Time each call after the warm-up; count the returned rows with a card and a terminal value."""
    latencies = []
    card_found = terminal_found = requested = 0
    for index, rows in enumerate(calls):
        started = time.perf_counter_ns()
        response = read(rows)
        elapsed = time.perf_counter_ns() - started
        if index >= warmup:
            latencies.append(elapsed)
            requested += len(rows)
            card_found += sum(value is not None for value in response["card_tx_count_7d"])
            terminal_found += sum(value is not None for value in response["terminal_tx_count_7d"])
    return {
        **harness.latency_summary(latencies),
        "rows_requested": requested,
        "rows_with_card_values": card_found,
        "rows_with_terminal_values": terminal_found,
    }


ACTIONS = {action.__name__: action for action in (historical, online_write, materialize, online_read)}


def main() -> None:
    job = harness.read_job()
    action = ACTIONS.get(job.get("action"))
    if action is None:
        sys.exit(f"Unknown action {job.get('action')!r}: use one of {', '.join(ACTIONS)}.")
    versions = {"feast_version": feast.__version__, "pandas_version": pd.__version__}
    harness.write_result(job, {**action(job), **versions})


if __name__ == "__main__":
    main()
