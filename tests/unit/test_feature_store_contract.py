"""Contract tests of the feature store interface, run against the local and the aws backend.

The aws backend runs in-process: moto for the ``sagemaker`` control plane and S3,
``FakeFeatureStoreRuntime`` for the record API, ``FakeAthena`` for offline queries, and
botocore's ``Stubber`` for what neither covers (DeleteFeatureGroup, throttling, CreateFailed).
Every request is validated against botocore's service model, and nothing reaches the network.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import duckdb
import numpy as np
import pandas as pd
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from botocore.stub import Stubber
from fake_featurestore_runtime import (
    FakeAthena,
    FakeFeatureStoreRuntime,
    adapt_moto_sagemaker,
    attach_request_validation,
)
from moto import mock_aws

from fraud_detection.config import Settings
from fraud_detection.errors import (
    ConfigurationError,
    FeatureGroupCreationError,
    FeatureGroupDefinitionMismatchError,
    FeatureGroupNotFoundError,
    RecordReadError,
)
from fraud_detection.features.asof import latest_versions
from fraud_detection.features.catalog import CARD_RECENT_ACTIVITY, CARD_WEEKLY, TERMINAL_WEEKLY
from fraud_detection.features.spec import Feature, FeatureGroupSpec, FeatureType
from fraud_detection.stores import open_feature_store
from fraud_detection.stores.aws import SageMakerFeatureStore
from fraud_detection.stores.aws_clients import FeatureStoreClients, SageMakerFeatureStoreConfig
from fraud_detection.stores.aws_records import iso_event_time
from fraud_detection.stores.base import FeatureStore
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

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/feature-store"
BUCKET = "fraud-feature-store"
OFFLINE_STORE_URI = f"s3://{BUCKET}/offline-store"
ATHENA_OUTPUT_URI = f"s3://{BUCKET}/athena-results"
TOY_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:feature-group/{TOY.name}"


def toy_rows(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["card_id", "event_time", "amount", "tx_count", "merchant"])


# Backends


@dataclass
class AwsHarness:
    """The aws store and the in-process services behind it."""

    store: SageMakerFeatureStore
    sagemaker: Any
    s3: Any
    runtime: FakeFeatureStoreRuntime
    athena: FakeAthena
    sleeps: list[float]
    tmp_path: Path
    session: boto3.session.Session

    def validated_client(self, service: str):
        """Return a new client of ``service`` whose requests are validated against its service model."""
        client = self.session.client(service, region_name=REGION)
        attach_request_validation(client)
        return client

    def store_with(self, *, runtime_client=None, sagemaker_client=None, **config) -> SageMakerFeatureStore:
        """Return another store on the same services, with some clients or settings replaced."""
        clients = FeatureStoreClients(
            sagemaker=sagemaker_client or self.sagemaker,
            featurestore_runtime=runtime_client or self.runtime.client,
            s3=self.s3,
            athena_query=self.athena,
        )
        return SageMakerFeatureStore(aws_config(self.tmp_path, **config), clients, sleep=self.sleeps.append)


def aws_config(tmp_path: Path, **overrides) -> SageMakerFeatureStoreConfig:
    settings = {
        "role_arn": ROLE_ARN,
        "offline_store_s3_uri": OFFLINE_STORE_URI,
        "athena_output_s3_uri": ATHENA_OUTPUT_URI,
        "cache_root": tmp_path / "offline-cache",
        "quarantine_root": tmp_path / "quarantine",
        "max_workers": 4,
        "backoff_base_seconds": 0.01,
        "poll_interval_seconds": 0.0,
        **overrides,
    }
    return SageMakerFeatureStoreConfig(**settings)


@pytest.fixture
def aws_credentials(monkeypatch, tmp_path):
    """Set fake credentials and a region, and keep the machine's AWS config files out."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "absent-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="session")
def boto_session() -> boto3.session.Session:
    """One boto3 session for every test, so botocore parses each service model once.

    moto resets boto3's default session whenever a mock starts, which would parse the
    models again for each test.
    """
    return boto3.session.Session()


@pytest.fixture
def aws(aws_credentials, boto_session, tmp_path):
    with mock_aws():
        glue_tables: dict = {}
        sagemaker = boto_session.client("sagemaker", region_name=REGION)
        adapt_moto_sagemaker(sagemaker, glue_tables)
        s3 = boto_session.client("s3", region_name=REGION)
        attach_request_validation(s3)
        s3.create_bucket(Bucket=BUCKET)
        runtime = FakeFeatureStoreRuntime(sagemaker, s3_client=s3, session=boto_session, region=REGION, clock=lambda: T0)
        athena = FakeAthena(s3, glue_tables)
        sleeps: list[float] = []
        clients = FeatureStoreClients(sagemaker, runtime.client, s3, athena)
        store = SageMakerFeatureStore(aws_config(tmp_path), clients, sleep=sleeps.append)
        yield AwsHarness(store, sagemaker, s3, runtime, athena, sleeps, tmp_path, boto_session)


@pytest.fixture(params=["local", "aws"])
def store(request, tmp_path) -> FeatureStore:
    """A store of each backend with the TOY group created."""
    if request.param == "local":
        feature_store = LocalFeatureStore(tmp_path / "feature-store", tmp_path / "quarantine")
        feature_store.create_feature_group(TOY)
        yield feature_store
        feature_store.online.close()
    else:
        harness = request.getfixturevalue("aws")
        harness.store.create_feature_group(TOY)
        yield harness.store


def online_record(store: FeatureStore, card_id: int, as_of: float = T0) -> dict | None:
    return store.get_records({TOY.name: [card_id]}, as_of=as_of)[TOY.name].get(card_id)


# Contract: feature groups


def test_create_returns_created_description(store):
    description = store.describe_feature_group(TOY.name)

    assert description["FeatureGroupStatus"] == "Created"
    assert description["FeatureDefinitions"] == TOY.feature_definitions()
    assert description["OnlineStoreConfig"]["TtlDuration"] == {"Unit": "Minutes", "Value": 1}


def test_create_twice_is_idempotent(store):
    before = store.describe_feature_group(TOY.name)

    again = store.create_feature_group(TOY)

    assert again == before


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


def test_read_of_missing_group_raises(store):
    with pytest.raises(FeatureGroupNotFoundError):
        store.get_records({"absent-group": [1]}, as_of=T0)


