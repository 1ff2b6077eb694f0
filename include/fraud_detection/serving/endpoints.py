"""Manage local stand-ins for SageMaker serverless endpoints: create, update, describe, delete, invoke.

LocalEndpointManager is the control plane of the "local" backend. Each endpoint is
one detached background process (``fraud_detection.serving.runtime``) that serves
HTTP on 127.0.0.1 and outlives the caller, for example an Airflow task. The state
of an endpoint lives in files under ``root/<endpoint name>/``:

- ``endpoint.json``: the requested endpoint config and its version, written here.
- ``state.json``: status, port, loaded model and counters, written by the runtime.
- ``runtime.pid``: the process id, written here when the process starts.
- ``runtime.log``: the runtime's log.

This mimics the SageMaker API closely enough for pipelines and tests on a laptop.
It is not a production server and has no authentication, TLS, autoscaling or
metrics. It needs a POSIX system (Linux or macOS) because it uses ``fcntl`` locks
and POSIX signals.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fraud_detection.serving.predictor import InvalidRequestError, parse_entry_point

__all__ = [
    "EndpointConfig",
    "EndpointDescription",
    "EndpointError",
    "EndpointFailedError",
    "EndpointNotFoundError",
    "EndpointUpdateError",
    "InvalidRequestError",
    "LocalEndpointManager",
    "ModelError",
    "ServerlessConfig",
    "ThrottlingError",
    "validate_endpoint_name",
]

logger = logging.getLogger(__name__)

# Names and limits from the SageMaker API model in botocore 1.44.8 (shapes
# EndpointName, ModelName, ServerlessMemorySizeInMB, ServerlessMaxConcurrency,
# EnvironmentMap, EnvironmentKey and EnvironmentValue).
ENDPOINT_NAME_RULE = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
MODEL_NAME_RULE = "^[a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?$"
_ENDPOINT_NAME_PATTERN = re.compile(ENDPOINT_NAME_RULE)
_MODEL_NAME_PATTERN = re.compile(MODEL_NAME_RULE)
_MODEL_NAME_MAX_LENGTH = 63
# botocore allows 1024-6144, and the SageMaker API reference (ProductionVariantServerlessConfig)
# adds that valid values are in 1 GB increments.
MEMORY_SIZES_IN_MB = (1024, 2048, 3072, 4096, 5120, 6144)
MAX_CONCURRENCY_RANGE = (1, 200)
_ENVIRONMENT_MAX_ENTRIES = 100
_ENVIRONMENT_KEY_PATTERN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_ENVIRONMENT_MAX_LENGTH = 1024

CONFIG_FILE = "endpoint.json"
STATE_FILE = "state.json"
PID_FILE = "runtime.pid"
LOG_FILE = "runtime.log"
RUNTIME_MODULE = "fraud_detection.serving.runtime"

# Endpoint statuses, named as in SageMaker's DescribeEndpoint.
CREATING = "Creating"
IN_SERVICE = "InService"
UPDATING = "Updating"
FAILED = "Failed"
OUT_OF_SERVICE = "OutOfService"

_POLL_SECONDS = 0.05


class EndpointError(RuntimeError):
    """An endpoint operation that failed. Its message names the endpoint and the next step."""


class EndpointNotFoundError(EndpointError, LookupError):
    """An endpoint name with no state under the manager's root."""


class EndpointFailedError(EndpointError):
    """An endpoint that could not be created or whose process is gone."""


class EndpointUpdateError(EndpointError):
    """An update that failed to load, after which the endpoint still serves the previous model."""


class ThrottlingError(EndpointError):
    """An invocation rejected with HTTP 429 because MaxConcurrency requests were in flight."""


class ModelError(EndpointError):
    """An invocation that failed inside the model code or the runtime (HTTP 5xx)."""

    def __init__(self, message: str, status_code: int):
        super().__init__(message)
        self.status_code = status_code


