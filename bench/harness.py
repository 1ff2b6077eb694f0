"""Run each measured step of a benchmark in its own process and collect its time and peak memory.

A step is a script that takes one argument, the path of a JSON job file, does its work and
writes a JSON result to the job's ``result_path``. When the child exits, the parent reads its
peak resident memory from the kernel with ``os.wait4``, the per-child form of
``getrusage(RUSAGE_CHILDREN)``. The parent kills a child that runs past its time limit or
whose resident memory grows past its memory limit, so a runaway step cannot exhaust the
machine's memory and wake the OOM killer.

This module uses the standard library only, because the steps of both virtualenvs import it:
``.venv`` runs our code and ``.venv-feast`` runs Feast.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

PROJECT = Path(__file__).resolve().parents[1]
BENCH = PROJECT / "bench"
FEAST_PYTHON = PROJECT / ".venv-feast" / "bin" / "python"
HANDBOOK = PROJECT.parent / "shared" / "data" / "fraud-detection-handbook-simulated" / "transactions.csv.gz"

GIB = 1024**3
MIB = 1024**2
POLL_SECONDS = 0.2


@dataclass
class StepOutcome:
    """Status, result, wall time and peak memory of one step process."""

    label: str
    status: str  # "ok", "failed", "timed out" or "memory limit"
    wall_seconds: float
    peak_rss_bytes: int
    result: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_step(
    python: Path | str,
    script: Path,
    job: dict[str, Any],
    *,
    label: str,
    work_dir: Path,
    timeout_seconds: float,
    memory_limit_bytes: int,
    environment: dict[str, str] | None = None,
) -> StepOutcome:
    """Run ``python script JOB`` and return its outcome once it exits or is stopped."""
    work_dir.mkdir(parents=True, exist_ok=True)
    job_path = work_dir / f"{label}.job.json"
    result_path = work_dir / f"{label}.result.json"
    log_path = work_dir / f"{label}.log"
    result_path.unlink(missing_ok=True)
    job_path.write_text(json.dumps({**job, "result_path": str(result_path)}, indent=2, default=str))

    print(f"  {label} ...", end="", flush=True, file=sys.stderr)
    started = time.perf_counter()
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [str(python), str(script), str(job_path)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(environment or {})},
            start_new_session=True,
        )
        status, exit_status, usage = _watch(process, timeout_seconds, memory_limit_bytes)
    wall_seconds = time.perf_counter() - started
    # ru_maxrss is in kilobytes on Linux.
    peak_rss_bytes = usage.ru_maxrss * 1024

    message = ""
    if status == "ok" and os.waitstatus_to_exitcode(exit_status) != 0:
        status = "failed"
    if status == "ok" and not result_path.exists():
        status, message = "failed", "the step exited without writing a result"
    if status == "failed":
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        message = message or "\n".join(tail)
    elif status == "timed out":
        message = f"stopped after {timeout_seconds:.0f} s"
    elif status == "memory limit":
        message = f"stopped when its resident memory passed {memory_limit_bytes / GIB:.1f} GiB"
    result = json.loads(result_path.read_text()) if status == "ok" else {}
    print(f" {status}, {wall_seconds:.1f} s, peak RSS {peak_rss_bytes / GIB:.2f} GiB", file=sys.stderr)
    if message and status != "ok":
        print(f"    {message}", file=sys.stderr)
    return StepOutcome(label, status, wall_seconds, peak_rss_bytes, result, message)


def _watch(process: subprocess.Popen, timeout_seconds: float, memory_limit_bytes: int):
    """Wait for the process and kill it past either limit. Return (status, wait status, rusage)."""
    deadline = time.monotonic() + timeout_seconds
    status = "ok"
    while True:
        pid, exit_status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            # Reaped here, so Popen must not wait for it again.
            process.returncode = os.waitstatus_to_exitcode(exit_status)
            return status, exit_status, usage
        if status == "ok":
            if time.monotonic() > deadline:
                status = "timed out"
            elif _resident_bytes(process.pid) > memory_limit_bytes:
                status = "memory limit"
            if status != "ok":
                os.killpg(process.pid, signal.SIGKILL)
        time.sleep(POLL_SECONDS)


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (FileNotFoundError, ProcessLookupError):
        return 0


class Runner:
    """Start our steps in this interpreter's virtualenv and Feast's in ``.venv-feast``, one by one."""

    def __init__(
        self, work_dir: Path, *, timeout_seconds: float, memory_limit_bytes: int, environment: dict[str, str] | None = None
    ):
        self.work_dir = work_dir
        self.timeout_seconds = timeout_seconds
        self.memory_limit_bytes = memory_limit_bytes
        self.environment = environment or {}
        self.outcomes: list[StepOutcome] = []

    def ours(self, step: str, label: str, **job: Any) -> StepOutcome:
        return self._run(sys.executable, BENCH / "our_steps.py", {"step": step, **job}, label)

    def feast(self, action: str, label: str, **job: Any) -> StepOutcome:
        if not FEAST_PYTHON.exists():
            sys.exit(f"{FEAST_PYTHON} not found: run `make bench-feast` first to create Feast's virtualenv.")
        return self._run(FEAST_PYTHON, BENCH / "feast_peer.py", {"action": action, **job}, label)

    def _run(self, python: Path | str, script: Path, job: dict[str, Any], label: str) -> StepOutcome:
        outcome = run_step(
            python,
            script,
            job,
            label=f"{len(self.outcomes):02d}-{label}",
            work_dir=self.work_dir / "steps",
            timeout_seconds=self.timeout_seconds,
            memory_limit_bytes=self.memory_limit_bytes,
            environment=self.environment,
        )
        self.outcomes.append(outcome)
        return outcome


# numpy requests transparent huge pages from the kernel for large arrays (madvise). On the VM in
# docs/benchmarks.md, filling 4.2 GB of new arrays took 14.5 s that way and 2.6 s without, so
# every step, ours and Feast's alike, runs with that request turned off.
STEP_ENVIRONMENT = {"NUMPY_MADVISE_HUGEPAGE": "0"}


def prepare_work_dir(requested: Path | None, prefix: str) -> Path:
    """Return the benchmark's work folder: ``requested``, which must be new or empty, or else a new folder under /tmp.

    The benchmark removes its work folder at the end, so a folder that already has files in it
    is rejected rather than emptied.
    """
    if requested is None:
        return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if requested.exists() and (not requested.is_dir() or any(requested.iterdir())):
        sys.exit(
            f"Invalid --work-dir {requested}: it is not an empty folder, and the benchmark removes its "
            "work folder at the end. Pass a new or empty folder, or leave --work-dir out for a new one under /tmp."
        )
    requested.mkdir(parents=True, exist_ok=True)
    return requested


def run_and_report(
    arguments: Any,
    runner: Runner,
    work_dir: Path,
    run: Callable[[Any, Runner, Path], dict[str, Any]],
    print_report: Callable[[Any, dict[str, Any]], None],
) -> None:
    """Run a benchmark, print its report, write it as JSON with ``--json``, and remove the work folder unless ``--keep``."""
    started = time.perf_counter()
    try:
        report = run(arguments, runner, work_dir)
        report["total_seconds"] = time.perf_counter() - started
        print_report(arguments, report)
        if arguments.json:
            write_json(arguments.json, {**report, "steps": [vars(o) for o in runner.outcomes]})
    finally:
        if arguments.keep:
            print(f"\nKept the work folder {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


def require(outcome: StepOutcome) -> dict[str, Any]:
    """Return a set-up step's result, or exit when the step failed, since nothing after it can run."""
    if not outcome.ok:
        sys.exit(f"Set-up step {outcome.label} {outcome.status}: {outcome.message}")
    return outcome.result