# Contract: ingest and online reads


def test_ingest_counts_and_online_record(store):
    result = store.ingest(TOY.name, toy_rows((1, T0, 2.5, 3, "shop"), (2, T0 + HOUR, 4.0, 1, "cafe")))

    assert result.records_written == 2
    assert result.records_rejected == 0
    assert result.quarantine_path is None
    assert result.target_stores == ("online", "offline")
    assert online_record(store, 1) == {"card_id": 1, "event_time": T0, "amount": 2.5, "tx_count": 3, "merchant": "shop"}


def test_ingest_writes_offline(store):
    store.ingest(TOY.name, toy_rows((1, T0, 2.5, 3, "shop"), (2, T0 + HOUR, 4.0, 1, "cafe")))

    offline = store.read_offline(TOY.name)

    assert offline["card_id"].tolist() == [1, 2]
    assert offline["event_time"].tolist() == [T0, T0 + HOUR]
    assert offline["amount"].tolist() == [2.5, 4.0]
    assert offline["merchant"].tolist() == ["shop", "cafe"]


def test_older_event_kept_out(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "new")))

    store.ingest(TOY.name, toy_rows((1, T0 - 10, 1.0, 1, "old")))

    assert online_record(store, 1)["merchant"] == "new"


def test_older_event_in_same_frame(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "new"), (1, T0 - 10, 1.0, 1, "old")))

    assert online_record(store, 1)["merchant"] == "new"


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
    store.ingest(
        CARD_RECENT_ACTIVITY.name, pd.DataFrame({"card_id": [1], "event_time": [T0], "recent_transactions": ["[]"]})
    )

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


def test_more_than_100_identifiers(store):
    identifiers = list(range(1, 251))
    frame = toy_rows(*((card_id, T0, card_id / 4, card_id, f"m{card_id}") for card_id in identifiers))
    store.ingest(TOY.name, frame)

    records = store.get_records({TOY.name: [*identifiers, 999, 1000]}, as_of=T0)[TOY.name]

    assert sorted(records) == identifiers
    assert records[250] == {"card_id": 250, "event_time": T0, "amount": 62.5, "tx_count": 250, "merchant": "m250"}


def test_undeclared_columns_default_missing(store):
    store.create_feature_group(CARD_WEEKLY)
    store.ingest(CARD_WEEKLY.name, pd.DataFrame({"card_id": [7], "event_time": [T0]}))

    record = store.get_records({CARD_WEEKLY.name: [7]}, as_of=T0)[CARD_WEEKLY.name][7]

    assert record["card_amount_mean_30d"] is None


def test_delete_record_online(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop"), (2, T0, 6.0, 1, "cafe")))

    store.delete_record(TOY.name, 1, T0 + 1)

    assert online_record(store, 1) is None
    assert online_record(store, 2) is not None


def test_delete_record_offline(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop"), (2, T0, 6.0, 1, "cafe")))

    store.delete_record(TOY.name, 1, T0)

    assert store.read_offline(TOY.name)["card_id"].tolist() == [2]


def test_deletion_marker_not_read_offline(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")))

    store.delete_record(TOY.name, 1, T0 + 1)

    assert store.read_offline(TOY.name)["event_time"].tolist() == [T0]


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

    assert store.read_offline(TOY.name).empty
    assert online_record(store, 1) is not None


def test_count_online_records(store):
    store.ingest(TOY.name, toy_rows(*((card_id, T0, 1.0, 1, "m") for card_id in range(1, 131))))

    assert store.count_online_records(TOY.name) == 130


@pytest.mark.parametrize("target_stores", [(), ("online", "archive")])
def test_invalid_target_stores_raise(store, target_stores):
    with pytest.raises(ValueError, match="Invalid target stores"):
        store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")), target_stores=target_stores)


# Contract: row validation and quarantine


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
    assert result.quarantine_path.name.startswith("run-1-")
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
    assert online_record(store, 3) is not None


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinite_value_rejected(store, value):
    result = store.ingest(TOY.name, toy_rows((1, T0, value, 1, "shop")))

    assert result.records_rejected == 1


def test_unknown_feature_values_quarantined(store):
    frame = toy_rows((1, T0, 5.0, 1, "shop"), (2, T0, 6.0, 1, "shop")).assign(scenario=[1, None])

    result = store.ingest(TOY.name, frame)

    assert result.records_written == 1
    assert result.records_rejected == 1
    assert "scenario: unknown feature" in result.quarantine_path.read_text()
    assert online_record(store, 2) is not None


def test_missing_key_column_raises(store):
    with pytest.raises(ValueError, match="Column 'event_time' is missing"):
        store.ingest(TOY.name, pd.DataFrame({"card_id": [1], "amount": [2.0]}))


def test_missing_values_round_trip_online(store):
    store.ingest(TOY.name, toy_rows((1, T0, np.nan, None, None)))

    record = online_record(store, 1)

    assert record == {"card_id": 1, "event_time": T0, "amount": None, "tx_count": None, "merchant": None}


def test_missing_values_round_trip_offline(store):
    store.ingest(TOY.name, toy_rows((1, T0, np.nan, None, None)))

    row = store.read_offline(TOY.name).iloc[0]

    assert pd.isna(row["amount"])
    assert pd.isna(row["tx_count"])
    assert pd.isna(row["merchant"])


def test_integral_keeps_large_values(store):
    big = 2**53 + 1
    store.ingest(TOY.name, toy_rows((1, T0, 1.0, big, "shop")))

    assert online_record(store, 1)["tx_count"] == big
    assert store.read_offline(TOY.name)["tx_count"].tolist() == [big]


def test_fractional_values_round_trip(store):
    values = [0.1 + 0.2, 1e-300, 123456789.123456789, -2.5e-7, 1.7976931348623157e308]
    store.ingest(TOY.name, toy_rows(*((card_id, T0 + card_id, value, 1, "m") for card_id, value in enumerate(values, 1))))

    online = store.get_records({TOY.name: [1, 2, 3, 4, 5]}, as_of=T0)[TOY.name]

    assert [online[card_id]["amount"] for card_id in range(1, 6)] == values
    assert store.read_offline(TOY.name)["amount"].tolist() == values


def test_event_time_fraction_round_trips(store):
    event_time = T0 + 0.123456
    store.ingest(TOY.name, toy_rows((1, event_time, 1.0, 1, "shop")))

    assert online_record(store, 1)["event_time"] == event_time
    assert store.read_offline(TOY.name)["event_time"].tolist() == [event_time]


# Contract: offline reads


def test_later_write_wins_offline(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "first")))

    store.ingest(TOY.name, toy_rows((1, T0, 6.0, 1, "second")))

    assert store.read_offline(TOY.name)["merchant"].tolist() == ["second"]


def test_rerun_adds_no_offline_rows(store):
    frame = toy_rows((1, T0, 5.0, 1, "shop"), (2, T0 + HOUR, 6.0, 2, "cafe"))
    store.ingest(TOY.name, frame, ingest_id="week-2024-03-04")
    first = store.read_offline(TOY.name)

    store.ingest(TOY.name, frame, ingest_id="week-2024-03-04")

    pd.testing.assert_frame_equal(store.read_offline(TOY.name), first, check_dtype=False)


def test_read_offline_time_bounds(store):
    store.ingest(TOY.name, toy_rows((1, T0, 1.0, 1, "a"), (2, T0 + HOUR, 2.0, 1, "b"), (3, T0 + 2 * HOUR, 3.0, 1, "c")))

    offline = store.read_offline(TOY.name, start=T0 + HOUR, end=T0 + 2 * HOUR)

    assert offline["card_id"].tolist() == [2]


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


def test_sql_reads_deduplicated_records(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "first"), (2, T0, 6.0, 1, "cafe")))
    store.ingest(TOY.name, toy_rows((1, T0, 7.0, 1, "second")))
    store.delete_record(TOY.name, 2, T0)

    with duckdb.connect() as connection:
        rows = connection.sql(f"SELECT card_id, merchant FROM {store.offline_table_sql(TOY.name)} ORDER BY 1").fetchall()

    assert rows == [(1, "second")]


