"""End to end: the main job on April 2018 of the handbook's real transactions (29 days).

The job runs as a user runs it, through the ``fraud-detection`` command. The tests then check
the summary, Airflow's metadata database, the stores and the endpoint over HTTP, and that a
second run over the same data changes nothing it should not.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.e2e

SLICE_START, SLICE_END = "2018-04-01", "2018-04-30"
DAG_IDS = ("weekly_batch_aggregates", "feature_consistency_check", "retrain_and_deploy", "batch_transform")
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _command(home: Path, *arguments: str) -> subprocess.CompletedProcess:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "FRAUD_DETECTION"))
    }
    environment["FRAUD_DETECTION_LABEL_DELAY_DAYS"] = "2"
    executable = Path(sys.executable).with_name("fraud-detection")
    return subprocess.run(
        [str(executable), "--home", str(home), *arguments], capture_output=True, text=True, env=environment, timeout=900
    )


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with NO_PROXY.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def four_weeks(handbook_data, tmp_path_factory) -> Path:
    """Write the handbook's April 2018 transactions to a temporary CSV (never committed)."""
    target = tmp_path_factory.mktemp("input") / "april-2018.csv"
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT * FROM read_csv('{handbook_data}', header = true) "
            f"WHERE TX_DATETIME >= '{SLICE_START}' AND TX_DATETIME < '{SLICE_END}' ORDER BY TRANSACTION_ID) "
            f"TO '{target}' (HEADER, DELIMITER ',', TIMESTAMPFORMAT '%Y-%m-%d %H:%M:%S')"
        )
    return target


@pytest.fixture(scope="module")
def main_job(four_weeks, tmp_path_factory):
    """Run the main job once; yield the home folder and the command's output; stop the endpoint after."""
    home = tmp_path_factory.mktemp("home")
    arguments = ("run", str(four_weeks), "--test-days", "4", "--burn-in-days", "3", "--num-boost-round", "60")
    result = _command(home, *arguments)
    yield home, result, arguments
    _command(home, "stop-endpoint")


def _endpoint_url(home: Path) -> str:
    described = _command(home, "describe-endpoint")
    assert described.returncode == 0, described.stderr
    return json.loads(described.stdout)["url"]


def test_main_job_prints_summary(main_job):
    _, result, _ = main_job
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Summary" in result.stdout
    assert "Weeks aggregated:      5" in result.stdout
    assert "average precision" in result.stdout
    assert "Consistency:           passed" in result.stdout


def test_dag_runs_are_recorded_in_airflow(main_job):
    home, _, _ = main_job
    with sqlite3.connect(home / "airflow" / "airflow.db") as connection:
        rows = connection.execute("SELECT dag_id, state, count(*) FROM dag_run GROUP BY dag_id, state").fetchall()
    succeeded = {dag_id: count for dag_id, state, count in rows if state == "success"}
    assert succeeded.get("weekly_batch_aggregates") == 5
    for dag_id in DAG_IDS[1:]:
        assert succeeded.get(dag_id) == 1, rows


def test_endpoint_scores_valid_transaction(main_job):
    home, _, _ = main_job
    body = {"transaction_id": 1, "card_id": 10, "terminal_id": 20, "amount": 42.5, "timestamp": "2018-04-30T08:00:00Z"}
    status, response = _post(f"{_endpoint_url(home)}/invocations", json.dumps(body).encode())
    assert status == 200
    assert 0.0 <= response["predictions"][0]["fraud_score"] <= 1.0


def test_endpoint_rejects_malformed_request(main_job):
    home, _, _ = main_job
    url = f"{_endpoint_url(home)}/invocations"
    status, response = _post(url, b'{"card_id": 10, "terminal_id": 20, "amount": "lots", "timestamp": "2018-04-30T08:00:00Z"}')
    assert status == 400
    assert response["field"] == "amount"
    status, _ = _post(url, b'{"card_id": 10, "terminal_id": 20, "amount": 5.0, "timestamp": "2018-04-30T08:00:01Z"}')
    assert status == 200


def test_batch_predictions_cover_last_week(main_job):
    import pandas as pd

    home, _, _ = main_job
    files = list((home / "batch-transform").glob("*/predictions.parquet"))
    assert len(files) == 1
    predictions = pd.read_parquet(files[0])
    assert predictions["transaction_id"].is_unique
    assert predictions["fraud_score"].between(0, 1).all()
    assert predictions["tx_datetime"].min() >= pd.Timestamp("2018-04-22")


def test_second_run_is_idempotent(main_job):
    import pandas as pd

    from fraud_detection.config import Settings
    from fraud_detection.features.catalog import BATCH_FEATURE_GROUPS
    from fraud_detection.stores.local import LocalFeatureStore

    home, _, arguments = main_job
    settings = Settings(home=home)
    store = LocalFeatureStore(home / "feature-store", settings.quarantine_root)
    before = {spec.name: store.read_offline(spec.name) for spec in BATCH_FEATURE_GROUPS}
    rerun = _command(home, *arguments)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "0 transactions loaded" in rerun.stdout
    for spec in BATCH_FEATURE_GROUPS:
        after = store.read_offline(spec.name)
        pd.testing.assert_frame_equal(after, before[spec.name])
