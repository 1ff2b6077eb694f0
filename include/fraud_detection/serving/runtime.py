"""Serve one local stand-in for a SageMaker serverless endpoint over HTTP on 127.0.0.1.

The runtime behaves like a serverless endpoint wherever a pipeline or a test
can observe it. It serves ``GET /ping`` and ``POST /invocations``, returns HTTP
429 above MaxConcurrency, enforces MemorySizeInMB after a model loads, unloads
the model after an idle timeout (so the next request is a cold start) and swaps
models on update without failing requests. It is a development tool for a
laptop, not a production server. It has no authentication or TLS, runs every
request in a thread of one Python process and does not enforce SageMaker's 60 s
invocation timeout.

LocalEndpointManager (``fraud_detection.serving.endpoints``) starts it as a
detached process and talks to it through files in its state folder:
endpoint.json (the requested endpoint config, polled for updates), state.json
(written here) and runtime.log. To run it in the foreground for debugging:

    python -m fraud_detection.serving.runtime --state-dir DIR [--port N]

SIGTERM or SIGINT stops it after requests in flight finish. It also stops by
itself when DIR/endpoint.json is removed.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import resource
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fraud_detection.serving.endpoints import (
    CONFIG_FILE,
    CREATING,
    FAILED,
    IN_SERVICE,
    STATE_FILE,
    UPDATING,
    EndpointConfig,
    read_json,
    write_json_atomic,
)
from fraud_detection.serving.predictor import InvalidRequestError, Predictor, load_predictor

logger = logging.getLogger("fraud_detection.serving.runtime")

HOST = "127.0.0.1"
MIB = 1024 * 1024
# SageMaker's limit for serverless request and response payloads is 4 MB ("Invoke a
# serverless endpoint", SageMaker developer guide).
# NOTE: the guide does not say whether MB means 10**6 or 2**20 bytes; this uses 2**20.
MAX_PAYLOAD_BYTES = 4 * MIB
# How often the housekeeping thread polls endpoint.json and checks the idle timeout.
TICK_SECONDS = 0.1
# Throttled and rejected requests are logged as one count per interval, not one line per request.
SUMMARY_LOG_SECONDS = 10.0


def resident_memory_bytes() -> int:
    """Return the resident set size of this process in bytes."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        # NOTE: without /proc (macOS) this is the peak resident size, not the current one,
        # so memory freed by an unload still counts against the limit.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _json_default(value: Any) -> Any:
    """Convert NumPy scalars and arrays, which predictors often return, to plain Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, default=_json_default).encode("utf-8")


class MemoryLimitExceededError(RuntimeError):
    """A model whose process needs more resident memory than MemorySizeInMB after loading."""


class ModelVariant:
    """One loaded or unloaded model, like a SageMaker production variant.

    lock is held while the predictor loads or unloads, so a request that finds
    the model unloaded waits for one load instead of starting its own.
    """

    def __init__(self, config: EndpointConfig, version: int):
        self.config = config
        self.version = version
        self.lock = threading.Lock()
        self.predictor: Predictor | None = None
        # Growth of resident memory during the load, used to estimate the next model's own footprint.
        self.load_memory_bytes = 0

    def load(self, other_models_bytes: int) -> float:
        """Load the predictor, check the memory limit and return the load time in seconds.

        other_models_bytes is the memory of other models loaded in this process,
        left out of the check so that an update, which keeps the old and the
        new model in memory at once, is judged by the new model alone.
        """
        before = resident_memory_bytes()
        started = time.perf_counter()
        predictor = load_predictor(self.config.entry_point, self.config.model_dir, self.config.environment)
        seconds = time.perf_counter() - started
        after = resident_memory_bytes()

        # NOTE: this is an estimate, because resident memory also counts pages that Python
        # freed but did not return to the operating system.
        needed = after - other_models_bytes
        limit_mb = self.config.serverless.memory_size_in_mb
        if needed > limit_mb * MIB:
            del predictor
            gc.collect()
            raise MemoryLimitExceededError(
                f"Model {self.config.model_name} needs about {needed / MIB:.0f} MB of resident memory after loading, "
                f"more than the MemorySizeInMB of {limit_mb} MB. Choose a larger memory size "
                "(1024-6144 MB in 1024 MB steps) or a smaller model."
            )
        self.predictor = predictor
        self.load_memory_bytes = max(0, after - before)
        return seconds

    def unload(self) -> None:
        """Drop the predictor so its memory can be freed."""
        self.predictor = None
        self.load_memory_bytes = 0
        gc.collect()


class EndpointRuntime:
    """The endpoint: HTTP server, concurrency limit, model lifecycle and state file."""

    def __init__(self, state_dir: Path, port: int = 0):
        self.state_dir = Path(state_dir)
        self.requested_port = port
        record = read_json(self.state_dir / CONFIG_FILE)
        if record is None:
            raise FileNotFoundError(f"Missing {self.state_dir / CONFIG_FILE}. Start endpoints with LocalEndpointManager.")
        self.name = record["config"]["name"]
        self._initial_version = record["version"]
        self._initial_config = EndpointConfig.from_dict(record["config"])

        self.server: ThreadingHTTPServer | None = None
        self.port: int | None = None
        self.stop_event = threading.Event()

        # _lock guards the status fields and counters below. _state_write_lock keeps
        # state.json writes in order.
        self._lock = threading.Lock()
        self._state_write_lock = threading.Lock()
        self._status = CREATING
        self._failure_reason: str | None = None
        self._variant: ModelVariant | None = None
        self._failed_version: int | None = None
        self._in_flight = 0
        self._last_activity = time.monotonic()
        self._invocations = 0
        self._throttled = 0
        self._rejected = 0
        self._throttled_since_summary = 0
        self._rejected_since_summary = 0
        self._cold_starts = 0
        self._model_loads = 0
        self._last_load_seconds: float | None = None
        self._last_loaded_at: str | None = None
        self._creation_time = _utc_now()
        self._last_modified_time = self._creation_time
        self._update_thread: threading.Thread | None = None
        self._config_file_signature: tuple[int, int] | None = None
        self._last_summary = time.monotonic()

    # Lifecycle

    def run(self) -> int:
        """Serve until stopped and return the process exit code, which is 1 if the endpoint failed."""
        try:
            self.server = _EndpointHTTPServer((HOST, self.requested_port), self)
        except OSError as error:
            self._fail(f"Could not listen on {HOST}:{self.requested_port}: {error}")
            return 1
        self.port = self.server.server_address[1]
        self._write_state()
        logger.info("Endpoint %s listening on http://%s:%d (process %d).", self.name, HOST, self.port, os.getpid())
        server_thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, name="http-server", daemon=True
        )
        server_thread.start()

        variant = ModelVariant(self._initial_config, self._initial_version)
        try:
            with variant.lock:
                self._load(variant, other_models_bytes=0, cold_start=False)
        except Exception as error:  # noqa: BLE001 - any load error fails the endpoint with its reason.
            logger.exception("Loading model %s failed.", variant.config.model_name)
            self._fail(f"Loading model {variant.config.model_name} failed: {type(error).__name__}: {error}")
            self._shutdown_server()
            return 1

        with self._lock:
            self._variant = variant
            self._status = IN_SERVICE
            self._last_activity = time.monotonic()
        self._write_state()
        logger.info(
            "Endpoint %s is InService with model %s (endpoint config version %d, MaxConcurrency %d, "
            "MemorySizeInMB %d, idle timeout %.1f s).",
            self.name, variant.config.model_name, variant.version, variant.config.serverless.max_concurrency,
            variant.config.serverless.memory_size_in_mb, variant.config.serverless.idle_timeout_seconds,
        )

        housekeeping = threading.Thread(target=self._housekeeping_loop, name="housekeeping", daemon=True)
        housekeeping.start()
        self.stop_event.wait()
        self._stop()
        return 0

    def request_stop(self) -> None:
        """Ask the runtime to stop. Safe to call from a signal handler."""
        self.stop_event.set()

    def _stop(self) -> None:
        logger.info("Stopping endpoint %s after %d requests in flight finish.", self.name, self._in_flight)
        self._shutdown_server()
        self._log_summary(force=True)
        logger.info("Stopped endpoint %s after %d invocations.", self.name, self._invocations)

    def _shutdown_server(self) -> None:
        """Stop accepting connections, then wait for every request thread to send its response."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def _fail(self, reason: str) -> None:
        with self._lock:
            self._status = FAILED
            self._failure_reason = reason
        self._write_state()
        logger.error("Endpoint %s failed: %s", self.name, reason)

    # Model loading

    def _load(self, variant: ModelVariant, *, other_models_bytes: int, cold_start: bool) -> None:
        """Load variant's predictor (the caller holds variant.lock) and record the load."""
        config = variant.config
        logger.info(
            "Loading model %s from %s with entry point %s (endpoint config version %d, environment keys %s)%s.",
            config.model_name, config.model_dir, config.entry_point, variant.version,
            sorted(config.environment), " for a cold start" if cold_start else "",
        )
        seconds = variant.load(other_models_bytes)
        with self._lock:
            self._model_loads += 1
            if cold_start:
                self._cold_starts += 1
            self._last_load_seconds = seconds
            self._last_loaded_at = _utc_now()
        logger.info(
            "Loaded model %s in %.3f s, with resident memory at %.0f MB of MemorySizeInMB %d.",
            config.model_name, seconds, resident_memory_bytes() / MIB, config.serverless.memory_size_in_mb,
        )

    def _predictor_for(self, variant: ModelVariant) -> Predictor:
        """Return variant's predictor, loading it first if the idle timeout unloaded it (a cold start)."""
        predictor = variant.predictor
        if predictor is not None:
            return predictor
        with variant.lock:
            if variant.predictor is None:
                self._load(variant, other_models_bytes=0, cold_start=True)
                self._write_state()
            return variant.predictor

    def _unload_if_idle(self) -> None:
        variant = self._variant
        if variant is None or variant.predictor is None:
            return
        idle_timeout = variant.config.serverless.idle_timeout_seconds
        # A request that is loading the model holds the lock, so skip this tick instead of waiting.
        if not variant.lock.acquire(blocking=False):
            return
        try:
            with self._lock:
                idle_seconds = time.monotonic() - self._last_activity
                if self._in_flight or idle_seconds < idle_timeout or variant.predictor is None:
                    return
            variant.unload()
        finally:
            variant.lock.release()
        logger.info(
            "Unloaded model %s after %.1f s without invocations, so the next invocation is a cold start.",
            variant.config.model_name, idle_seconds,
        )
        self._write_state()

    # Updates

    def _check_for_update(self) -> None:
        """Start an update when endpoint.json contains a newer endpoint config version, and stop when the file is removed."""
        path = self.state_dir / CONFIG_FILE
        try:
            stat = path.stat()
        except FileNotFoundError:
            logger.warning("%s was removed, so the endpoint was deleted. Stopping.", path)
            self.request_stop()
            return
        signature = (stat.st_mtime_ns, stat.st_size)
        if signature == self._config_file_signature:
            return
        if self._update_thread is not None and self._update_thread.is_alive():
            return
        record = read_json(path)
        if record is None:
            return
        self._config_file_signature = signature

        version = record["version"]
        variant = self._variant
        if variant is None or version <= variant.version or version == self._failed_version:
            return
        config = EndpointConfig.from_dict(record["config"])
        self._update_thread = threading.Thread(
            target=self._update, args=(config, version), name=f"update-{version}", daemon=True
        )
        self._update_thread.start()

    def _update(self, config: EndpointConfig, version: int) -> None:
        """Load config beside the serving model and swap when it is ready, or keep the old model if the load fails."""
        old = self._variant
        assert old is not None
        with self._lock:
            self._status = UPDATING
        self._write_state()
        logger.info(
            "Updating endpoint %s from model %s (version %d) to model %s (version %d) while the old model serves.",
            self.name, old.config.model_name, old.version, config.model_name, version,
        )

        new = ModelVariant(config, version)
        try:
            with new.lock:
                old_memory = old.load_memory_bytes if old.predictor is not None else 0
                self._load(new, other_models_bytes=old_memory, cold_start=False)
        except Exception as error:  # noqa: BLE001 - any load error rolls the update back with its reason.
            reason = (
                f"Update to model {config.model_name} (endpoint config version {version}) failed: "
                f"{type(error).__name__}: {error}. The endpoint still serves model {old.config.model_name} "
                f"(endpoint config version {old.version})."
            )
            logger.exception("%s", reason)
            with self._lock:
                self._status = IN_SERVICE
                self._failure_reason = reason
                self._failed_version = version
                self._last_modified_time = _utc_now()
            self._write_state()
            return

        # Requests read self._variant once, so each one runs wholly on the old or on the new model.
        with self._lock:
            self._variant = new
            self._status = IN_SERVICE
            self._failure_reason = None
            self._last_activity = time.monotonic()
            self._last_modified_time = _utc_now()
        self._write_state()
        logger.info(
            "Endpoint %s now serves model %s (endpoint config version %d), and requests in flight finish on model %s.",
            self.name, config.model_name, version, old.config.model_name,
        )

    # Housekeeping

    def _housekeeping_loop(self) -> None:
        while not self.stop_event.wait(TICK_SECONDS):
            try:
                self._check_for_update()
                self._unload_if_idle()
                self._log_summary()
            except Exception:  # noqa: BLE001 - keep serving; the next tick tries again.
                logger.exception("Housekeeping of endpoint %s failed. Retrying on the next tick.", self.name)

    def _log_summary(self, force: bool = False) -> None:
        """Log counts of throttled and rejected requests since the last summary, then refresh state.json."""
        now = time.monotonic()
        if not force and now - self._last_summary < SUMMARY_LOG_SECONDS:
            return
        self._last_summary = now
        with self._lock:
            throttled, self._throttled_since_summary = self._throttled_since_summary, 0
            rejected, self._rejected_since_summary = self._rejected_since_summary, 0
        variant = self._variant
        if throttled:
            logger.warning(
                "Throttled %d requests with HTTP 429 since the last summary (MaxConcurrency %s, %d throttled in total).",
                throttled, variant.config.serverless.max_concurrency if variant else "unknown", self._throttled,
            )
        if rejected:
            logger.info("Rejected %d invalid or early requests with HTTP 4xx or 503 since the last summary.", rejected)
        if throttled or rejected or force:
            self._write_state()

    # Requests

    def ping(self) -> tuple[int, bytes]:
        """Return HTTP 200 and the status while the endpoint serves, else 503."""
        snapshot = self.snapshot()
        code = HTTPStatus.OK if snapshot["status"] in (IN_SERVICE, UPDATING) else HTTPStatus.SERVICE_UNAVAILABLE
        return code, _encode(snapshot)

    def invoke(self, body: bytes, content_type: str | None) -> tuple[int, bytes]:
        """Score a JSON object or array with the current model and return the HTTP status and JSON body."""
        media_type = (content_type or "").split(";")[0].strip().lower()
        if media_type != "application/json":
            self._count_rejected()
            return HTTPStatus.UNSUPPORTED_MEDIA_TYPE, _validation_error(
                "Content-Type", f"must be application/json, not {content_type or 'missing'!r}."
            )
        try:
            items, is_batch = _parse_body(body)
        except InvalidRequestError as error:
            self._count_rejected()
            return HTTPStatus.BAD_REQUEST, _validation_error(error.field, error.message)

        variant = self._variant
        if variant is None or self._status not in (IN_SERVICE, UPDATING):
            self._count_rejected()
            return HTTPStatus.SERVICE_UNAVAILABLE, _encode(
                {"error": "ServiceUnavailable", "message": f"Endpoint {self.name} is {self._status}, not InService."}
            )
        max_concurrency = variant.config.serverless.max_concurrency
        if not self._try_acquire(max_concurrency):
            return HTTPStatus.TOO_MANY_REQUESTS, _encode(
                {
                    "error": "ThrottlingException",
                    "message": f"Endpoint {self.name} has {max_concurrency} requests in flight, its MaxConcurrency. "
                    "Retry with backoff.",
                }
            )
        try:
            return self._predict(variant, items, is_batch)
        finally:
            self._release()

    def _predict(self, variant: ModelVariant, items: list[dict], is_batch: bool) -> tuple[int, bytes]:
        model_name = variant.config.model_name
        try:
            predictor = self._predictor_for(variant)
            predictions = []
            for index, item in enumerate(items):
                try:
                    predictions.append(predictor.predict(item))
                except InvalidRequestError as error:
                    self._count_rejected()
                    where = f"item {index} of the batch: " if is_batch else ""
                    extra = {"index": index} if is_batch else {}
                    return HTTPStatus.BAD_REQUEST, _validation_error(error.field, where + error.message, **extra)
            body = _encode({"predictions": predictions})
        except Exception as error:  # noqa: BLE001 - report any model failure as HTTP 500 and keep serving.
            logger.exception("Invocation of model %s on endpoint %s failed.", model_name, self.name)
            return HTTPStatus.INTERNAL_SERVER_ERROR, _encode(
                {"error": "ModelError", "message": f"Model {model_name} failed: {type(error).__name__}: {error}"}
            )
        if len(body) > MAX_PAYLOAD_BYTES:
            logger.error("Response of model %s has %d bytes, more than the %d byte limit.", model_name, len(body), MAX_PAYLOAD_BYTES)
            return HTTPStatus.INTERNAL_SERVER_ERROR, _encode(
                {
                    "error": "ModelError",
                    "message": f"The response has {len(body)} bytes, more than the {MAX_PAYLOAD_BYTES} byte payload "
                    "limit. Send smaller batches.",
                }
            )
        with self._lock:
            self._invocations += 1
        return HTTPStatus.OK, body

    def _try_acquire(self, max_concurrency: int) -> bool:
        """Take one of max_concurrency slots without blocking, or count a throttle if none is free."""
        with self._lock:
            if self._in_flight >= max_concurrency:
                self._throttled += 1
                self._throttled_since_summary += 1
                return False
            self._in_flight += 1
            self._last_activity = time.monotonic()
            return True

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._last_activity = time.monotonic()

    def _count_rejected(self) -> None:
        with self._lock:
            self._rejected += 1
            self._rejected_since_summary += 1

    # State

    def snapshot(self) -> dict[str, Any]:
        """Return the status reported by /ping and stored in state.json."""
        variant = self._variant
        config = variant.config if variant else self._initial_config
        with self._lock:
            return {
                "endpoint_name": self.name,
                "status": self._status,
                "failure_reason": self._failure_reason,
                "pid": os.getpid(),
                "port": self.port,
                "model_name": config.model_name,
                "endpoint_config_version": variant.version if variant else None,
                "failed_endpoint_config_version": self._failed_version,
                "model_loaded": bool(variant and variant.predictor is not None),
                "in_flight": self._in_flight,
                "max_concurrency": config.serverless.max_concurrency,
                "memory_size_in_mb": config.serverless.memory_size_in_mb,
                "memory_in_use_mb": round(resident_memory_bytes() / MIB, 1),
                "idle_timeout_seconds": config.serverless.idle_timeout_seconds,
                "invocations": self._invocations,
                "throttled_requests": self._throttled,
                "rejected_requests": self._rejected,
                "cold_starts": self._cold_starts,
                "model_loads": self._model_loads,
                "last_model_load_seconds": self._last_load_seconds,
                "last_model_loaded_at": self._last_loaded_at,
                "creation_time": self._creation_time,
                "last_modified_time": self._last_modified_time,
            }

    def _write_state(self) -> None:
        state = self.snapshot()
        variant = self._variant
        state["active_config"] = variant.config.to_dict() if variant else None
        with self._state_write_lock:
            if not self.state_dir.exists():
                return
            try:
                write_json_atomic(self.state_dir / STATE_FILE, state)
            except FileNotFoundError:
                # The manager removed the state folder during the write, and the housekeeping thread stops the runtime.
                pass