def test_sql_all_versions_keeps_every_row(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "first"), (2, T0, 6.0, 1, "cafe")))
    store.ingest(TOY.name, toy_rows((1, T0, 7.0, 1, "second")))
    store.delete_record(TOY.name, 2, T0)

    with duckdb.connect() as connection:
        relation = connection.sql(f"SELECT * FROM {store.offline_table_sql(TOY.name, all_versions=True)} ORDER BY write_time, card_id")
        rows = relation.fetchall()
        columns = relation.columns

    assert columns == [*TOY.feature_names, "write_time", "api_invocation_time", "is_deleted"]
    assert [(row[0], row[-1]) for row in rows] == [(1, False), (2, False), (1, False), (2, True)]


def test_numpy_latest_versions_match_sql(store):
    store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "first"), (2, T0, 6.0, 1, "cafe"), (3, T0, 1.0, 1, "x")))
    store.ingest(TOY.name, toy_rows((1, T0, 7.0, 1, "second"), (1, T0 + HOUR, 8.0, 1, "later")))
    store.delete_record(TOY.name, 2, T0)

    with duckdb.connect() as connection:
        expected = connection.sql(f"SELECT card_id, event_time, merchant FROM {store.offline_table_sql(TOY.name)} ORDER BY 1, 2").fetchall()
        versions = connection.sql(f"SELECT * FROM {store.offline_table_sql(TOY.name, all_versions=True)}").fetchnumpy()
    keep = latest_versions(
        versions["card_id"],
        versions["event_time"],
        [versions["write_time"].view(np.int64), versions["api_invocation_time"].view(np.int64)],
        versions["is_deleted"],
    )

    latest = sorted(zip(versions["card_id"][keep].tolist(), versions["event_time"][keep].tolist(), versions["merchant"][keep].tolist()))
    assert latest == expected


def test_empty_group_sql_all_versions_runs(store):
    with duckdb.connect() as connection:
        relation = connection.sql(f"SELECT * FROM {store.offline_table_sql(TOY.name, all_versions=True)}")

        assert relation.fetchall() == []
        assert relation.columns == [*TOY.feature_names, "write_time", "api_invocation_time", "is_deleted"]


def test_sql_reads_catalog_group(store):
    store.create_feature_group(TERMINAL_WEEKLY)
    store.ingest(
        TERMINAL_WEEKLY.name,
        pd.DataFrame({"terminal_id": [70, 71], "event_time": [T0, T0], "terminal_fraud_rate_7d": [0.5, None]}),
    )

    with duckdb.connect() as connection:
        rows = connection.sql(
            f"SELECT terminal_id, terminal_fraud_rate_7d FROM {store.offline_table_sql(TERMINAL_WEEKLY.name)} ORDER BY 1"
        ).fetchall()

    assert rows == [(70, 0.5), (71, None)]


# aws: the requests the store builds


def test_put_record_request_format(aws):
    aws.store.create_feature_group(TOY)

    aws.store.ingest(TOY.name, toy_rows((1, T0, 2.5, 3, "shop"), (2, T0 + 0.5, np.nan, None, None)))
    requests = sorted(aws.runtime.calls_of("PutRecord"), key=lambda request: request["Record"][0]["ValueAsString"])

    assert requests[0] == {
        "FeatureGroupName": TOY.name,
        "Record": [
            {"FeatureName": "card_id", "ValueAsString": "1"},
            {"FeatureName": "event_time", "ValueAsString": "1709623800.0"},
            {"FeatureName": "amount", "ValueAsString": "2.5"},
            {"FeatureName": "tx_count", "ValueAsString": "3"},
            {"FeatureName": "merchant", "ValueAsString": "shop"},
        ],
        "TargetStores": ["OnlineStore", "OfflineStore"],
    }
    assert requests[1]["Record"] == [
        {"FeatureName": "card_id", "ValueAsString": "2"},
        {"FeatureName": "event_time", "ValueAsString": "1709623800.5"},
    ]


@pytest.mark.parametrize(
    ("target_stores", "expected"), [(("online",), ["OnlineStore"]), (("offline",), ["OfflineStore"])]
)
def test_target_stores_map_to_sagemaker_names(aws, target_stores, expected):
    aws.store.create_feature_group(TOY)

    aws.store.ingest(TOY.name, toy_rows((1, T0, 2.5, 3, "shop")), target_stores=target_stores)

    assert aws.runtime.calls_of("PutRecord")[0]["TargetStores"] == expected