def validate_endpoint_name(name: str) -> str:
    """Return name unchanged if it is a valid SageMaker endpoint name, else raise ValueError."""
    if not isinstance(name, str) or not _ENDPOINT_NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"Invalid endpoint name {name!r}: it must match {ENDPOINT_NAME_RULE}, that is 1-63 letters, "
            "digits and hyphens, starting and ending with a letter or digit."
        )
    return name


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ServerlessConfig:
    """Serverless settings of an endpoint, as in SageMaker's ProductionVariantServerlessConfig.

    idle_timeout_seconds exists only locally. After that long without invocations
    the runtime unloads the model, so the next invocation is a cold start.
    """

    memory_size_in_mb: int = 2048
    max_concurrency: int = 5
    idle_timeout_seconds: float = 300.0

    def __post_init__(self) -> None:
        if not _is_integer(self.memory_size_in_mb) or self.memory_size_in_mb not in MEMORY_SIZES_IN_MB:
            raise ValueError(
                f"Invalid memory_size_in_mb {self.memory_size_in_mb!r}: SageMaker serverless accepts "
                f"1024-6144 MB in 1024 MB steps, one of {list(MEMORY_SIZES_IN_MB)}."
            )
        low, high = MAX_CONCURRENCY_RANGE
        if not _is_integer(self.max_concurrency) or not low <= self.max_concurrency <= high:
            raise ValueError(
                f"Invalid max_concurrency {self.max_concurrency!r}: it must be an integer from {low} to {high}."
            )
        timeout = self.idle_timeout_seconds
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"Invalid idle_timeout_seconds {timeout!r}: it must be a positive number of seconds.")
        object.__setattr__(self, "idle_timeout_seconds", float(timeout))


