"""Measure how long each DAG file takes to parse, as the DAG processor does it.

Each file is parsed in a fresh interpreter that has already imported Airflow, so the figure
is the file's own cost. Usage: ``.venv/bin/python bench/dag_parse_time.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

DAGS = Path(__file__).resolve().parents[1] / "dags"

SCRIPT = """
import importlib.util, json, sys, time
import airflow.sdk  # Loaded by the DAG processor before any file.
path = sys.argv[1]
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_file", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="Fresh interpreters per file (default 5).")
    arguments = parser.parse_args()
    print(f"{'DAG file':<32} {'median ms':>10} {'max ms':>8}")
    for path in sorted(DAGS.glob("*.py")):
        timings = []
        for _ in range(arguments.repeat):
            output = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True, text=True, check=True)
            timings.append(json.loads(output.stdout.strip().splitlines()[-1])["seconds"] * 1000)
        print(f"{path.name:<32} {statistics.median(timings):>10.1f} {max(timings):>8.1f}")


if __name__ == "__main__":
    main()