def test_create_request_has_offline_store_and_role(aws):
    aws.store.create_feature_group(TOY)

    description = aws.sagemaker.describe_feature_group(FeatureGroupName=TOY.name)

    assert description["OfflineStoreConfig"]["S3StorageConfig"]["S3Uri"] == OFFLINE_STORE_URI
    assert description["OfflineStoreConfig"]["TableFormat"] == "Glue"
    assert description["RoleArn"] == ROLE_ARN
    assert description["Description"] == TOY.description


def test_batch_get_at_most_100_identifiers(aws):
    aws.store.create_feature_group(TOY)
    aws.store.create_feature_group(CARD_RECENT_ACTIVITY)

    aws.store.get_records({TOY.name: list(range(150)), CARD_RECENT_ACTIVITY.name: list(range(60))}, as_of=T0)
    requests = aws.runtime.calls_of("BatchGetRecord")

    sizes = [sum(len(entry["RecordIdentifiersValueAsString"]) for entry in request["Identifiers"]) for request in requests]
    assert sizes == [100, 100, 10]
    assert [entry["FeatureGroupName"] for entry in requests[1]["Identifiers"]] == [TOY.name, CARD_RECENT_ACTIVITY.name]
    assert all(request["ExpirationTimeResponse"] == "Enabled" for request in requests)


def test_delete_record_request(aws):
    aws.store.create_feature_group(TOY)

    aws.store.delete_record(TOY.name, 1, T0 + 0.25)

    assert aws.runtime.calls_of("DeleteRecord") == [
        {
            "FeatureGroupName": TOY.name,
            "RecordIdentifierValueAsString": "1",
            "EventTime": "2024-03-05T07:30:00.250Z",
            "TargetStores": ["OnlineStore", "OfflineStore"],
            "DeletionMode": "SoftDelete",
        }
    ]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (T0, "2024-03-05T07:30:00.000Z"),
        (T0 + 0.0001, "2024-03-05T07:30:00.001Z"),
        (T0 + 59.999, "2024-03-05T07:30:59.999Z"),
        (0.3, "1970-01-01T00:00:00.300Z"),
    ],
)
def test_iso_event_time_rounds_up(seconds, expected):
    assert iso_event_time(seconds) == expected


def test_equal_event_time_keeps_stored(aws):
    # SageMaker's PutRecord documentation: a record replaces the online one only if its
    # event time is greater. The local store replaces on an equal event time too.
    aws.store.create_feature_group(TOY)
    aws.store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "first")))

    aws.store.ingest(TOY.name, toy_rows((1, T0, 6.0, 2, "second")))

    assert aws.store.get_records({TOY.name: [1]}, as_of=T0)[TOY.name][1]["merchant"] == "first"


def test_wall_clock_expiry_hides_record(aws):
    aws.store.create_feature_group(TOY)
    aws.store.ingest(TOY.name, toy_rows((1, T0, 5.0, 1, "shop")))

    aws.runtime.clock = lambda: T0 + TTL_SECONDS

    assert aws.store.get_records({TOY.name: [1]}, as_of=T0)[TOY.name] == {}


def test_record_ttl_in_group_without_ttl(aws):
    aws.store.create_feature_group(CARD_RECENT_ACTIVITY)
    record = [{"FeatureName": "card_id", "ValueAsString": "1"}, {"FeatureName": "event_time", "ValueAsString": repr(T0)}]
    aws.runtime.client.put_record(
        FeatureGroupName=CARD_RECENT_ACTIVITY.name, Record=record, TtlDuration={"Unit": "Minutes", "Value": 5}
    )

    before = aws.store.get_records({CARD_RECENT_ACTIVITY.name: [1]}, as_of=T0 + 299.9)
    at_expiry = aws.store.get_records({CARD_RECENT_ACTIVITY.name: [1]}, as_of=T0 + 300)

    assert list(before[CARD_RECENT_ACTIVITY.name]) == [1]
    assert at_expiry[CARD_RECENT_ACTIVITY.name] == {}


# aws: checks before any call


def test_bad_group_name_rejected(aws):
    with pytest.raises(ValueError, match=r"Invalid feature group name 'toy activity!': use 1-64 letters"):
        aws.store.describe_feature_group("toy activity!")


@pytest.mark.parametrize("identifier", ["1", 1.5, True, None])
def test_bad_identifier_rejected(aws, identifier):
    aws.store.create_feature_group(TOY)
    calls_before = len(aws.runtime.calls)

    with pytest.raises(ValueError, match=re.escape(f"Invalid record identifier {identifier!r}")):
        aws.store.get_records({TOY.name: [identifier]}, as_of=T0)

    assert len(aws.runtime.calls) == calls_before


def test_numpy_identifier_accepted(aws):
    aws.store.create_feature_group(TOY)
    aws.store.ingest(TOY.name, toy_rows((7, T0, 5.0, 1, "shop")))

    records = aws.store.get_records({TOY.name: [np.int64(7)]}, as_of=T0)[TOY.name]

    assert list(records) == [7]


def test_long_description_rejected(aws):
    spec = replace(TOY, name="toy-long-description", description="x" * 129)

    with pytest.raises(ValueError, match="description of 129 characters, SageMaker allows at most 128"):
        aws.store.create_feature_group(spec)


def test_long_string_value_quarantined(aws):
    aws.store.create_feature_group(TOY)

    result = aws.store.ingest(TOY.name, toy_rows((1, T0, 1.0, 1, "x" * 358401), (2, T0, 1.0, 1, "ok")))

    assert result.records_written == 1
    assert result.records_rejected == 1
    assert "merchant: longer than 358400 characters" in pd.read_csv(result.quarantine_path)[REJECT_REASON][0]


# aws: service model validation of the test doubles


def test_fake_rejects_unknown_key(aws):
    with pytest.raises(ParamValidationError, match="Unknown parameter in input: \"Records\""):
        aws.runtime.client.put_record(FeatureGroupName=TOY.name, Records=[])


def test_fake_rejects_wrong_type(aws):
    with pytest.raises(ParamValidationError, match="Invalid type for parameter Record\\[0\\].ValueAsString"):
        aws.runtime.client.put_record(FeatureGroupName=TOY.name, Record=[{"FeatureName": "card_id", "ValueAsString": 1}])


def test_fake_rejects_bad_enum(aws):
    record = [{"FeatureName": "card_id", "ValueAsString": "1"}]

    with pytest.raises(ParamValidationError, match="TargetStores\\[0\\]: 'Online' is not one of"):
        aws.runtime.client.put_record(FeatureGroupName=TOY.name, Record=record, TargetStores=["Online"])


