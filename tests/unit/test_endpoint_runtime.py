"""Test the local serverless endpoint runtime and its control plane against real runtime processes.

Every runtime listens on 127.0.0.1 and every request goes there. The manager
fixture deletes each endpoint that a test created, so no process outlives the test.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from endpoint_fixtures import ENTRY_POINT, write_model
from fraud_detection.serving.endpoints import (
    EndpointConfig,
    EndpointError,
    EndpointFailedError,
    EndpointNotFoundError,
    EndpointUpdateError,
    LocalEndpointManager,
    ModelError,
    ServerlessConfig,
    ThrottlingError,
    validate_endpoint_name,
)
from fraud_detection.serving.predictor import InvalidRequestError

FIXTURES_DIR = Path(__file__).resolve().parent


@pytest.fixture
def manager(tmp_path, monkeypatch):
    # The runtime process imports the test predictor from this folder through the inherited PYTHONPATH.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(FIXTURES_DIR), os.environ.get("PYTHONPATH")])))
    endpoint_manager = LocalEndpointManager(tmp_path / "endpoints")
    yield endpoint_manager
    for name in endpoint_manager.list_endpoints():
        endpoint_manager.delete(name)


def make_config(
    tmp_path: Path,
    name: str = "fraud-local",
    version: str = "v1",
    environment: dict[str, str] | None = None,
    entry_point: str = ENTRY_POINT,
    **serverless,
) -> EndpointConfig:
    return EndpointConfig(
        name=name,
        model_dir=write_model(tmp_path / "models" / version, version),
        entry_point=entry_point,
        environment=environment or {},
        serverless=ServerlessConfig(**serverless),
        model_name=f"fraud-test-{version}",
    )


def http_request(url: str, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"):
    """Send one request to the endpoint at url and return the status code and the decoded JSON body."""
    port = int(url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": content_type} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def wait_until(condition, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ping_reports_status(manager, tmp_path):
    description = manager.create_or_update(make_config(tmp_path))

    status, body = http_request(description.url, "GET", "/ping")

    assert status == 200
    assert body["endpoint_name"] == "fraud-local"
    assert body["status"] == "InService"
    assert body["model_name"] == "fraud-test-v1"
    assert body["endpoint_config_version"] == 1
    assert body["in_flight"] == 0
    assert body["memory_in_use_mb"] > 0
    assert body["memory_size_in_mb"] == 2048
    assert body["pid"] == description.pid


def test_describe_after_create(manager, tmp_path):
    config = make_config(tmp_path)

    description = manager.create_or_update(config)

    assert description.status == "InService"
    assert description.url.startswith("http://127.0.0.1:")
    assert description.model_name == "fraud-test-v1"
    assert description.config == config
    assert description.failure_reason is None
    assert description.model_loaded
    assert description.model_loads == 1
    assert description.cold_starts == 0
    assert description.last_model_load_seconds is not None
    assert manager.list_endpoints() == ["fraud-local"]


def test_invoke_single_and_batch(manager, tmp_path):
    manager.create_or_update(make_config(tmp_path))

    single = manager.invoke("fraud-local", {"amount": 10})
    batch = manager.invoke("fraud-local", [{"amount": 1}, {"amount": 2.5}])

    assert single == {"predictions": [{"score": 20.0, "model_version": "v1"}]}
    assert batch == {"predictions": [{"score": 2.0, "model_version": "v1"}, {"score": 5.0, "model_version": "v1"}]}


def test_malformed_json_then_valid_request(manager, tmp_path):
    description = manager.create_or_update(make_config(tmp_path))

    status, body = http_request(description.url, "POST", "/invocations", b'{"amount": 1,')

    assert status == 400
    assert body["error"] == "ValidationError"
    assert body["field"] == "body"
    assert "not valid JSON" in body["message"]
    assert manager.invoke("fraud-local", {"amount": 3})["predictions"][0]["score"] == 6.0


@pytest.mark.parametrize(
    ("raw_body", "field"),
    [
        (b"", "body"),
        (b"[]", "body"),
        (b'"text"', "body"),
        (b'[{"amount": 1}, 7]', "body[1]"),
    ],
)
def test_body_shape_errors_name_field(manager, tmp_path, raw_body, field):
    description = manager.create_or_update(make_config(tmp_path))

    status, body = http_request(description.url, "POST", "/invocations", raw_body)

    assert status == 400
    assert body["field"] == field


def test_invalid_request_names_field(manager, tmp_path):
    description = manager.create_or_update(make_config(tmp_path))

    status, body = http_request(description.url, "POST", "/invocations", json.dumps({"amount": "ten"}).encode())
    with pytest.raises(InvalidRequestError) as missing:
        manager.invoke("fraud-local", {"merchant": "m-1"})
    with pytest.raises(InvalidRequestError) as in_batch:
        manager.invoke("fraud-local", [{"amount": 1}, {"amount": None}])

    assert status == 400
    assert body == {"error": "ValidationError", "field": "amount", "message": "must be a number, not str."}
    assert missing.value.field == "amount"
    assert in_batch.value.field == "amount"
    assert "item 1 of the batch" in in_batch.value.message
    assert manager.invoke("fraud-local", {"amount": 1})["predictions"][0]["score"] == 2.0


def test_wrong_content_type_rejected(manager, tmp_path):
    description = manager.create_or_update(make_config(tmp_path))

    status, body = http_request(description.url, "POST", "/invocations", b'{"amount": 1}', content_type="text/csv")

    assert status == 415
    assert body["field"] == "Content-Type"


def test_oversized_payload_rejected(manager, tmp_path):
    description = manager.create_or_update(make_config(tmp_path))
    port = int(description.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    # Only the headers are sent: the runtime must reject on Content-Length alone.
    connection.putrequest("POST", "/invocations")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(5 * 1024 * 1024))
    connection.endheaders()
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()

    assert response.status == 413
    assert body["field"] == "body"
    assert manager.invoke("fraud-local", {"amount": 1})["predictions"][0]["score"] == 2.0


def test_predictor_error_returns_500(manager, tmp_path):
    description = manager.create_or_update(make_config(tmp_path))

    with pytest.raises(ModelError) as failure:
        manager.invoke("fraud-local", {"amount": 1, "fail": True})

    assert failure.value.status_code == 500
    assert "the test predictor failed on request" in str(failure.value)
    assert manager.invoke("fraud-local", {"amount": 2})["predictions"][0]["score"] == 4.0
    assert "the test predictor failed on request" in description.log_file.read_text()


def test_burst_over_concurrency_throttles(manager, tmp_path):
    config = make_config(tmp_path, environment={"PREDICT_SLEEP_SECONDS": "0.5"}, max_concurrency=2)
    description = manager.create_or_update(config)
    request_count = 8
    barrier = threading.Barrier(request_count)
    outcomes: list[str] = []
    outcomes_lock = threading.Lock()

    def send() -> None:
        barrier.wait(timeout=10)
        try:
            manager.invoke("fraud-local", {"amount": 1})
            outcome = "ok"
        except ThrottlingError:
            outcome = "throttled"
        except Exception as error:  # noqa: BLE001 - any other outcome fails the test below.
            outcome = f"error: {error!r}"
        with outcomes_lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=send) for _ in range(request_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    _, ping = http_request(description.url, "GET", "/ping")

    assert len(outcomes) == request_count
    assert [outcome for outcome in outcomes if outcome not in ("ok", "throttled")] == []
    assert outcomes.count("ok") >= 2
    assert outcomes.count("throttled") >= 1
    assert ping["throttled_requests"] == outcomes.count("throttled")
    assert ping["in_flight"] == 0


def test_cold_start_after_idle_timeout(manager, tmp_path):
    description = manager.create_or_update(make_config(tmp_path, idle_timeout_seconds=0.5))
    manager.invoke("fraud-local", {"amount": 1})

    unloaded = wait_until(lambda: not manager.describe("fraud-local").model_loaded, timeout=5)
    result = manager.invoke("fraud-local", {"amount": 4})
    after = manager.describe("fraud-local")
    _, ping = http_request(description.url, "GET", "/ping")

    assert unloaded
    assert result["predictions"][0]["score"] == 8.0
    assert after.cold_starts == 1
    assert after.model_loads == 2
    assert after.model_loaded
    assert after.last_model_loaded_at > description.last_model_loaded_at
    assert ping["cold_starts"] == 1
    assert ping["last_model_load_seconds"] is not None
    assert "cold start" in after.log_file.read_text()


def test_update_without_downtime(manager, tmp_path):
    manager.create_or_update(make_config(tmp_path, version="v1"))
    # The slow load of v2 keeps the update open long enough for many requests to hit the old model.
    new_config = make_config(tmp_path, version="v2", environment={"LOAD_SLEEP_SECONDS": "1.0"})
    stop = threading.Event()
    results: dict[int, list[tuple[float, str]]] = {0: [], 1: []}
    failures: list[str] = []

    def stream(worker: int) -> None:
        deadline = time.monotonic() + 30
        for _ in range(5000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            try:
                response = manager.invoke("fraud-local", {"amount": 1})
                results[worker].append((time.monotonic(), response["predictions"][0]["model_version"]))
            except Exception as error:  # noqa: BLE001 - every failure is collected and asserted on.
                failures.append(repr(error))

    workers = [threading.Thread(target=stream, args=(worker,)) for worker in results]
    for worker in workers:
        worker.start()
    time.sleep(0.2)
    update_started = time.monotonic()
    updated = manager.create_or_update(new_config)
    update_finished = time.monotonic()
    time.sleep(0.3)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)

    all_results = results[0] + results[1]
    served_by_old_during_update = [v for t, v in all_results if update_started < t < update_finished and v == "v1"]
    assert failures == []
    assert updated.status == "InService"
    assert updated.model_name == "fraud-test-v2"
    assert updated.endpoint_config_version == 2
    assert {version for _, version in all_results} == {"v1", "v2"}
    assert served_by_old_during_update
    for worker_results in results.values():
        versions = [version for _, version in worker_results]
        first_new = versions.index("v2")
        assert "v1" not in versions[first_new:], "a request saw the old model after the swap"


@pytest.mark.parametrize(
    ("environment", "model_dir_name", "reason"),
    [
        ({"FAIL_LOAD": "the v2 artifact is corrupt"}, "v2", "the v2 artifact is corrupt"),
        ({}, "missing-model", "FileNotFoundError"),
    ],
)
def test_failed_update_keeps_old_model(manager, tmp_path, environment, model_dir_name, reason):
    original = manager.create_or_update(make_config(tmp_path, version="v1"))
    broken = make_config(tmp_path, version="v2", environment=environment)
    broken = EndpointConfig(
        name=broken.name,
        model_dir=tmp_path / "models" / model_dir_name,
        entry_point=broken.entry_point,
        environment=broken.environment,
        serverless=broken.serverless,
        model_name=broken.model_name,
    )

    with pytest.raises(EndpointUpdateError, match=reason):
        manager.create_or_update(broken)
    description = manager.describe("fraud-local")

    assert description.status == "InService"
    assert description.model_name == "fraud-test-v1"
    assert description.endpoint_config_version == 1
    assert description.pid == original.pid
    assert reason in description.failure_reason
    assert "still serves model fraud-test-v1" in description.failure_reason
    assert manager.invoke("fraud-local", {"amount": 1})["predictions"][0]["model_version"] == "v1"


def test_good_update_clears_failure_reason(manager, tmp_path):
    manager.create_or_update(make_config(tmp_path, version="v1"))
    with pytest.raises(EndpointUpdateError):
        manager.create_or_update(make_config(tmp_path, version="v2", environment={"FAIL_LOAD": "bad"}))

    description = manager.create_or_update(make_config(tmp_path, version="v3"))

    assert description.model_name == "fraud-test-v3"
    assert description.failure_reason is None
    assert manager.invoke("fraud-local", {"amount": 1})["predictions"][0]["model_version"] == "v3"


def test_same_config_is_no_op(manager, tmp_path):
    config = make_config(tmp_path)
    first = manager.create_or_update(config)

    second = manager.create_or_update(config)

    assert second.pid == first.pid
    assert second.endpoint_config_version == 1
    assert second.model_loads == 1


def test_update_changes_max_concurrency(manager, tmp_path):
    description = manager.create_or_update(make_config(tmp_path, max_concurrency=2))

    manager.create_or_update(make_config(tmp_path, max_concurrency=7))
    _, ping = http_request(description.url, "GET", "/ping")

    assert ping["max_concurrency"] == 7
    assert ping["endpoint_config_version"] == 2


def test_memory_limit_fails_endpoint(manager, tmp_path):
    config = make_config(tmp_path, environment={"ALLOCATE_MB": "1100"}, memory_size_in_mb=1024)

    with pytest.raises(EndpointFailedError, match="MemorySizeInMB of 1024 MB"):
        manager.create_or_update(config)
    description = manager.describe("fraud-local")

    assert description.status == "Failed"
    assert "MemorySizeInMB" in description.failure_reason
    assert description.url is None
    with pytest.raises(EndpointError, match="Failed"):
        manager.invoke("fraud-local", {"amount": 1})


def test_missing_factory_fails_endpoint(manager, tmp_path):
    config = make_config(tmp_path, entry_point="endpoint_fixtures:no_such_factory")

    with pytest.raises(EndpointFailedError, match="has no attribute 'no_such_factory'"):
        manager.create_or_update(config)

    assert manager.describe("fraud-local").status == "Failed"


def test_killed_process_is_out_of_service(manager, tmp_path):
    config = make_config(tmp_path)
    original = manager.create_or_update(config)

    os.kill(original.pid, signal.SIGKILL)
    out_of_service = wait_until(lambda: manager.describe("fraud-local").status == "OutOfService", timeout=5)
    description = manager.describe("fraud-local")

    assert out_of_service
    assert description.url is None
    assert f"process {original.pid} is not running" in description.failure_reason
    with pytest.raises(EndpointError, match="OutOfService"):
        manager.invoke("fraud-local", {"amount": 1})


def test_create_restarts_dead_process(manager, tmp_path):
    config = make_config(tmp_path)
    original = manager.create_or_update(config)
    os.kill(original.pid, signal.SIGKILL)
    wait_until(lambda: manager.describe("fraud-local").status == "OutOfService", timeout=5)

    restarted = manager.create_or_update(config)

    assert restarted.status == "InService"
    assert restarted.pid != original.pid
    assert manager.invoke("fraud-local", {"amount": 1})["predictions"][0]["score"] == 2.0


def test_delete_stops_process(manager, tmp_path):
    description = manager.create_or_update(make_config(tmp_path))

    manager.delete("fraud-local")

    assert not process_exists(description.pid)
    assert manager.list_endpoints() == []
    assert not description.state_dir.exists()
    with pytest.raises(EndpointNotFoundError):
        manager.describe("fraud-local")
    with pytest.raises(EndpointNotFoundError):
        manager.delete("fraud-local")


def test_delete_finishes_request_in_flight(manager, tmp_path):
    description = manager.create_or_update(make_config(tmp_path, environment={"PREDICT_SLEEP_SECONDS": "0.5"}))
    results: list[dict] = []
    request = threading.Thread(target=lambda: results.append(manager.invoke("fraud-local", {"amount": 1})))
    request.start()
    in_flight = wait_until(lambda: http_request(description.url, "GET", "/ping")[1]["in_flight"] == 1, timeout=5)

    manager.delete("fraud-local")
    request.join(timeout=10)

    assert in_flight
    assert results == [{"predictions": [{"score": 2.0, "model_version": "v1"}]}]
    assert not process_exists(description.pid)


def test_fixed_port(manager, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]

    description = manager.create_or_update(make_config(tmp_path), port=free_port)

    assert description.url == f"http://127.0.0.1:{free_port}"
    assert manager.invoke("fraud-local", {"amount": 1})["predictions"][0]["score"] == 2.0


def test_busy_port_fails_endpoint(manager, tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy_port = listener.getsockname()[1]

        with pytest.raises(EndpointFailedError, match=f"Could not listen on 127.0.0.1:{busy_port}"):
            manager.create_or_update(make_config(tmp_path), port=busy_port)

    assert manager.describe("fraud-local").status == "Failed"


@pytest.mark.parametrize("name", ["a", "fraud-detection", "a--b", "A1", "x" * 63])
def test_valid_endpoint_names(name):
    assert validate_endpoint_name(name) == name


@pytest.mark.parametrize("name", ["", "-fraud", "fraud-", "fraud_detection", "fraud detection", "../fraud", "x" * 64])
def test_invalid_endpoint_names(manager, tmp_path, name):
    with pytest.raises(ValueError, match=r"must match \^\[a-zA-Z0-9\]\(-\*\[a-zA-Z0-9\]\)\{0,62\}\$"):
        make_config(tmp_path, name=name)
    with pytest.raises(ValueError, match="Invalid endpoint name"):
        manager.describe(name)


@pytest.mark.parametrize("memory_size_in_mb", [1024, 2048, 3072, 4096, 5120, 6144])
def test_valid_memory_sizes(memory_size_in_mb):
    assert ServerlessConfig(memory_size_in_mb=memory_size_in_mb).memory_size_in_mb == memory_size_in_mb


@pytest.mark.parametrize("memory_size_in_mb", [0, 512, 1000, 1536, 7168, 2048.0, True, "2048"])
def test_invalid_memory_sizes(memory_size_in_mb):
    with pytest.raises(ValueError, match="memory_size_in_mb"):
        ServerlessConfig(memory_size_in_mb=memory_size_in_mb)


@pytest.mark.parametrize("max_concurrency", [1, 200])
def test_valid_max_concurrency(max_concurrency):
    assert ServerlessConfig(max_concurrency=max_concurrency).max_concurrency == max_concurrency


@pytest.mark.parametrize("max_concurrency", [0, 201, -1, 2.5, None])
def test_invalid_max_concurrency(max_concurrency):
    with pytest.raises(ValueError, match="max_concurrency"):
        ServerlessConfig(max_concurrency=max_concurrency)


@pytest.mark.parametrize("idle_timeout_seconds", [0, -1, math.nan, math.inf, "300"])
def test_invalid_idle_timeout(idle_timeout_seconds):
    with pytest.raises(ValueError, match="idle_timeout_seconds"):
        ServerlessConfig(idle_timeout_seconds=idle_timeout_seconds)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_name": "fraud_xgboost"}, "Invalid model name"),
        ({"entry_point": "endpoint_fixtures.make_predictor"}, "Invalid entry point"),
        ({"environment": {"1BAD": "x"}}, "Invalid environment variable name"),
        ({"environment": {"GOOD": 1}}, "Invalid value of environment variable 'GOOD'"),
    ],
)
def test_invalid_endpoint_config(tmp_path, changes, message):
    fields = {
        "name": "fraud-local",
        "model_dir": tmp_path,
        "entry_point": ENTRY_POINT,
        "environment": {},
        "serverless": ServerlessConfig(),
        "model_name": "fraud-xgboost-v3",
    }
    fields.update(changes)

    with pytest.raises(ValueError, match=message):
        EndpointConfig(**fields)


def test_endpoint_config_round_trip(tmp_path):
    config = make_config(tmp_path, environment={"ONLINE_STORE_PATH": "/tmp/store.duckdb"}, max_concurrency=3)

    assert EndpointConfig.from_dict(config.to_dict()) == config
