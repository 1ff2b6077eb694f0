"""Feature group operators and sensor on the local backend, executed as Airflow would."""

from __future__ import annotations

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from fraud_airflow.feature_group_operators import (
    CreateFeatureGroupOperator,
    DeleteFeatureGroupOperator,
    DescribeFeatureGroupOperator,
    GetFeatureRecordsOperator,
    IngestFeatureGroupOperator,
    QueryOfflineStoreOperator,
)
from fraud_airflow.feature_group_sensors import FeatureGroupCreatedSensor
from fraud_detection.features.catalog import TERMINAL_WEEKLY

GROUP = TERMINAL_WEEKLY.name
WEEK_END = 1_523_836_800.0  # 2018-04-16 00:00 UTC


@pytest.fixture(autouse=True)
def local_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUD_DETECTION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FRAUD_DETECTION_BACKEND", "local")


def _records(terminals: range, event_time: float = WEEK_END) -> pd.DataFrame:
    frame = pd.DataFrame({"terminal_id": list(terminals), "event_time": event_time})
    for feature in TERMINAL_WEEKLY.value_features:
        frame[feature.name] = 1.0 if feature.type.value == "Fractional" else 1
    frame["terminal_fraud_rate_7d"] = 0.5
    return frame


def _create():
    return CreateFeatureGroupOperator(task_id="create", feature_group_name=GROUP).execute({})


def test_create_is_idempotent():
    first = _create()
    second = _create()

    assert first["FeatureGroupStatus"] == "Created"
    assert second == first


def test_create_rejects_undeclared_group():
    with pytest.raises(KeyError, match="no-such-group"):
        CreateFeatureGroupOperator(task_id="create", feature_group_name="no-such-group").execute({})


def test_sensor_waits_for_creation():
    sensor = FeatureGroupCreatedSensor(task_id="wait", feature_group_name=GROUP)

    assert sensor.poke({}) is False
    _create()
    assert sensor.poke({}) is True


def test_ingest_file_counts_records(tmp_path):
    _create()
    _records(range(10)).to_parquet(tmp_path / "week.parquet")

    result = IngestFeatureGroupOperator(
        task_id="ingest", feature_group_name=GROUP, source_path=str(tmp_path / "week.parquet"), ingest_id="w1"
    ).execute({})

    assert result["records_written"] == 10
    assert result["records_rejected"] == 0


def test_ingest_folder_rerun_is_idempotent(tmp_path):
    _create()
    folder = tmp_path / "parts"
    folder.mkdir()
    _records(range(0, 5)).to_parquet(folder / "a.parquet")
    _records(range(5, 9)).to_parquet(folder / "b.parquet")
    operator = IngestFeatureGroupOperator(task_id="ingest", feature_group_name=GROUP, source_path=str(folder), ingest_id="w1")

    operator.execute({})
    operator.execute({})
    exported = QueryOfflineStoreOperator(
        task_id="query", feature_group_name=GROUP, start="2018-04-16T00:00:00Z", end="2018-04-17T00:00:00Z",
        output_path=str(tmp_path / "out.parquet"),
    ).execute({})

    assert exported["records"] == 9
    assert pd.read_parquet(tmp_path / "out.parquet")["terminal_id"].tolist() == list(range(9))


def test_ingest_fails_past_rejected_ratio(tmp_path):
    _create()
    frame = _records(range(4))
    frame["terminal_tx_count_7d"] = ["many", "1", "1", "1"]
    frame.to_parquet(tmp_path / "week.parquet")
    operator = IngestFeatureGroupOperator(
        task_id="ingest", feature_group_name=GROUP, source_path=str(tmp_path / "week.parquet"), max_rejected_ratio=0.1
    )

    with pytest.raises(AirflowFailException, match="1 of 4 rows") as raised:
        operator.execute({})

    assert "quarantine" in str(raised.value)
    records = GetFeatureRecordsOperator(task_id="get", identifiers={GROUP: [0, 1, 2, 3]}, as_of=WEEK_END).execute({})
    assert sorted(records[GROUP]) == ["1", "2", "3"]