def test_fake_rejects_bad_pattern(aws):
    with pytest.raises(ParamValidationError, match="FeatureGroupName: 'toy activity' does not match the pattern"):
        aws.runtime.client.get_record(FeatureGroupName="toy activity", RecordIdentifierValueAsString="1")


def test_fake_rejects_over_100_identifiers(aws):
    identifiers = [{"FeatureGroupName": TOY.name, "RecordIdentifiersValueAsString": [str(n) for n in range(101)]}]

    with pytest.raises(ParamValidationError, match="RecordIdentifiersValueAsString: 101 items, the maximum is 100"):
        aws.runtime.client.batch_get_record(Identifiers=identifiers)


def test_moto_client_rejects_long_description(aws):
    with pytest.raises(ParamValidationError, match="Description: length 129, the maximum is 128"):
        aws.sagemaker.create_feature_group(
            FeatureGroupName="too-long",
            RecordIdentifierFeatureName="card_id",
            EventTimeFeatureName="event_time",
            FeatureDefinitions=TOY.feature_definitions(),
            OfflineStoreConfig={"S3StorageConfig": {"S3Uri": OFFLINE_STORE_URI}},
            RoleArn=ROLE_ARN,
            Description="x" * 129,
        )


def test_fake_rejects_undefined_feature(aws):
    aws.store.create_feature_group(TOY)
    record = [
        {"FeatureName": "card_id", "ValueAsString": "1"},
        {"FeatureName": "event_time", "ValueAsString": "1.0"},
        {"FeatureName": "colour", "ValueAsString": "red"},
    ]

    with pytest.raises(ClientError, match="Feature colour is not defined"):
        aws.runtime.client.put_record(FeatureGroupName=TOY.name, Record=record)


# aws: retries and write failures


def test_throttled_put_retried(aws):
    aws.store.create_feature_group(TOY)
    runtime = aws.validated_client("sagemaker-featurestore-runtime")
    store = aws.store_with(runtime_client=runtime, max_workers=1)
    request = {
        "FeatureGroupName": TOY.name,
        "Record": [
            {"FeatureName": "card_id", "ValueAsString": "1"},
            {"FeatureName": "event_time", "ValueAsString": "1709623800.0"},
            {"FeatureName": "amount", "ValueAsString": "2.5"},
            {"FeatureName": "tx_count", "ValueAsString": "3"},
            {"FeatureName": "merchant", "ValueAsString": "shop"},
        ],
        "TargetStores": ["OnlineStore", "OfflineStore"],
    }

    with Stubber(runtime) as stubber:
        stubber.add_client_error(
            "put_record", service_error_code="ThrottlingException", http_status_code=400, expected_params=request
        )
        stubber.add_response("put_record", {}, expected_params=request)
        result = store.ingest(TOY.name, toy_rows((1, T0, 2.5, 3, "shop")))
        stubber.assert_no_pending_responses()

    assert result.records_written == 1
    assert result.records_rejected == 0
    assert len(aws.sleeps) == 1
    assert 0 <= aws.sleeps[0] <= 0.01


def test_put_failing_every_attempt_quarantined(aws):
    aws.store.create_feature_group(TOY)
    store = aws.store_with(max_workers=1, max_attempts=3)
    aws.runtime.inject_error("PutRecord", "ServiceUnavailable", times=3, status=503)

    result = store.ingest(TOY.name, toy_rows((1, T0, 2.5, 3, "shop"), (2, T0, 1.0, 1, "cafe")))
    quarantined = pd.read_csv(result.quarantine_path)

    assert result.records_written == 1
    assert result.records_rejected == 1
    assert quarantined["card_id"].tolist() == [1]
    assert quarantined[REJECT_REASON][0].startswith("PutRecord failed after 3 attempts: ServiceUnavailable")
    assert len(aws.sleeps) == 2
    assert aws.sleeps[1] <= 0.02


def test_put_validation_error_not_retried(aws):
    aws.store.create_feature_group(TOY)
    aws.runtime.inject_error("PutRecord", "ValidationError")

    result = aws.store_with(max_workers=1).ingest(TOY.name, toy_rows((1, T0, 2.5, 3, "shop")))

    assert result.records_rejected == 1
    assert len(aws.runtime.calls_of("PutRecord")) == 1


def test_put_access_denied_raises(aws):
    aws.store.create_feature_group(TOY)
    aws.runtime.inject_error("PutRecord", "AccessForbidden", times=10)

    with pytest.raises(ClientError, match="AccessForbidden"):
        aws.store.ingest(TOY.name, toy_rows(*((card_id, T0, 1.0, 1, "m") for card_id in range(10))))


def batch_get_response(*card_ids: int, unprocessed: list[str] = (), errors: list[dict] = ()) -> dict:
    records = [
        {
            "FeatureGroupName": TOY.name,
            "RecordIdentifierValueAsString": str(card_id),
            "Record": [
                {"FeatureName": "card_id", "ValueAsString": str(card_id)},
                {"FeatureName": "event_time", "ValueAsString": repr(T0)},
            ],
        }
        for card_id in card_ids
    ]
    unprocessed_identifiers = (
        [{"FeatureGroupName": TOY.name, "RecordIdentifiersValueAsString": list(unprocessed)}] if unprocessed else []
    )
    return {"Records": records, "Errors": list(errors), "UnprocessedIdentifiers": unprocessed_identifiers}


def batch_get_request(*texts: str) -> dict:
    return {
        "Identifiers": [{"FeatureGroupName": TOY.name, "RecordIdentifiersValueAsString": list(texts)}],
        "ExpirationTimeResponse": "Enabled",
    }


def test_unprocessed_identifiers_retried(aws):
    aws.store.create_feature_group(TOY)
    runtime = aws.validated_client("sagemaker-featurestore-runtime")
    store = aws.store_with(runtime_client=runtime)

    with Stubber(runtime) as stubber:
        stubber.add_response("batch_get_record", batch_get_response(1, unprocessed=["2"]), batch_get_request("1", "2"))
        stubber.add_response("batch_get_record", batch_get_response(2), batch_get_request("2"))
        records = store.get_records({TOY.name: [1, 2]}, as_of=T0)[TOY.name]
        stubber.assert_no_pending_responses()

    assert sorted(records) == [1, 2]


