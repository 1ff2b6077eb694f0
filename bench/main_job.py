"""Time the main job end to end on a transactions file (default: the handbook's full data).

Usage: ``.venv/bin/python bench/main_job.py [FILE] [--home DIR]``. Prints the job's own
summary, the wall-clock duration and the peak memory of the job's process tree.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
HANDBOOK = PROJECT.parent / "shared" / "data" / "fraud-detection-handbook-simulated" / "transactions.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", nargs="?", type=Path, default=HANDBOOK)
    parser.add_argument("--home", type=Path, default=None, help="State folder (default: a new temporary folder).")
    arguments = parser.parse_args()
    if not arguments.data.is_file():
        sys.exit(f"Transactions file {arguments.data} not found; pass a path.")
    home = arguments.home or Path(tempfile.mkdtemp(prefix="fraud-bench-"))
    command = [str(Path(sys.executable).with_name("fraud-detection")), "--home", str(home)]
    started = time.perf_counter()
    result = subprocess.run([*command, "run", str(arguments.data)], text=True)
    elapsed = time.perf_counter() - started
    subprocess.run([*command, "stop-endpoint"], capture_output=True)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\nMain job on {arguments.data}: {elapsed:.0f} s wall clock, exit code {result.returncode}, "
          f"largest process peak RSS {peak_mb:.0f} MB")
    if arguments.home is None:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