# Helpers for the step scripts.


def read_job() -> dict[str, Any]:
    """Return the job of a step script, read from the JSON file named by its only argument."""
    if len(sys.argv) != 2:
        sys.exit(f"Usage: {sys.argv[0]} JOB.json (a job file written by bench/harness.py)")
    return json.loads(Path(sys.argv[1]).read_text())


def write_result(job: dict[str, Any], result: dict[str, Any]) -> None:
    """Write a step's result with the process's own peak RSS, for the parent to read."""
    result = {**result, "process_peak_rss_bytes": peak_rss_bytes()}
    Path(job["result_path"]).write_text(json.dumps(result, indent=2, default=str))


def peak_rss_bytes() -> int:
    """Return this process's peak resident memory so far, to read right after the measured work."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    """Return this process's resident memory now, to tell a step's own growth from its set-up."""
    return _resident_bytes(os.getpid())


def latency_summary(nanoseconds: list[int]) -> dict[str, float]:
    """Return p50, p99, mean and max of per-call latencies, in microseconds."""
    ordered = sorted(nanoseconds)

    def percentile(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000

    return {
        "calls": len(ordered),
        "p50_us": percentile(0.50),
        "p99_us": percentile(0.99),
        "mean_us": statistics.fmean(ordered) / 1000,
        "max_us": ordered[-1] / 1000,
    }


# Reporting.


def machine_description() -> str:
    """Return the CPU model, core count, memory and kernel, as lscpu and /proc report them."""
    model = platform.processor() or "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return f"{os.cpu_count()} vCPU ({model}), {memory_kib / 1024**2:.1f} GiB RAM, Linux {platform.release()}"


def source_revision() -> str:
    """Return the checked-out commit, and say so when the code under test has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(PROJECT), "status", "--porcelain", "--", "include", "plugins"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} with uncommitted changes in include/ or plugins/" if changed else commit


def seconds_range(outcomes: list[StepOutcome], key: str = "seconds") -> tuple[float, float, float] | None:
    """Return (min, median, max) of ``key`` over the successful outcomes, or None if none succeeded."""
    values = [o.result[key] for o in outcomes if o.ok]
    if not values:
        return None
    return min(values), statistics.median(values), max(values)


def format_seconds(summary: tuple[float, float, float] | None) -> str:
    if summary is None:
        return "—"
    low, _, high = summary
    if high - low < 0.05 or abs(high - low) / max(high, 1e-9) < 0.02:
        return f"{statistics.mean((low, high)):.2f} s"
    return f"{low:.2f}-{high:.2f} s"


def format_peak(outcomes: list[StepOutcome]) -> str:
    """Return the largest peak RSS of the outcomes, up to the end of their measured work where recorded.

    Steps that write their output for a comparison after the clock stops record
    ``measured_peak_rss_bytes``, so the copy made for that output is not counted.
    """
    peaks = [o.result.get("measured_peak_rss_bytes") or o.peak_rss_bytes for o in outcomes if o.peak_rss_bytes]
    return f"{max(peaks) / GIB:.2f} GiB" if peaks else "—"


def failure_note(outcomes: list[StepOutcome]) -> str:
    """Return the status of the first outcome that did not succeed, or an empty string."""
    for outcome in outcomes:
        if not outcome.ok:
            return f"{outcome.status}: {outcome.message.splitlines()[-1] if outcome.message else ''}"
    return ""


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=lambda value: vars(value) if hasattr(value, "__dict__") else str(value)))