def test_unprocessed_after_retries_raise(aws):
    aws.store.create_feature_group(TOY)
    runtime = aws.validated_client("sagemaker-featurestore-runtime")
    store = aws.store_with(runtime_client=runtime, max_attempts=2)

    with Stubber(runtime) as stubber:
        stubber.add_response("batch_get_record", batch_get_response(1, unprocessed=["2"]), batch_get_request("1", "2"))
        stubber.add_response("batch_get_record", batch_get_response(unprocessed=["2"]), batch_get_request("2"))
        with pytest.raises(RecordReadError, match="toy-activity/2 \\(unprocessed after 2 attempts\\)") as raised:
            store.get_records({TOY.name: [1, 2]}, as_of=T0)

    assert raised.value.failures == [(TOY.name, "2", "unprocessed after 2 attempts")]


def test_record_error_raises_with_identifier(aws):
    aws.store.create_feature_group(TOY)
    runtime = aws.validated_client("sagemaker-featurestore-runtime")
    store = aws.store_with(runtime_client=runtime)
    error = {
        "FeatureGroupName": TOY.name,
        "RecordIdentifierValueAsString": "3",
        "ErrorCode": "ValidationError",
        "ErrorMessage": "bad identifier",
    }

    with Stubber(runtime) as stubber:
        stubber.add_response("batch_get_record", batch_get_response(errors=[error]), batch_get_request("3"))
        with pytest.raises(RecordReadError, match="toy-activity/3 \\(ValidationError: bad identifier\\)"):
            store.get_records({TOY.name: [3]}, as_of=T0)


# aws: feature group lifecycle through Stubber


def described(status: str, **extra) -> dict:
    return {
        "FeatureGroupArn": TOY_ARN,
        "FeatureGroupName": TOY.name,
        "RecordIdentifierFeatureName": TOY.record_identifier,
        "EventTimeFeatureName": TOY.event_time_feature,
        "FeatureDefinitions": TOY.feature_definitions(),
        "CreationTime": datetime(2024, 3, 5, tzinfo=timezone.utc),
        "NextToken": "",
        "OnlineStoreConfig": TOY.online_store_config(),
        "OfflineStoreConfig": {
            "S3StorageConfig": {
                "S3Uri": OFFLINE_STORE_URI,
                "ResolvedOutputS3Uri": f"{OFFLINE_STORE_URI}/{ACCOUNT}/sagemaker/{REGION}/offline-store/{TOY.name}-1709596800/data",
            },
            "DataCatalogConfig": {
                "TableName": "toy_activity_1709596800",
                "Catalog": "AwsDataCatalog",
                "Database": "sagemaker_featurestore",
            },
            "TableFormat": "Glue",
        },
        "RoleArn": ROLE_ARN,
        "Description": TOY.description,
        "FeatureGroupStatus": status,
        **extra,
    }


CREATE_REQUEST = {
    "FeatureGroupName": TOY.name,
    "RecordIdentifierFeatureName": "card_id",
    "EventTimeFeatureName": "event_time",
    "FeatureDefinitions": TOY.feature_definitions(),
    "OnlineStoreConfig": {"EnableOnlineStore": True, "TtlDuration": {"Unit": "Minutes", "Value": 1}},
    "RoleArn": ROLE_ARN,
    "OfflineStoreConfig": {
        "S3StorageConfig": {"S3Uri": OFFLINE_STORE_URI},
        "DisableGlueTableCreation": False,
        "TableFormat": "Glue",
    },
    "Description": TOY.description,
}


@pytest.fixture
def stubbed_sagemaker(aws_credentials, boto_session):
    client = boto_session.client("sagemaker", region_name=REGION)
    attach_request_validation(client)
    with mock_aws(), Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def stubbed_store(client, tmp_path: Path, sleeps: list[float], **config) -> SageMakerFeatureStore:
    clients = FeatureStoreClients(sagemaker=client, featurestore_runtime=None)
    return SageMakerFeatureStore(aws_config(tmp_path, **config), clients, sleep=sleeps.append)


def test_create_waits_until_created(stubbed_sagemaker, tmp_path):
    client, stubber = stubbed_sagemaker
    sleeps: list[float] = []
    name = {"FeatureGroupName": TOY.name}
    stubber.add_client_error("describe_feature_group", "ResourceNotFound", expected_params=name)
    stubber.add_response("create_feature_group", {"FeatureGroupArn": TOY_ARN}, CREATE_REQUEST)
    stubber.add_response("describe_feature_group", described("Creating"), name)
    stubber.add_response("describe_feature_group", described("Created"), name)

    description = stubbed_store(client, tmp_path, sleeps, poll_interval_seconds=2.5).create_feature_group(TOY)

    assert description["FeatureGroupStatus"] == "Created"
    assert sleeps == [2.5]


def test_create_failed_raises_reason(stubbed_sagemaker, tmp_path):
    client, stubber = stubbed_sagemaker
    name = {"FeatureGroupName": TOY.name}
    stubber.add_client_error("describe_feature_group", "ResourceNotFound", expected_params=name)
    stubber.add_response("create_feature_group", {"FeatureGroupArn": TOY_ARN}, CREATE_REQUEST)
    stubber.add_response("describe_feature_group", described("Creating"), name)
    stubber.add_response(
        "describe_feature_group", described("CreateFailed", FailureReason="Access denied to the S3 bucket"), name
    )

    with pytest.raises(FeatureGroupCreationError, match="CreateFailed: Access denied to the S3 bucket"):
        stubbed_store(client, tmp_path, []).create_feature_group(TOY)


def test_create_times_out(stubbed_sagemaker, tmp_path):
    client, stubber = stubbed_sagemaker
    name = {"FeatureGroupName": TOY.name}
    stubber.add_client_error("describe_feature_group", "ResourceNotFound", expected_params=name)
    stubber.add_response("create_feature_group", {"FeatureGroupArn": TOY_ARN}, CREATE_REQUEST)
    stubber.add_response("describe_feature_group", described("Creating"), name)

    with pytest.raises(FeatureGroupCreationError, match="timed out after 0 s with status Creating"):
        stubbed_store(client, tmp_path, [], create_timeout_seconds=0).create_feature_group(TOY)


