"""Benchmark the weekly aggregates and point-in-time training sets against Feast, in one run.

Usage::

    make bench-feast   # once: Feast's own virtualenv, .venv-feast
    .venv/bin/python bench/feature_pipeline.py [--data PATH | --scale 10] [--repeat N] [--profile]

It loads the transactions into a new source datastore under ``/tmp`` and measures, each step
in a process of its own (time of the measured work, and the process's peak RSS):

a. every week's batch aggregates: computed only, and computed and ingested into the local
   online and offline stores;
b. our point-in-time set of all transactions: ``build_feature_frame`` (batch, streaming and
   request features) and ``batch_feature_columns`` (the batch features alone);
c. Feast 0.67.0's ``get_historical_features(...).to_df()`` with the ``duckdb`` offline store,
   on the same batch records (exported from our offline store, one Parquet file per group) and
   every transaction as an entity row, with the same 14-day TTL;
d. two floors: a DuckDB scan of every transaction into pandas, and a DuckDB ``ASOF JOIN`` of
   the entity rows with the two Parquet files.

It checks that our joins return exactly one row per transaction, compares Feast's result with
ours row by row, prints Markdown tables with the ratios, and removes its files unless
``--keep`` is given.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (bench/ is not a package)
from harness import GIB, StepOutcome, format_peak, format_seconds, seconds_range  # noqa: E402

# The synthetic data set of --scale 10: about ten times the handbook's 1,754,155 transactions
# (4,990 cards, 10,000 terminals, 183 days from 2018-04-01).
SCALE_10 = {"cards": 48_000, "terminals": 96_000, "days": 183, "start": "2018-04-01", "seed": 7}
FEAST_TARGET_RATIO = 10.0
SCAN_TARGET_RATIO = 3.0


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, default=harness.HANDBOOK, help="Transactions CSV or CSV.GZ (default: the handbook's data).")
    source.add_argument(
        "--scale", type=int, choices=(10,), help="Generate a synthetic set about 10 times the handbook's size instead of reading --data."
    )
    parser.add_argument("--repeat", type=int, default=1, help="Runs of each measured step (default 1).")
    parser.add_argument("--profile", action="store_true", help="Also run our steps once more under cProfile and print the hot spots.")
    parser.add_argument("--skip-feast", action="store_true", help="Measure our code and the floors only.")
    parser.add_argument("--timeout-minutes", type=float, default=15.0, help="Time limit of each step, in minutes (default 15).")
    parser.add_argument(
        "--memory-limit-gib", type=float, default=20.0, help="Resident memory at which a step is stopped, in GiB (default 20)."
    )
    parser.add_argument(
        "--numpy-huge-pages",
        action="store_true",
        help="Keep numpy's default request for transparent huge pages (by default every step runs with NUMPY_MADVISE_HUGEPAGE=0).",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="New or empty folder for the data and stores, removed at the end unless --keep (default: a new folder under /tmp).",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the work folder instead of removing it at the end.")
    parser.add_argument("--json", type=Path, help="Also write every step's outcome to this JSON file.")
    arguments = parser.parse_args()
    if arguments.repeat < 1:
        parser.error(f"invalid --repeat {arguments.repeat}: use 1 or more runs.")
    if arguments.scale is None and not arguments.data.is_file():
        parser.error(f"transactions file {arguments.data} not found: pass --data PATH or --scale 10.")
    return arguments


def main() -> None:
    arguments = parse_arguments()
    work_dir = harness.prepare_work_dir(arguments.work_dir, "fraud-bench-pipeline-")
    runner = harness.Runner(
        work_dir,
        timeout_seconds=arguments.timeout_minutes * 60,
        memory_limit_bytes=int(arguments.memory_limit_gib * GIB),
        environment={} if arguments.numpy_huge_pages else harness.STEP_ENVIRONMENT,
    )
    harness.run_and_report(arguments, runner, work_dir, run, print_report)


def run(arguments: argparse.Namespace, runner: harness.Runner, work_dir: Path) -> dict:
    home = work_dir / "home"
    store_root = str(home / "feature-store")
    print(f"Work folder {work_dir}", file=sys.stderr)
    # Read first, because the benchmark measures the code as it was when the run started.
    revision = harness.source_revision()

    # Set-up: the source datastore.
    generated = None
    csv_path = arguments.data
    if arguments.scale:
        csv_path = work_dir / "synthetic-transactions.csv"
        generated = harness.require(runner.ours("generate_synthetic", "generate", csv_path=str(csv_path), **SCALE_10))
    loaded = harness.require(runner.ours("load_source", "load", csv_path=str(csv_path), home=str(home)))
    if arguments.scale:
        Path(csv_path).unlink()

    # (a) Weekly aggregates. The first ingest run's store is the one the joins read.
    compute = [runner.ours("weekly_aggregates", "aggregates-compute", home=str(home), mode="compute") for _ in range(arguments.repeat)]
    ingest = []
    for index in range(arguments.repeat):
        root = store_root if index == 0 else str(work_dir / f"extra-store-{index}")
        ingest.append(runner.ours("weekly_aggregates", "aggregates-ingest", home=str(home), mode="ingest", store_root=root))
        if index:
            shutil.rmtree(root, ignore_errors=True)
    harness.require(ingest[0])

    # Feast's inputs, from our offline store.
    feast_inputs = {name: str(work_dir / f"{name}.parquet") for name in ("card_path", "terminal_path", "entity_path")}
    exported = harness.require(runner.ours("export_feast_inputs", "export", home=str(home), store_root=store_root, **feast_inputs))

    # (b), (c) and (d), one round of each per repeat.
    outcomes: dict[str, list[StepOutcome]] = {key: [] for key in ("scan", "asof", "frame", "batch", "feast")}
    ours_output = str(work_dir / "ours-batch-features.parquet")
    feast_output = str(work_dir / "feast-batch-features.parquet")
    for index in range(arguments.repeat):
        first = index == 0
        outcomes["scan"].append(runner.ours("bare_scan", "bare-scan", home=str(home)))
        outcomes["asof"].append(runner.ours("bare_asof", "bare-asof", **feast_inputs))
        outcomes["frame"].append(runner.ours("pit_feature_frame", "ours-feature-frame", home=str(home), store_root=store_root))
        outcomes["batch"].append(
            runner.ours(
                "pit_batch_features", "ours-batch-features", home=str(home), store_root=store_root,
                output_path=ours_output if first else None,
            )
        )
        feast_failed = outcomes["feast"] and not outcomes["feast"][0].ok
        if not arguments.skip_feast and not feast_failed:
            outcomes["feast"].append(
                runner.feast(
                    "historical", "feast-historical", repo_dir=str(work_dir / f"feast-repo-{index}"), ttl_days=14,
                    output_path=feast_output if first else None, **feast_inputs,
                )
            )

    comparison = None
    if outcomes["feast"] and outcomes["feast"][0].ok and outcomes["batch"][0].ok:
        comparison = runner.ours("compare_with_feast", "compare", ours_path=ours_output, feast_path=feast_output).result

    profiles = {}
    if arguments.profile:
        profiles["weekly aggregates, compute and ingest"] = runner.ours(
            "weekly_aggregates", "profile-aggregates", home=str(home), mode="ingest",
            store_root=str(work_dir / "profile-store"), profile=True,
        ).result.get("profile")
        profiles["build_feature_frame"] = runner.ours(
            "pit_feature_frame", "profile-feature-frame", home=str(home), store_root=store_root, profile=True
        ).result.get("profile")
        profiles["batch_feature_columns"] = runner.ours(
            "pit_batch_features", "profile-batch-features", home=str(home), store_root=store_root, profile=True
        ).result.get("profile")

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": harness.machine_description(),
        "revision": revision,
        "revision_at_end": harness.source_revision(),
        "versions": versions(outcomes["feast"]),
        "data": str(arguments.data) if not arguments.scale else (
            "synthetic, from fraud_detection.data.synthetic.generate_transactions with {cards:,} cards, "
            "{terminals:,} terminals, {days} days from {start}, seed {seed}".format(**SCALE_10)
        ),
        "generated": generated,
        "loaded": loaded,
        "exported": exported,
        "compute": compute,
        "ingest": ingest,
        "outcomes": outcomes,
        "comparison": comparison,
        "profiles": profiles,
    }


def versions(feast_outcomes: list[StepOutcome]) -> str:
    import sqlite3

    import duckdb
    import numpy
    import pandas
    import pyarrow

    ours = (
        f"Python {sys.version.split()[0]}, duckdb {duckdb.__version__}, pandas {pandas.__version__}, "
        f"pyarrow {pyarrow.__version__}, numpy {numpy.__version__}, SQLite {sqlite3.sqlite_version}"
    )
    for outcome in feast_outcomes:
        if outcome.ok:
            return ours + f"; Feast {outcome.result['feast_version']} with pandas {outcome.result['pandas_version']}"
    return ours


def ratio(numerator: tuple | None, denominator: tuple | None) -> float | None:
    """Return the ratio of two medians, or None when either side has no successful run."""
    if numerator is None or denominator is None:
        return None
    return numerator[1] / denominator[1]


def format_ratio(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 10:
        return f"{value:.1f}x"
    return f"{value:.2f}x"


def print_report(arguments: argparse.Namespace, report: dict) -> None:
    loaded = report["loaded"]
    outcomes = report["outcomes"]
    print(f"\nDate: {report['date']}")
    print(f"Machine: {report['machine']}")
    if report["revision_at_end"] == report["revision"]:
        print(f"Code: commit {report['revision']}")
    else:
        print(f"Code: commit {report['revision']} at the start and {report['revision_at_end']} at the end, so the code changed during the run")
    print(f"Versions: {report['versions']}")
    print(f"Data: {report['data']}")
    if report["generated"]:
        generated = report["generated"]
        print(
            f"Generated {generated['rows']:,} transactions in {generated['generate_seconds']:.0f} s "
            f"(CSV written in {generated['write_csv_seconds']:.0f} s), fraud rate {generated['fraud_rate']:.2%}"
        )
    print(
        f"Source datastore: {loaded['rows_loaded']:,} transactions, {loaded['cards']:,} cards, "
        f"{loaded['terminals']:,} terminals, {loaded['first']} to {loaded['last']} (loaded in {loaded['seconds']:.1f} s)"
    )
    print(f"Runs of each measured step: {arguments.repeat}; ratios use the medians.")
    environment = "numpy's default (huge pages requested)" if arguments.numpy_huge_pages else " ".join(
        f"{name}={value}" for name, value in harness.STEP_ENVIRONMENT.items()
    )
    print(f"Environment of every step: {environment}.")

    # (a)
    compute, ingest = report["compute"], report["ingest"]
    first = next((o.result for o in compute if o.ok), None)
    print("\n### Weekly aggregates\n")
    if first:
        records = first["records"]
        print(
            f"{first['weeks']} week ends ({first['first_week_end']} to {first['last_week_end']}), "
            f"{records['card-weekly-aggregates']:,} card and {records['terminal-weekly-aggregates']:,} terminal records.\n"
        )
    print("| Work | Time | of which compute | of which ingest | Peak RSS |")
    print("|---|---|---|---|---|")
    print(
        f"| Compute all weeks | {format_seconds(seconds_range(compute))} | "
        f"{format_seconds(seconds_range(compute, 'compute_seconds'))} | — | {format_peak(compute)} |"
    )
    print(
        f"| Compute and ingest all weeks (online and offline store) | {format_seconds(seconds_range(ingest))} | "
        f"{format_seconds(seconds_range(ingest, 'compute_seconds'))} | {format_seconds(seconds_range(ingest, 'ingest_seconds'))} "
        f"| {format_peak(ingest)} |"
    )

    # (b), (c), (d)
    times = {key: seconds_range(values) for key, values in outcomes.items()}
    rows = {key: next((o.result["rows"] for o in values if o.ok), None) for key, values in outcomes.items()}
    print("\n### Point-in-time join of every transaction\n")
    print("| Work | Rows | Time | Peak RSS | Feast / this | this / bare scan |")
    print("|---|---|---|---|---|---|")
    lines = (
        ("frame", "Ours: `build_feature_frame` (batch, streaming and request features)"),
        ("batch", "Ours: `batch_feature_columns` (batch features only) into a DataFrame"),
        ("feast", "Feast `get_historical_features(...).to_df()`, `duckdb` offline store"),
        ("scan", "Floor: DuckDB scan of all transactions into pandas"),
        ("asof", "Floor: DuckDB `ASOF JOIN` of the entity rows and both Parquet files"),
    )
    for key, label in lines:
        values = outcomes[key]
        if not values:
            continue
        note = harness.failure_note(values)
        time_text = format_seconds(times[key]) if not note else f"{format_seconds(times[key])} ({note})"
        row_text = f"{rows[key]:,}" if rows[key] is not None else "—"
        print(
            f"| {label} | {row_text} | {time_text} | {format_peak(values)} | "
            f"{format_ratio(ratio(times['feast'], times[key]))} | {format_ratio(ratio(times[key], times['scan']))} |"
        )

    print(
        "\nPeak RSS is the step process's maximum resident memory, read from the kernel. For ours "
        "`batch_feature_columns` and for Feast it is read right after the join, before the result is "
        "written out for the comparison."
    )

    # Work outside the clocks, and the DataFrame step inside ours.
    ours_read = seconds_range(outcomes["batch"], "input_read_seconds")
    feast_read = seconds_range(outcomes["feast"], "input_read_seconds")
    to_frame = seconds_range(outcomes["batch"], "to_frame_seconds")
    feast_setup = next((o.result for o in outcomes["feast"] if o.ok), None)
    print(
        f"\nOf ours `batch_feature_columns` time, making the DataFrame of the entity and feature columns took "
        f"{format_seconds(to_frame)}. Not timed above: reading the transactions before the join, ours from DuckDB "
        f"{format_seconds(ours_read)}, Feast's entity rows from Parquet {format_seconds(feast_read)}"
        + (
            f"; Feast's `import feast` {feast_setup['import_seconds']:.1f} s and `apply` {feast_setup['apply_seconds']:.1f} s."
            if feast_setup
            else "."
        )
    )

    # Row counts and agreement.
    comparison = report["comparison"]
    print("\nOur joins returned exactly one row per transaction (asserted in the steps).")
    if comparison:
        disagreeing = comparison["disagreeing_rows_by_feature"]
        print(
            f"Feast returned {comparison['feast_rows']:,} rows for {comparison['ours_rows']:,} transactions "
            f"({comparison['feast_distinct_transactions']:,} distinct, {comparison['transactions_missing_from_feast']:,} missing). "
            f"Rows without a card record: ours {comparison['rows_without_card_record']['ours']:,}, "
            f"Feast {comparison['rows_without_card_record']['feast']:,}. "
            + ("Every feature value agrees." if not disagreeing else f"Disagreeing rows by feature: {disagreeing}.")
        )

    # Targets.
    print("\n### Targets\n")
    print(target_line("Ours at least 10x faster than Feast (batch features)", times["feast"], times["batch"], FEAST_TARGET_RATIO, at_least=True))
    print(target_line("`build_feature_frame` within 3x of the bare scan", times["frame"], times["scan"], SCAN_TARGET_RATIO, at_least=False))
    print(target_line("`batch_feature_columns` within 3x of the bare scan", times["batch"], times["scan"], SCAN_TARGET_RATIO, at_least=False))
    print(f"\nWhole run: {report['total_seconds']:.0f} s.")

    for title, text in report["profiles"].items():
        print(f"\n### cProfile: {title}\n")
        print(text or "(the profiled run failed)")


def target_line(label: str, numerator: tuple | None, denominator: tuple | None, bound: float, *, at_least: bool) -> str:
    """Return the target's line: the ratio of the medians decides, and the ratio of the fastest runs is shown too."""
    value = ratio(numerator, denominator)
    if value is None:
        return f"- {label}: not measured."
    met = value >= bound if at_least else value <= bound
    fastest = numerator[0] / denominator[0]
    return f"- {label}: {format_ratio(value)} (fastest runs: {format_ratio(fastest)}), {'met' if met else 'not met'}."


if __name__ == "__main__":
    main()