def test_ingest_missing_source_raises(tmp_path):
    _create()
    operator = IngestFeatureGroupOperator(task_id="ingest", feature_group_name=GROUP, source_path=str(tmp_path / "none"))

    with pytest.raises(AirflowFailException, match="No Parquet file"):
        operator.execute({})


def test_get_records_honours_ttl(tmp_path):
    _create()
    _records(range(3)).to_parquet(tmp_path / "week.parquet")
    IngestFeatureGroupOperator(task_id="ingest", feature_group_name=GROUP, source_path=str(tmp_path / "week.parquet")).execute({})
    expired_at = WEEK_END + TERMINAL_WEEKLY.ttl.total_seconds()

    current = GetFeatureRecordsOperator(task_id="get", identifiers={GROUP: [0, 1, 2, 7]}, as_of=expired_at - 1).execute({})
    expired = GetFeatureRecordsOperator(task_id="get", identifiers={GROUP: [0, 1, 2]}, as_of=expired_at).execute({})

    assert sorted(current[GROUP]) == ["0", "1", "2"]
    assert expired[GROUP] == {}


def test_query_rejects_inverted_range(tmp_path):
    _create()
    operator = QueryOfflineStoreOperator(
        task_id="query", feature_group_name=GROUP, start="2018-04-17", end="2018-04-16", output_path=str(tmp_path / "x.parquet")
    )

    with pytest.raises(AirflowFailException, match="must be after start"):
        operator.execute({})


def test_describe_and_delete():
    _create()

    description = DescribeFeatureGroupOperator(task_id="describe", feature_group_name=GROUP).execute({})
    DeleteFeatureGroupOperator(task_id="delete", feature_group_name=GROUP).execute({})

    assert description["RecordIdentifierFeatureName"] == "terminal_id"
    assert FeatureGroupCreatedSensor(task_id="wait", feature_group_name=GROUP).poke({}) is False


def test_ingest_rejects_unknown_target_store():
    with pytest.raises(ValueError, match="target_stores"):
        IngestFeatureGroupOperator(task_id="ingest", feature_group_name=GROUP, source_path="x", target_stores=("cache",))


def test_get_records_accepts_json_and_iso_time(tmp_path):
    _create()
    _records(range(3)).to_parquet(tmp_path / "week.parquet")
    IngestFeatureGroupOperator(task_id="ingest", feature_group_name=GROUP, source_path=str(tmp_path / "week.parquet")).execute({})

    records = GetFeatureRecordsOperator(
        task_id="get", identifiers='{"terminal-weekly-aggregates": [0, 2]}', as_of="2018-04-20T00:00:00Z"
    ).execute({})

    assert sorted(records[GROUP]) == ["0", "2"]


@pytest.mark.parametrize(
    ("identifiers", "as_of", "message"),
    [
        ({GROUP: 0}, None, "is not a list"),
        ("not json", None, "Invalid identifiers"),
        ({GROUP: [0]}, "2018-13-01", "Invalid as_of"),
        ({"no-such-group": [0]}, None, "not found"),
    ],
)
def test_get_records_bad_input_fails_without_retry(identifiers, as_of, message):
    _create()
    operator = GetFeatureRecordsOperator(task_id="get", identifiers=identifiers, as_of=as_of)

    with pytest.raises(AirflowFailException, match=message):
        operator.execute({})


def test_ingest_unknown_group_fails_without_retry(tmp_path):
    _records(range(2)).to_parquet(tmp_path / "week.parquet")
    operator = IngestFeatureGroupOperator(task_id="ingest", feature_group_name=GROUP, source_path=str(tmp_path / "week.parquet"))

    with pytest.raises(AirflowFailException, match="not found"):
        operator.execute({})