def test_create_in_use_checks_existing(stubbed_sagemaker, tmp_path):
    client, stubber = stubbed_sagemaker
    name = {"FeatureGroupName": TOY.name}
    stubber.add_client_error("describe_feature_group", "ResourceNotFound", expected_params=name)
    stubber.add_client_error("create_feature_group", "ResourceInUse", expected_params=CREATE_REQUEST)
    stubber.add_response("describe_feature_group", described("Created", OnlineStoreConfig={"EnableOnlineStore": True}), name)

    with pytest.raises(FeatureGroupDefinitionMismatchError, match="OnlineStoreConfig is"):
        stubbed_store(client, tmp_path, []).create_feature_group(TOY)


def test_equivalent_ttl_units_match(stubbed_sagemaker, tmp_path):
    client, stubber = stubbed_sagemaker
    online = {"EnableOnlineStore": True, "TtlDuration": {"Unit": "Seconds", "Value": 60}, "StorageType": "Standard"}
    stubber.add_response("describe_feature_group", described("Created", OnlineStoreConfig=online), {"FeatureGroupName": TOY.name})

    description = stubbed_store(client, tmp_path, []).create_feature_group(TOY)

    assert description["OnlineStoreConfig"] == online


def test_delete_feature_group_waits(stubbed_sagemaker, tmp_path):
    client, stubber = stubbed_sagemaker
    sleeps: list[float] = []
    name = {"FeatureGroupName": TOY.name}
    stubber.add_response("describe_feature_group", described("Created"), name)
    stubber.add_response("delete_feature_group", {}, name)
    stubber.add_response("describe_feature_group", described("Deleting"), name)
    stubber.add_client_error("describe_feature_group", "ResourceNotFound", expected_params=name)

    stubbed_store(client, tmp_path, sleeps).delete_feature_group(TOY.name)

    assert len(sleeps) == 1


def test_delete_missing_group_raises(stubbed_sagemaker, tmp_path):
    client, stubber = stubbed_sagemaker
    stubber.add_client_error("describe_feature_group", "ResourceNotFound", expected_params={"FeatureGroupName": "absent"})

    with pytest.raises(FeatureGroupNotFoundError, match="'absent' not found"):
        stubbed_store(client, tmp_path, []).delete_feature_group("absent")


# aws: offline reads through Athena and S3


def test_read_offline_sql(aws):
    aws.store.create_feature_group(TOY)
    table = aws.store.describe_feature_group(TOY.name)["OfflineStoreConfig"]["DataCatalogConfig"]["TableName"]

    aws.store.read_offline(TOY.name, start=T0, end=T0 + HOUR)
    query = aws.athena.queries[-1]

    assert f'FROM "sagemaker_featurestore"."{table}"' in query["sql"]
    assert f'"event_time" >= {T0!r} AND "event_time" < {T0 + HOUR!r}' in query["sql"]
    assert 'row_number() OVER (PARTITION BY "card_id", "event_time" ORDER BY write_time DESC' in query["sql"]
    assert "WHERE version_rank = 1 AND NOT is_deleted" in query["sql"]
    assert query["database"] == "sagemaker_featurestore"
    assert query["catalog"] == "AwsDataCatalog"
    assert query["output_location"] == ATHENA_OUTPUT_URI


def test_read_offline_parses_athena_text(aws):
    aws.store.create_feature_group(TOY)
    rows = [
        {"card_id": "9007199254740993", "event_time": "1.7096238E9", "amount": None, "tx_count": "3", "merchant": "shop"},
        {"card_id": "2", "event_time": "1.7096238E9", "amount": "2.5E-7", "tx_count": None, "merchant": None},
    ]
    store = aws.store_with()
    store.clients = replace(store.clients, athena_query=lambda sql, **context: rows)

    offline = store.read_offline(TOY.name)

    assert offline["card_id"].tolist() == [2**53 + 1, 2]
    assert offline["event_time"].tolist() == [T0, T0]
    assert offline["amount"].isna().tolist() == [True, False]
    assert offline["amount"][1] == 2.5e-7
    assert offline["tx_count"].dtype == "Int64"
    assert offline["merchant"].tolist()[0] == "shop"


def test_offline_sync_downloads_only_new(aws):
    aws.store.create_feature_group(TOY)
    downloads: list[str] = []
    aws.s3.meta.events.register("before-call.s3.GetObject", lambda params, **kwargs: downloads.append(params["url_path"]))
    aws.store.ingest(TOY.name, toy_rows((1, T0, 1.0, 1, "a"), (2, T0 + HOUR, 2.0, 1, "b")))

    aws.store.offline_table_sql(TOY.name)
    first = len(downloads)
    aws.store.offline_table_sql(TOY.name)
    second = len(downloads) - first
    aws.store.ingest(TOY.name, toy_rows((3, T0, 3.0, 1, "c")))
    aws.store.offline_table_sql(TOY.name)
    third = len(downloads) - first - second

    assert (first, second, third) == (2, 0, 1)


def test_offline_sync_removes_deleted_objects(aws):
    aws.store.create_feature_group(TOY)
    aws.store.ingest(TOY.name, toy_rows((1, T0, 1.0, 1, "a"), (2, T0 + HOUR, 2.0, 1, "b")))
    aws.store.offline_table_sql(TOY.name)
    resolved = aws.store.describe_feature_group(TOY.name)["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"]
    prefix = resolved.removeprefix(f"s3://{BUCKET}/")
    keys = [item["Key"] for item in aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]
    hour_two = next(key for key in keys if "/hour=08/" in key)
    aws.s3.delete_object(Bucket=BUCKET, Key=hour_two)

    with duckdb.connect() as connection:
        rows = connection.sql(f"SELECT card_id FROM {aws.store.offline_table_sql(TOY.name)}").fetchall()

    assert rows == [(1,)]
    assert len(list((aws.tmp_path / "offline-cache").rglob("*.parquet"))) == 1


def test_offline_files_use_sagemaker_layout(aws):
    aws.store.create_feature_group(TOY)
    aws.store.ingest(TOY.name, toy_rows((1, T0, 1.0, 1, "a"), (2, T0 + 20 * HOUR, 2.0, 1, "b")))

    aws.store.offline_table_sql(TOY.name)
    relative = sorted(
        path.relative_to(aws.tmp_path / "offline-cache").as_posix()
        for path in (aws.tmp_path / "offline-cache").rglob("*.parquet")
    )

    layout = re.compile(r"toy-activity/[0-9a-f]{16}/data/year=\d{4}/month=\d{2}/day=\d{2}/hour=\d{2}/[^/]+\.parquet")
    assert all(layout.fullmatch(path) for path in relative)
    assert [path.split("/data/")[1].rsplit("/", 1)[0] for path in relative] == [
        "year=2024/month=03/day=05/hour=07",
        "year=2024/month=03/day=06/hour=03",
    ]