def _validation_error(field: str, message: str, **extra: Any) -> bytes:
    return _encode({"error": "ValidationError", "field": field, "message": message, **extra})


def _parse_body(body: bytes) -> tuple[list[dict], bool]:
    """Parse a request body into a list of transactions and a flag that is True for a batch (array)."""
    if not body:
        raise InvalidRequestError("body", "is empty. Send a JSON object or a JSON array of objects.")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidRequestError("body", f"is not valid JSON: {error}") from None
    if isinstance(document, dict):
        return [document], False
    if not isinstance(document, list):
        raise InvalidRequestError("body", f"must be a JSON object or array of objects, not {type(document).__name__}.")
    if not document:
        raise InvalidRequestError("body", "is an empty array. Send at least one transaction.")
    for index, item in enumerate(document):
        if not isinstance(item, dict):
            raise InvalidRequestError(f"body[{index}]", f"must be a JSON object, not {type(item).__name__}.")
    return document, True


class _EndpointHTTPServer(ThreadingHTTPServer):
    """Threading HTTP server that carries the runtime for its request handlers."""

    # Room for bursts above MaxConcurrency, so excess requests get HTTP 429 instead of waiting in the kernel backlog.
    request_queue_size = 128
    # Non-daemon request threads let server_close() wait for responses in flight before the process exits.
    # NOTE: a predictor call that never returns blocks the stop, until delete() sends SIGKILL.
    daemon_threads = False

    def __init__(self, address: tuple[str, int], runtime: EndpointRuntime):
        super().__init__(address, _RequestHandler)
        self.runtime = runtime

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("Unhandled error while serving a request from %s.", client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _EndpointHTTPServer
    server_version = "FraudDetectionLocalEndpoint/0.1"

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/ping":
            self._send_not_found()
            return
        self._send_json(*self.server.runtime.ping())

    def do_POST(self) -> None:
        if self.path.split("?")[0] != "/invocations":
            self._send_not_found()
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._send_json(HTTPStatus.BAD_REQUEST, _validation_error("Content-Length", "is not a valid byte count."))
            return
        if length > MAX_PAYLOAD_BYTES:
            # The body is not read, so the connection cannot be reused.
            self.close_connection = True
            self._send_json(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                _validation_error("body", f"has {length} bytes, more than the {MAX_PAYLOAD_BYTES} byte payload limit."),
            )
            return
        body = self.rfile.read(length)
        self._send_json(*self.server.runtime.invoke(body, self.headers.get("Content-Type")))

    def _send_not_found(self) -> None:
        self._send_json(
            HTTPStatus.NOT_FOUND,
            _encode({"error": "NotFound", "message": f"No route {self.command} {self.path}. Use GET /ping or POST /invocations."}),
        )

    def _send_json(self, code: int, body: bytes) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("Client %s closed the connection before the response was sent.", self.client_address)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - name fixed by BaseHTTPRequestHandler.
        # Access lines go to DEBUG so that INFO logs stay at one line per event, not per request.
        logger.debug("%s " + format, self.address_string(), *args)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run one endpoint and return its exit code."""
    parser = argparse.ArgumentParser(description="Run one local serverless endpoint on 127.0.0.1.")
    parser.add_argument("--state-dir", type=Path, required=True, help="Endpoint state folder that contains endpoint.json.")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 (the default) picks a free port.")
    parser.add_argument("--log-level", default="INFO", help="Logging level name, for example DEBUG (default: INFO).")
    arguments = parser.parse_args(argv)

    logging.basicConfig(
        level=arguments.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d %(threadName)s] %(message)s",
    )
    runtime = EndpointRuntime(arguments.state_dir, arguments.port)

    def handle_signal(signal_number: int, _frame: Any) -> None:
        logger.info("Received %s.", signal.Signals(signal_number).name)
        runtime.request_stop()

    signal.signal(signal.SIGTERM, handle_signal)
    signal.signal(signal.SIGINT, handle_signal)
    return runtime.run()


if __name__ == "__main__":
    sys.exit(main())
