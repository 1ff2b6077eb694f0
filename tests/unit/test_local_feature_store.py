"""Unit tests for the local feature store: SQLite online store, Parquet offline store, registry."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from fraud_detection.errors import FeatureGroupDefinitionMismatchError, FeatureGroupNotFoundError
from fraud_detection.features.catalog import CARD_RECENT_ACTIVITY, CARD_WEEKLY, TERMINAL_WEEKLY
from fraud_detection.features.spec import Feature, FeatureGroupSpec, FeatureType
from fraud_detection.stores import local_offline
from fraud_detection.stores.local import LocalFeatureStore
from fraud_detection.stores.validation import REJECT_REASON

I, F, S = FeatureType.INTEGRAL, FeatureType.FRACTIONAL, FeatureType.STRING

TOY = FeatureGroupSpec(
    name="toy-activity",
    description="A small group for tests.",
    record_identifier="card_id",
    event_time_feature="event_time",
    features=(
        Feature("card_id", I, "Card identifier."),
        Feature("event_time", F, "Seconds since the epoch."),
        Feature("amount", F, "Amount."),
        Feature("tx_count", I, "Transaction count."),
        Feature("merchant", S, "Merchant name."),
    ),
    ttl=timedelta(minutes=1),
)

# Epoch seconds of 2024-03-05 07:30 UTC. Tests add whole hours to reach other partitions.
T0 = datetime(2024, 3, 5, 7, 30, tzinfo=timezone.utc).timestamp()
HOUR = 3600.0
TTL_SECONDS = 60.0


def toy_rows(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["card_id", "event_time", "amount", "tx_count", "merchant"])


@pytest.fixture
def store(tmp_path):
    feature_store = LocalFeatureStore(tmp_path / "feature-store", tmp_path / "quarantine")
    feature_store.create_feature_group(TOY)
    yield feature_store
    feature_store.online.close()


def online_record(store: LocalFeatureStore, card_id: int, as_of: float = T0) -> dict | None:
    return store.get_records({TOY.name: [card_id]}, as_of=as_of)[TOY.name].get(card_id)


def offline_data_root(store: LocalFeatureStore) -> Path:
    location = store.describe_feature_group(TOY.name)["OfflineStoreConfig"]["ResolvedOutputLocation"]
    return Path(location) / "data"


def parquet_files(store: LocalFeatureStore) -> list[Path]:
    return sorted(offline_data_root(store).rglob("*.parquet"))


# Feature groups


def test_create_returns_created_description(store):
    description = store.describe_feature_group(TOY.name)

    assert description["FeatureGroupStatus"] == "Created"
    assert description["FeatureDefinitions"] == TOY.feature_definitions()
    assert description["OnlineStoreConfig"] == {"EnableOnlineStore": True, "TtlDuration": {"Unit": "Minutes", "Value": 1}}


def test_create_twice_is_idempotent(store):
    before = store.describe_feature_group(TOY.name)

    again = store.create_feature_group(TOY)

    assert again == before


def test_create_after_reopen_idempotent(store):
    reopened = LocalFeatureStore(store.root, store.quarantine_root)

    description = reopened.create_feature_group(TOY)

    assert description["CreationTime"] == store.describe_feature_group(TOY.name)["CreationTime"]


def test_create_keeps_existing_records(store):
    store.ingest(TOY.name, toy_rows((1, T0, 2.5, 1, "a")))

    store.create_feature_group(TOY)

    assert online_record(store, 1)["amount"] == 2.5


def test_changed_type_raises_mismatch(store):
    changed = replace(TOY, features=(*TOY.features[:2], Feature("amount", I, "Amount."), *TOY.features[3:]))

    with pytest.raises(FeatureGroupDefinitionMismatchError, match="FeatureDefinitions") as raised:
        store.create_feature_group(changed)

    assert len(raised.value.differences) == 1
    assert "'FeatureType': 'Integral'" in raised.value.differences[0]


def test_changed_ttl_raises_mismatch(store):
    changed = replace(TOY, ttl=timedelta(hours=1))

    with pytest.raises(FeatureGroupDefinitionMismatchError) as raised:
        store.create_feature_group(changed)

    assert raised.value.differences[0].startswith("OnlineStoreConfig is")
    assert "'Unit': 'Hours'" in raised.value.differences[0]


def test_disabled_offline_raises_mismatch(store):
    changed = replace(TOY, offline=False)

    with pytest.raises(FeatureGroupDefinitionMismatchError, match="offline store enabled is True, requested False"):
        store.create_feature_group(changed)


def test_describe_missing_raises(store):
    with pytest.raises(FeatureGroupNotFoundError, match="'absent-group' not found"):
        store.describe_feature_group("absent-group")


def test_ingest_into_missing_raises(store):
    with pytest.raises(FeatureGroupNotFoundError):
        store.ingest(CARD_WEEKLY.name, pd.DataFrame({"card_id": [1], "event_time": [T0]}))


def test_deleted_group_not_found(store):
    store.delete_feature_group(TOY.name)

    with pytest.raises(FeatureGroupNotFoundError):
        store.describe_feature_group(TOY.name)


def test_delete_group_keeps_offline_files(store):
    store.ingest(TOY.name, toy_rows((1, T0, 2.5, 1, "a")))
    files = parquet_files(store)

    store.delete_feature_group(TOY.name)

    assert all(path.exists() for path in files)


# Ingest and online reads


def test_ingest_writes_online(store):
    store.ingest(TOY.name, toy_rows((1, T0, 2.5, 3, "shop")))

    record = online_record(store, 1)

    assert record == {"card_id": 1, "event_time": T0, "amount": 2.5, "tx_count": 3, "merchant": "shop"}


def test_ingest_writes_offline(store):
    store.ingest(TOY.name, toy_rows((1, T0, 2.5, 3, "shop"), (2, T0 + HOUR, 4.0, 1, "cafe")))

    offline = store.read_offline(TOY.name)

    assert offline["card_id"].tolist() == [1, 2]
    assert offline["amount"].tolist() == [2.5, 4.0]
    assert offline["merchant"].tolist() == ["shop", "cafe"]


def test_ingest_result_counts(store):
    result = store.ingest(TOY.name, toy_rows((1, T0, 2.5, 3, "shop"), (2, T0 + HOUR, 4.0, 1, "cafe")))

    assert result.records_written == 2
    assert result.records_rejected == 0
    assert result.quarantine_path is None
    assert len(result.offline_files) == 2


def test_older_event_kept_out(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "new")))

    store.ingest(TOY.name, toy_rows((1, T0 - 10, 1.0, 1, "old")))

    assert online_record(store, 1)["merchant"] == "new"


def test_older_event_in_same_frame(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "new"), (1, T0 - 10, 1.0, 1, "old")))

    assert online_record(store, 1)["merchant"] == "new"


def test_equal_event_time_replaces(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "first")))

    store.ingest(TOY.name, toy_rows((1, T0, 6.0, 2, "second")))

    assert online_record(store, 1)["merchant"] == "second"


def test_newer_event_replaces(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "first")))

    store.ingest(TOY.name, toy_rows((1, T0 + 10, 6.0, 2, "second")))

    assert online_record(store, 1, as_of=T0 + 10)["merchant"] == "second"


def test_older_event_still_reaches_offline(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "new")))

    store.ingest(TOY.name, toy_rows((1, T0 - 10, 1.0, 1, "old")))

    assert store.read_offline(TOY.name)["merchant"].tolist() == ["old", "new"]


def test_read_before_ttl_returns_record(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")))

    record = online_record(store, 1, as_of=T0 + TTL_SECONDS - 0.001)

    assert record is not None


def test_read_at_ttl_returns_nothing(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")))

    record = online_record(store, 1, as_of=T0 + TTL_SECONDS)

    assert record is None


def test_group_without_ttl_never_expires(store):
    store.create_feature_group(CARD_RECENT_ACTIVITY)
    store.ingest(CARD_RECENT_ACTIVITY.name, pd.DataFrame({"card_id": [1], "event_time": [T0], "recent_transactions": ["[]"]}))

    records = store.get_records({CARD_RECENT_ACTIVITY.name: [1]}, as_of=T0 + 3650 * 86400)

    assert list(records[CARD_RECENT_ACTIVITY.name]) == [1]


def test_missing_identifier_absent(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")))

    records = store.get_records({TOY.name: [1, 99]}, as_of=T0)

    assert list(records[TOY.name]) == [1]


def test_get_records_several_groups(store):
    for spec in (CARD_WEEKLY, TERMINAL_WEEKLY, CARD_RECENT_ACTIVITY):
        store.create_feature_group(spec)
    store.ingest(CARD_WEEKLY.name, pd.DataFrame({"card_id": [7, 8], "event_time": [T0, T0], "card_tx_count_7d": [3, 4]}))
    store.ingest(TERMINAL_WEEKLY.name, pd.DataFrame({"terminal_id": [70], "event_time": [T0], "terminal_tx_count_7d": [12]}))
    store.ingest(CARD_RECENT_ACTIVITY.name, pd.DataFrame({"card_id": [7], "event_time": [T0], "transaction_count": [5]}))

    records = store.get_records(
        {CARD_WEEKLY.name: [7, 8], TERMINAL_WEEKLY.name: [70], CARD_RECENT_ACTIVITY.name: [7, 8]}, as_of=T0 + 60
    )

    assert records[CARD_WEEKLY.name][8]["card_tx_count_7d"] == 4
    assert records[TERMINAL_WEEKLY.name][70]["terminal_tx_count_7d"] == 12
    assert list(records[CARD_RECENT_ACTIVITY.name]) == [7]


def test_undeclared_columns_default_missing(store):
    store.create_feature_group(CARD_WEEKLY)
    store.ingest(CARD_WEEKLY.name, pd.DataFrame({"card_id": [7], "event_time": [T0]}))

    record = store.get_records({CARD_WEEKLY.name: [7]}, as_of=T0)[CARD_WEEKLY.name][7]

    assert record["card_amount_mean_30d"] is None


def test_delete_record_online(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop"), (2, T0, 6.0, 1, "cafe")))

    store.delete_record(TOY.name, 1, T0)

    assert online_record(store, 1) is None
    assert online_record(store, 2) is not None


def test_delete_record_offline(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop"), (2, T0, 6.0, 1, "cafe")))

    store.delete_record(TOY.name, 1, T0)

    assert store.read_offline(TOY.name)["card_id"].tolist() == [2]


def test_delete_older_time_keeps_record(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")))

    store.delete_record(TOY.name, 1, T0 - 10)

    assert online_record(store, 1) is not None


def test_offline_only_target_skips_online(store):
    result = store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")), target_stores=("offline",))

    assert result.target_stores == ("offline",)
    assert store.count_online_records(TOY.name) == 0
    assert store.read_offline(TOY.name)["card_id"].tolist() == [1]


def test_online_only_target_skips_offline(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")), target_stores=("online",))

    assert parquet_files(store) == []
    assert online_record(store, 1) is not None


@pytest.mark.parametrize("target_stores", [(), ("online", "archive")])
def test_invalid_target_stores_raise(store, target_stores):
    with pytest.raises(ValueError, match="Invalid target stores"):
        store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")), target_stores=target_stores)


# Idempotent ingests and offline layout


def test_same_ingest_id_no_duplicates(store):
    frame = toy_rows((1, T0, 5.0, 1, "shop"), (2, T0 + HOUR, 6.0, 2, "cafe"))
    store.ingest(TOY.name, frame, ingest_id="week-2024-03-04")
    first = store.read_offline(TOY.name)

    store.ingest(TOY.name, frame, ingest_id="week-2024-03-04")

    pd.testing.assert_frame_equal(store.read_offline(TOY.name), first)
    assert len(parquet_files(store)) == 2


def test_rerun_removes_stale_partition(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")), ingest_id="run-1")
    first_files = parquet_files(store)

    store.ingest(TOY.name, toy_rows((1, T0 + 5 * HOUR, 5.0, 1, "shop")), ingest_id="run-1")

    assert not any(path.exists() for path in first_files)
    assert store.read_offline(TOY.name)["event_time"].tolist() == [T0 + 5 * HOUR]


def test_other_ingest_id_kept(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")), ingest_id="run-1")

    store.ingest(TOY.name, toy_rows((2, T0, 6.0, 1, "cafe")), ingest_id="run-2")

    assert store.read_offline(TOY.name)["card_id"].tolist() == [1, 2]


def test_later_write_wins_offline(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "first")))

    store.ingest(TOY.name, toy_rows((1, T0, 6.0, 1, "second")))

    assert store.read_offline(TOY.name)["merchant"].tolist() == ["second"]


def test_offline_partition_layout(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop"), (2, T0 + 20 * HOUR, 6.0, 1, "cafe")), ingest_id="run-1")
    layout = re.compile(r"toy-activity-\d+/data/year=\d{4}/month=\d{2}/day=\d{2}/hour=\d{2}/[^/]+\.parquet")

    relative = [path.relative_to(store.offline.root).as_posix() for path in parquet_files(store)]

    assert all(layout.fullmatch(path) for path in relative)
    assert [path.split("/data/")[1] for path in relative] == [
        "year=2024/month=03/day=05/hour=07/run-1.parquet",
        "year=2024/month=03/day=06/hour=03/run-1.parquet",
    ]


def test_offline_rows_carry_sagemaker_columns(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")))

    columns = pd.read_parquet(parquet_files(store)[0]).columns.tolist()

    assert columns[-3:] == ["write_time", "api_invocation_time", "is_deleted"]


def test_no_inprogress_after_ingest(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop"), (2, T0 + HOUR, 6.0, 1, "cafe")), ingest_id="run-1")
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")), ingest_id="run-1")

    leftovers = list(store.root.rglob(f"*{local_offline.TEMPORARY_SUFFIX}"))

    assert leftovers == []


def test_no_inprogress_after_failed_write(store, monkeypatch):
    def write_then_fail(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(local_offline.pq, "write_table", write_then_fail)

    with pytest.raises(OSError, match="disk full"):
        store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")))

    assert list(store.root.rglob(f"*{local_offline.TEMPORARY_SUFFIX}")) == []
    assert parquet_files(store) == []


# Row validation and quarantine


def test_bad_rows_quarantined_with_reasons(store):
    frame = pd.DataFrame(
        {
            "card_id": [1, None, 3, 4, 5],
            "event_time": [T0, T0, None, T0, T0],
            "amount": [5.0, 1.0, 1.0, "12,50", 1.0],
            "tx_count": [1, 1, 1, 1, 2.5],
            "merchant": ["shop", "a", "b", "c", "d"],
        }
    )

    result = store.ingest(TOY.name, frame, ingest_id="run-1")
    quarantined = pd.read_csv(result.quarantine_path)
    reasons = quarantined[REJECT_REASON].tolist()

    assert result.records_written == 1
    assert result.records_rejected == 4
    assert quarantined["merchant"].tolist() == ["a", "b", "c", "d"]
    assert reasons[0] == "card_id: missing (record identifier and event time are required)"
    assert reasons[1] == "event_time: missing (record identifier and event time are required)"
    assert reasons[2] == "amount: not a valid Fractional value"
    assert reasons[3] == "tx_count: not a valid Integral value"


def test_good_rows_written_beside_rejects(store):
    frame = toy_rows((1, T0, 5.0, 1, "shop"), (2, T0, "n/a", 1, "cafe"), (3, T0, 7.0, 1, "bar"))

    store.ingest(TOY.name, frame)

    assert store.read_offline(TOY.name)["card_id"].tolist() == [1, 3]
    assert online_record(store, 2) is None


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinite_value_rejected(store, value):
    result = store.ingest(TOY.name, toy_rows((1, T0, value, 1, "shop")))

    assert result.records_rejected == 1


def test_quarantine_file_named_by_ingest(store):
    result = store.ingest(TOY.name, toy_rows((1, None, 5.0, 1, "shop")), ingest_id="run-7")

    assert result.quarantine_path.parent == store.quarantine_root / TOY.name
    assert result.quarantine_path.name.startswith("run-7-")


def test_unknown_feature_values_quarantined(store):
    frame = toy_rows((1, T0, 5.0, 1, "shop"), (2, T0, 6.0, 1, "shop")).assign(scenario=[1, None])

    result = store.ingest(TOY.name, frame)

    assert result.records_written == 1
    assert result.records_rejected == 1
    assert "scenario: unknown feature" in result.quarantine_path.read_text()


def test_missing_key_column_raises(store):
    with pytest.raises(ValueError, match="Column 'event_time' is missing"):
        store.ingest(TOY.name, pd.DataFrame({"card_id": [1], "amount": [2.0]}))


def test_missing_values_round_trip_offline(store):
    store.ingest(TOY.name, toy_rows((1, T0, np.nan, None, None)))

    row = store.read_offline(TOY.name).iloc[0]

    assert pd.isna(row["amount"])
    assert pd.isna(row["tx_count"])
    assert pd.isna(row["merchant"])


def test_missing_values_round_trip_online(store):
    store.ingest(TOY.name, toy_rows((1, T0, np.nan, None, None)))

    record = online_record(store, 1)

    assert record == {"card_id": 1, "event_time": T0, "amount": None, "tx_count": None, "merchant": None}


def test_integral_column_keeps_large_values(store):
    big = 2**53 + 1
    store.ingest(TOY.name, toy_rows((1, T0, 1.0, big, "shop")))

    assert online_record(store, 1)["tx_count"] == big
    assert store.read_offline(TOY.name)["tx_count"].tolist() == [big]


# Offline queries


def test_empty_group_sql_runs(store):
    sql = store.offline_table_sql(TOY.name)

    with duckdb.connect() as connection:
        relation = connection.sql(f"SELECT * FROM {sql}")
        rows = relation.fetchall()
        columns = relation.columns

    assert rows == []
    assert columns == TOY.feature_names


def test_empty_group_read_offline(store):
    offline = store.read_offline(TOY.name)

    assert offline.empty
    assert offline.columns.tolist() == TOY.feature_names


def test_read_offline_time_bounds(store):
    store.ingest(TOY.name, toy_rows((1, T0, 1.0, 1, "a"), (2, T0 + HOUR, 2.0, 1, "b"), (3, T0 + 2 * HOUR, 3.0, 1, "c")))

    offline = store.read_offline(TOY.name, start=T0 + HOUR, end=T0 + 2 * HOUR)

    assert offline["card_id"].tolist() == [2]


def test_sql_reads_catalog_group(store):
    store.create_feature_group(TERMINAL_WEEKLY)
    store.ingest(TERMINAL_WEEKLY.name, pd.DataFrame({"terminal_id": [70, 71], "event_time": [T0, T0], "terminal_fraud_rate_7d": [0.5, None]}))

    with duckdb.connect() as connection:
        rows = connection.sql(
            f"SELECT terminal_id, terminal_fraud_rate_7d FROM {store.offline_table_sql(TERMINAL_WEEKLY.name)} ORDER BY 1"
        ).fetchall()

    assert rows == [(70, 0.5), (71, None)]