# aws: settings, open_feature_store and the Airflow hook


AWS_VARIABLES = {
    "FRAUD_DETECTION_BACKEND": "aws",
    "FRAUD_DETECTION_SAGEMAKER_ROLE_ARN": ROLE_ARN,
    "FRAUD_DETECTION_OFFLINE_STORE_S3_URI": OFFLINE_STORE_URI,
    "FRAUD_DETECTION_ATHENA_OUTPUT_S3_URI": ATHENA_OUTPUT_URI,
}


def test_settings_read_aws_variables(tmp_path):
    settings = Settings.from_mapping({**AWS_VARIABLES, "FRAUD_DETECTION_HOME": str(tmp_path), "AWS_DEFAULT_REGION": "eu-west-1"})

    assert settings.sagemaker_role_arn == ROLE_ARN
    assert settings.offline_store_s3_uri == OFFLINE_STORE_URI
    assert settings.athena_output_s3_uri == ATHENA_OUTPUT_URI
    assert settings.aws_region == "eu-west-1"
    assert settings.offline_store_cache_root == tmp_path / "feature-store" / "offline-store-cache"


@pytest.mark.parametrize(
    "variable",
    ["FRAUD_DETECTION_SAGEMAKER_ROLE_ARN", "FRAUD_DETECTION_OFFLINE_STORE_S3_URI", "FRAUD_DETECTION_ATHENA_OUTPUT_S3_URI"],
)
def test_missing_aws_setting_named(tmp_path, variable):
    environment = {key: value for key, value in AWS_VARIABLES.items() if key != variable}
    settings = Settings.from_mapping({**environment, "FRAUD_DETECTION_HOME": str(tmp_path)})

    with pytest.raises(ConfigurationError, match=f"The aws backend needs {variable}: set it"):
        open_feature_store(settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FRAUD_DETECTION_SAGEMAKER_ROLE_ARN", "feature-store-role"),
        ("FRAUD_DETECTION_OFFLINE_STORE_S3_URI", "https://bucket.s3.amazonaws.com/offline"),
    ],
)
def test_invalid_aws_setting_named(tmp_path, variable, value):
    settings = Settings.from_mapping({**AWS_VARIABLES, variable: value, "FRAUD_DETECTION_HOME": str(tmp_path)})

    with pytest.raises(ConfigurationError, match=f"{variable} '{re.escape(value)}' is not"):
        open_feature_store(settings)


def test_open_feature_store_with_clients(aws):
    settings = Settings.from_mapping({**AWS_VARIABLES, "FRAUD_DETECTION_HOME": str(aws.tmp_path)})

    store = open_feature_store(settings, clients=aws.store.clients)

    assert isinstance(store, SageMakerFeatureStore)
    assert store.config.cache_root == settings.offline_store_cache_root
    assert store.config.quarantine_root == settings.quarantine_root
    assert store.create_feature_group(TOY)["FeatureGroupStatus"] == "Created"


def test_open_feature_store_builds_clients(aws_credentials, tmp_path):
    settings = Settings.from_mapping({**AWS_VARIABLES, "FRAUD_DETECTION_HOME": str(tmp_path), "AWS_DEFAULT_REGION": "eu-west-1"})

    with mock_aws():
        store = open_feature_store(settings)

    assert store.clients.sagemaker.meta.region_name == "eu-west-1"
    assert store.clients.featurestore_runtime.meta.service_model.service_name == "sagemaker-featurestore-runtime"
    assert store.clients.s3.meta.service_model.service_name == "s3"
    assert store.clients.athena_query.client.meta.service_model.service_name == "athena"


def test_missing_region_named(aws_credentials, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    settings = Settings.from_mapping({**AWS_VARIABLES, "FRAUD_DETECTION_HOME": str(tmp_path)})

    with pytest.raises(ConfigurationError, match="set AWS_DEFAULT_REGION"):
        open_feature_store(settings)


def test_hook_builds_aws_store(aws_credentials, monkeypatch, tmp_path):
    from fraud_airflow.feature_store_hook import AthenaHookQuery, FeatureStoreHook

    for name, value in AWS_VARIABLES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FRAUD_DETECTION_HOME", str(tmp_path))

    with mock_aws():
        store = FeatureStoreHook(aws_conn_id=None).get_store()
        adapt_moto_sagemaker(store.clients.sagemaker)
        description = store.create_feature_group(TOY)

    assert isinstance(store, SageMakerFeatureStore)
    assert store.clients.featurestore_runtime.meta.service_model.service_name == "sagemaker-featurestore-runtime"
    assert store.clients.sagemaker.meta.region_name == REGION
    assert isinstance(store.clients.athena_query, AthenaHookQuery)
    assert description["FeatureGroupStatus"] == "Created"


def test_athena_hook_query_reads_rows(aws_credentials):
    from airflow.providers.amazon.aws.hooks.athena import AthenaHook
    from moto.athena.models import QueryResults, athena_backends

    from fraud_airflow.feature_store_hook import AthenaHookQuery

    column_info = [{"Name": name, "Type": kind} for name, kind in (("card_id", "bigint"), ("amount", "double"))]
    rows = [
        {"Data": [{"VarCharValue": "card_id"}, {"VarCharValue": "amount"}]},
        {"Data": [{"VarCharValue": "1"}, {"VarCharValue": "2.5"}]},
        {"Data": [{"VarCharValue": "2"}, {}]},
    ]

    with mock_aws():
        athena_backends[ACCOUNT][REGION].query_results_queue.append(QueryResults(rows=rows, column_info=column_info))
        query = AthenaHookQuery(AthenaHook(aws_conn_id=None), sleep_time=0)
        result = query(
            'SELECT card_id, amount FROM "sagemaker_featurestore"."toy"',
            database="sagemaker_featurestore",
            catalog="AwsDataCatalog",
            output_location=ATHENA_OUTPUT_URI,
        )

    assert result == [{"card_id": "1", "amount": "2.5"}, {"card_id": "2", "amount": None}]