@dataclass(frozen=True)
class EndpointConfig:
    """Everything one endpoint serves: the model, its code, its environment and serverless settings.

    Combines what SageMaker splits into a model (model_dir, entry_point,
    environment, model_name) and an endpoint config (serverless).
    """

    name: str
    model_dir: Path
    entry_point: str
    environment: dict[str, str]
    serverless: ServerlessConfig
    model_name: str

    def __post_init__(self) -> None:
        validate_endpoint_name(self.name)
        object.__setattr__(self, "model_dir", Path(self.model_dir).expanduser().absolute())
        parse_entry_point(self.entry_point)
        object.__setattr__(self, "environment", _validated_environment(self.environment))
        if not isinstance(self.serverless, ServerlessConfig):
            raise TypeError(f"serverless must be a ServerlessConfig, not {type(self.serverless).__name__}.")
        if (
            not isinstance(self.model_name, str)
            or len(self.model_name) > _MODEL_NAME_MAX_LENGTH
            or not _MODEL_NAME_PATTERN.fullmatch(self.model_name)
        ):
            raise ValueError(
                f"Invalid model name {self.model_name!r}: it must match {MODEL_NAME_RULE} "
                f"and have at most {_MODEL_NAME_MAX_LENGTH} characters, for example 'fraud-xgboost-v3'."
            )

    def to_dict(self) -> dict[str, Any]:
        """Convert to the JSON form stored in endpoint.json and state.json."""
        return {
            "name": self.name,
            "model_name": self.model_name,
            "model_dir": str(self.model_dir),
            "entry_point": self.entry_point,
            "environment": dict(self.environment),
            "serverless": {
                "memory_size_in_mb": self.serverless.memory_size_in_mb,
                "max_concurrency": self.serverless.max_concurrency,
                "idle_timeout_seconds": self.serverless.idle_timeout_seconds,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EndpointConfig:
        """Build a config from the form that to_dict returns. Raise ValueError or KeyError if it is invalid."""
        return cls(
            name=data["name"],
            model_dir=Path(data["model_dir"]),
            entry_point=data["entry_point"],
            environment=dict(data["environment"]),
            serverless=ServerlessConfig(**data["serverless"]),
            model_name=data["model_name"],
        )


def _validated_environment(environment: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(environment, Mapping):
        raise TypeError(f"environment must be a mapping of strings, not {type(environment).__name__}.")
    if len(environment) > _ENVIRONMENT_MAX_ENTRIES:
        raise ValueError(
            f"Invalid environment: it has {len(environment)} entries, SageMaker allows at most {_ENVIRONMENT_MAX_ENTRIES}."
        )
    for key, value in environment.items():
        if not isinstance(key, str) or len(key) > _ENVIRONMENT_MAX_LENGTH or not _ENVIRONMENT_KEY_PATTERN.match(key):
            raise ValueError(
                f"Invalid environment variable name {key!r}: it must match [a-zA-Z_][a-zA-Z0-9_]* "
                f"and have at most {_ENVIRONMENT_MAX_LENGTH} characters."
            )
        if not isinstance(value, str) or len(value) > _ENVIRONMENT_MAX_LENGTH:
            # The value is not shown because environment values may hold secrets.
            raise ValueError(
                f"Invalid value of environment variable {key!r}: it must be a string of at most "
                f"{_ENVIRONMENT_MAX_LENGTH} characters."
            )
    return dict(environment)


@dataclass(frozen=True)
class EndpointDescription:
    """The state of one local endpoint, like SageMaker's DescribeEndpoint output.

    status is Creating, InService, Updating, Failed or OutOfService (the process
    is gone, for example after a restart of the machine). config is the endpoint
    config that serves requests, or the requested one while none does.
    """

    name: str
    status: str
    url: str | None
    pid: int | None
    model_name: str | None
    config: EndpointConfig | None
    endpoint_config_version: int | None
    failure_reason: str | None
    model_loaded: bool
    cold_starts: int
    model_loads: int
    last_model_load_seconds: float | None
    last_model_loaded_at: datetime | None
    invocations: int
    throttled_requests: int
    creation_time: datetime | None
    last_modified_time: datetime | None
    log_file: Path
    state_dir: Path = field(repr=False)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write data as JSON to path through a temporary file, so readers never see a partial file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """Read a JSON object from path, or return None when the file does not exist."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat()


# Popen objects of runtimes started by this process, so that their exit status
# is collected and no zombie process is left behind while this process lives.
_CHILDREN: dict[int, subprocess.Popen] = {}


def _reap_children() -> None:
    """Collect the exit status of runtimes started here that have exited, so none stays a zombie."""
    for pid, child in list(_CHILDREN.items()):
        if child.poll() is not None:
            _CHILDREN.pop(pid, None)


def _process_command_line(pid: int) -> str | None:
    """Return the command line of a live process, or None if it is gone or a zombie."""
    proc = Path("/proc") / str(pid)
    if Path("/proc/self").exists():
        try:
            stat = (proc / "stat").read_text()
            command_line = (proc / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        # The state letter follows the parenthesized command name, which may itself contain spaces.
        if stat[stat.rindex(")") + 2 :].startswith("Z"):
            return None
        return command_line.replace(b"\0", b" ").decode(errors="replace")

    # macOS and other systems without /proc.
    result = subprocess.run(
        ["ps", "-p", str(pid), "-o", "stat=,command="], capture_output=True, text=True, check=False
    )
    line = result.stdout.strip()
    if result.returncode != 0 or not line or line.startswith("Z"):
        return None
    return line


def _runtime_is_running(pid: int, state_dir: Path) -> bool:
    """Return True if pid is a live runtime process serving state_dir.

    Checking the command line keeps a reused process id (after a restart of the
    machine) from being mistaken for the runtime, or signalled by delete.
    """
    _reap_children()
    command_line = _process_command_line(pid)
    if command_line is None:
        return False
    return RUNTIME_MODULE in command_line and str(state_dir) in command_line


def _runtime_environment() -> dict[str, str]:
    """Return the caller's environment with this package first on PYTHONPATH, all entries absolute."""
    environment = dict(os.environ)
    package_root = Path(__file__).resolve().parents[2]
    entries = [str(package_root)]
    for entry in environment.get("PYTHONPATH", "").split(os.pathsep):
        if entry:
            entries.append(str(Path(entry).absolute()))
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(entries))
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


# Requests go to 127.0.0.1 only, so an HTTP proxy from the environment must not apply.
_HTTP_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LocalEndpointManager:
    """Create, update, describe, delete and invoke local serverless endpoints under one root folder."""

    def __init__(self, root: Path):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    # Public API

    def create_or_update(
        self,
        config: EndpointConfig,
        *,
        wait: bool = True,
        timeout: float = 120.0,
        port: int | None = None,
    ) -> EndpointDescription:
        """Create the endpoint if it is absent or its process is gone, else update it without downtime.

        An update loads the new model beside the old one and swaps when it is
        ready. A request for the config that is already in service changes
        nothing. port applies only when a process starts; None or 0 picks a free
        port. With wait, block until the endpoint is InService on this config,
        and raise EndpointFailedError if creation fails, EndpointUpdateError if
        the update fails (the old model keeps serving) and TimeoutError after
        timeout seconds.
        """
        if not isinstance(config, EndpointConfig):
            raise TypeError(f"config must be an EndpointConfig, not {type(config).__name__}.")
        if port is not None and (not _is_integer(port) or not 0 <= port <= 65535):
            raise ValueError(f"Invalid port {port!r}: it must be an integer from 1 to 65535, or 0 or None for a free port.")
        name = config.name

        with self._lock(name):
            status = self._read_status(name) if (self.root / name / CONFIG_FILE).exists() else None
            if status is None or status.description.status in (FAILED, OUT_OF_SERVICE):
                version = self._start_process(config, port or None)
            else:
                version = self._request_update(status, config, port)

        if not wait:
            return self.describe(name)
        return self._wait_for_version(name, version, timeout)

    def describe(self, name: str) -> EndpointDescription:
        """Return the status, URL, process id, served model and counters of an endpoint."""
        validate_endpoint_name(name)
        if not (self.root / name / CONFIG_FILE).exists():
            raise EndpointNotFoundError(f"Endpoint {name!r} not found under {self.root}. Create it with create_or_update.")
        return self._read_status(name).description

    def delete(self, name: str, *, timeout: float = 10.0) -> None:
        """Stop the endpoint's process by its pid and remove its state folder.

        The runtime gets SIGTERM and up to timeout seconds to finish requests in
        flight, then SIGKILL. Raises EndpointNotFoundError for an unknown name.
        """
        validate_endpoint_name(name)
        directory = self.root / name
        with self._lock(name):
            if not (directory / CONFIG_FILE).exists():
                raise EndpointNotFoundError(f"Endpoint {name!r} not found under {self.root}.")
            pid = self._read_pid(directory)
            if pid is not None and _runtime_is_running(pid, directory):
                self._stop_process(name, pid, directory, timeout)
            shutil.rmtree(directory)
        logger.info("Deleted endpoint %s.", name)

    def invoke(self, name: str, payload: dict | list, timeout: float = 30.0) -> dict:
        """Send one transaction (dict) or a batch (list of dicts) to the endpoint and return its JSON response.

        Raises ThrottlingError on HTTP 429, InvalidRequestError naming the bad
        field on HTTP 400, 413 or 415, ModelError on HTTP 5xx, and EndpointError
        when the endpoint is not serving or cannot be reached.
        """
        if not isinstance(payload, (dict, list)):
            raise TypeError(f"payload must be a dict or a list of dicts, not {type(payload).__name__}.")
        description = self.describe(name)
        if description.status not in (IN_SERVICE, UPDATING) or description.url is None:
            raise EndpointError(
                f"Endpoint {name!r} is {description.status}, not InService"
                + (f": {description.failure_reason}" if description.failure_reason else ".")
            )

        request = urllib.request.Request(
            f"{description.url}/invocations",
            data=json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="POST",
        )
        try:
            with _HTTP_OPENER.open(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise _invocation_error(name, error) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise EndpointError(f"Invocation of endpoint {name!r} at {description.url} failed: {reason}") from error

    def list_endpoints(self) -> list[str]:
        """Return the names of all endpoints that have state under the root, sorted."""
        return sorted(path.parent.name for path in self.root.glob(f"*/{CONFIG_FILE}"))

    # Process control

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        """Hold an exclusive file lock for one endpoint, so concurrent callers (for example two tasks) take turns."""
        lock_path = self.root / f".{name}.lock"
        with open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _start_process(self, config: EndpointConfig, port: int | None) -> int:
        """Start a runtime process for config and return the endpoint config version it loads."""
        directory = self.root / config.name
        directory.mkdir(parents=True, exist_ok=True)
        previous = read_json(directory / CONFIG_FILE)
        version = previous["version"] + 1 if previous else 1

        # A state file of an earlier process must not be read as this process's state.
        (directory / STATE_FILE).unlink(missing_ok=True)
        (directory / PID_FILE).unlink(missing_ok=True)
        write_json_atomic(directory / CONFIG_FILE, {"version": version, "config": config.to_dict()})

        command = [sys.executable, "-m", RUNTIME_MODULE, "--state-dir", str(directory)]
        if port is not None:
            command += ["--port", str(port)]
        with open(directory / LOG_FILE, "ab") as log_file:
            # start_new_session detaches the runtime from the caller's process group and
            # terminal, so it keeps running when the caller (for example an Airflow task) ends.
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=directory,
                env=_runtime_environment(),
                start_new_session=True,
                close_fds=True,
            )
        _CHILDREN[process.pid] = process
        (directory / PID_FILE).write_text(f"{process.pid}\n", encoding="utf-8")
        logger.info(
            "Started endpoint %s (model %s, endpoint config version %d) as process %d with log file %s.",
            config.name, config.model_name, version, process.pid, directory / LOG_FILE,
        )
        return version

    def _request_update(self, status: _Status, config: EndpointConfig, port: int | None) -> int:
        """Record config as the requested endpoint config of a running endpoint and return its version."""
        name = config.name
        description = status.description
        if port and description.url is not None and not description.url.endswith(f":{port}"):
            raise ValueError(
                f"Endpoint {name!r} already serves at {description.url}. The port is set only when its "
                "process starts, so delete the endpoint to change it."
            )

        requested = EndpointConfig.from_dict(status.record["config"])
        version = status.record["version"]
        failed_version = status.state.get("failed_endpoint_config_version") if status.state else None
        if requested == config and failed_version != version:
            return version
        if description.status in (CREATING, UPDATING):
            raise EndpointError(
                f"Endpoint {name!r} is {description.status}. Wait until it is InService before updating it again."
            )

        version += 1
        write_json_atomic(self.root / name / CONFIG_FILE, {"version": version, "config": config.to_dict()})
        logger.info(
            "Requested update of endpoint %s to model %s (endpoint config version %d).",
            name, config.model_name, version,
        )
        return version

    def _stop_process(self, name: str, pid: int, directory: Path, timeout: float) -> None:
        """Send SIGTERM to the runtime, then SIGKILL after timeout seconds, and raise EndpointError if it survives both."""
        logger.info("Stopping endpoint %s (process %d).", name, pid)
        signals = [(signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)]
        for signal_number, wait_seconds in signals:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal_number)
            deadline = time.monotonic() + wait_seconds
            while time.monotonic() < deadline:
                if not _runtime_is_running(pid, directory):
                    return
                time.sleep(_POLL_SECONDS)
            if signal_number == signal.SIGTERM:
                logger.warning("Endpoint %s (process %d) did not stop within %.1f s of SIGTERM, so sending SIGKILL.", name, pid, timeout)
        raise EndpointError(f"Could not stop endpoint {name!r}: process {pid} is still running after SIGKILL.")

    # Status

    def _read_status(self, name: str) -> _Status:
        directory = self.root / name
        record = read_json(directory / CONFIG_FILE)
        if record is None:
            raise EndpointNotFoundError(f"Endpoint {name!r} not found under {self.root}.")
        pid = self._read_pid(directory)
        state = read_json(directory / STATE_FILE)
        if state is not None and state.get("pid") != pid:
            state = None
        running = pid is not None and _runtime_is_running(pid, directory)
        version = record["version"]
        failure_reason = state.get("failure_reason") if state else None

        if state is not None and state.get("status") == FAILED:
            status = FAILED
        elif not running:
            status = OUT_OF_SERVICE
            if pid is None:
                failure_reason = "The runtime process was never started. Call create_or_update to start it."
            else:
                failure_reason = (
                    f"The runtime process {pid} is not running (stopped or killed, for example by a restart "
                    f"of the machine). Call create_or_update to start it again. Log file: {directory / LOG_FILE}"
                )
        elif state is None or state.get("status") == CREATING:
            status = CREATING
        elif (state.get("endpoint_config_version") or 0) < version and state.get("failed_endpoint_config_version") != version:
            status = UPDATING
        else:
            status = state.get("status", CREATING)

        active_config = state.get("active_config") if state else None
        config = EndpointConfig.from_dict(active_config or record["config"])
        state = state or {}
        description = EndpointDescription(
            name=name,
            status=status,
            url=f"http://127.0.0.1:{state['port']}" if status not in (FAILED, OUT_OF_SERVICE) and state.get("port") else None,
            pid=pid,
            model_name=config.model_name,
            config=config,
            endpoint_config_version=state.get("endpoint_config_version"),
            failure_reason=failure_reason,
            model_loaded=bool(running and state.get("model_loaded")),
            cold_starts=state.get("cold_starts", 0),
            model_loads=state.get("model_loads", 0),
            last_model_load_seconds=state.get("last_model_load_seconds"),
            last_model_loaded_at=_parse_time(state.get("last_model_loaded_at")),
            invocations=state.get("invocations", 0),
            throttled_requests=state.get("throttled_requests", 0),
            creation_time=_parse_time(state.get("creation_time")),
            last_modified_time=_parse_time(state.get("last_modified_time")),
            log_file=directory / LOG_FILE,
            state_dir=directory,
        )
        return _Status(description=description, record=record, state=state or None)

    @staticmethod
    def _read_pid(directory: Path) -> int | None:
        try:
            return int((directory / PID_FILE).read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            return None

    def _wait_for_version(self, name: str, version: int, timeout: float) -> EndpointDescription:
        """Poll until the endpoint serves endpoint config `version`, or raise with the reason why it cannot."""
        deadline = time.monotonic() + timeout
        while True:
            status = self._read_status(name)
            description = status.description
            state = status.state or {}
            if description.status == FAILED:
                raise EndpointFailedError(f"Endpoint {name!r} failed: {description.failure_reason}")
            if description.status == OUT_OF_SERVICE:
                raise EndpointFailedError(
                    f"Endpoint {name!r} stopped before it served endpoint config version {version}. "
                    f"Last lines of {description.log_file}:\n"
                    + _tail(description.log_file)
                )
            if state.get("failed_endpoint_config_version") == version and description.status == IN_SERVICE:
                raise EndpointUpdateError(f"Endpoint {name!r}: {description.failure_reason}")
            if description.status == IN_SERVICE and (description.endpoint_config_version or 0) >= version:
                return description
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Endpoint {name!r} is still {description.status} after {timeout:.0f} s, waiting for endpoint "
                    f"config version {version}. It keeps going in the background, so check describe() or {description.log_file}."
                )
            time.sleep(_POLL_SECONDS)


@dataclass(frozen=True)
class _Status:
    description: EndpointDescription
    record: dict[str, Any]
    state: dict[str, Any] | None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log file)"


def _invocation_error(name: str, error: urllib.error.HTTPError) -> Exception:
    """Map an HTTP error response of the runtime to the matching exception."""
    try:
        body = json.loads(error.read() or b"{}")
    except ValueError:
        body = {}
    message = body.get("message") or error.reason
    if error.code == 429:
        return ThrottlingError(f"Endpoint {name!r} throttled the request: {message}")
    if error.code in (400, 413, 415):
        return InvalidRequestError(body.get("field", "body"), message)
    return ModelError(f"Endpoint {name!r} returned HTTP {error.code} ({body.get('error', 'error')}): {message}", error.code)
