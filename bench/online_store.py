"""Benchmark ingestion into the local feature store and online reads against Feast, in one run.

Usage::

    make bench-feast   # once: Feast's own virtualenv, .venv-feast
    .venv/bin/python bench/online_store.py [--data PATH] [--reads 20000] [--profile]

It loads the transactions into a new source datastore under ``/tmp``, stages every week's
records of both batch groups as the weekly job does, and measures, each step in a process of
its own:

a. ingestion of all staged records, week by week. Ours goes into the online and offline stores,
   as the weekly job writes them, and into the online store alone. Feast 0.67.0 writes the
   same records into its SQLite online store with ``write_to_online_store``, and with
   ``materialize`` from Parquet, in one call over all weeks and in one call per week;
b. in-process online reads after a warm-up: single cards (with their terminal) and batches of
   cards, ours through ``get_records`` and Feast's through ``get_online_features(...).to_dict()``.

Prints Markdown tables with the ratios and removes its files unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (bench/ is not a package)
from feature_pipeline import format_ratio, target_line, versions  # noqa: E402
from harness import GIB, StepOutcome, format_peak, format_seconds, seconds_range  # noqa: E402

INGEST_TARGET_RATIO = 10.0
READ_TARGET_RATIO = 5.0
READ_P99_TARGET_US = 1000.0
# Reads happen this long after the last week end, inside the batch groups' 14-day TTL.
READ_DELAY = timedelta(hours=1)
SAMPLE_SEED = 11


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=harness.HANDBOOK, help="Transactions CSV or CSV.GZ (default: the handbook's data).")
    parser.add_argument("--reads", type=int, default=20_000, help="Timed single-card reads per side (default 20000).")
    parser.add_argument("--warmup", type=int, default=1_000, help="Untimed single-card reads before the timed ones (default 1000), and a tenth as many untimed batches.")
    parser.add_argument("--batches", type=int, default=1_000, help="Timed batch reads per side (default 1000).")
    parser.add_argument("--batch-size", type=int, default=100, help="Cards per batch read (default 100).")
    parser.add_argument("--repeat", type=int, default=1, help="Runs of each ingest step (default 1).")
    parser.add_argument("--profile", action="store_true", help="Also run our ingest and reads once more under cProfile.")
    parser.add_argument("--timeout-minutes", type=float, default=15.0, help="Time limit of each step, in minutes (default 15).")
    parser.add_argument(
        "--memory-limit-gib", type=float, default=20.0, help="Resident memory at which a step is stopped, in GiB (default 20)."
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="New or empty folder for the data and stores, removed at the end unless --keep (default: a new folder under /tmp).",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the work folder instead of removing it at the end.")
    parser.add_argument("--json", type=Path, help="Also write every step's outcome to this JSON file.")
    arguments = parser.parse_args()
    for name in ("reads", "batches", "batch_size", "repeat"):
        if getattr(arguments, name) < 1:
            parser.error(f"invalid --{name.replace('_', '-')} {getattr(arguments, name)}: use 1 or more.")
    if arguments.warmup < 0:
        parser.error(f"invalid --warmup {arguments.warmup}: use 0 or more reads.")
    if not arguments.data.is_file():
        parser.error(f"transactions file {arguments.data} not found: pass --data PATH.")
    return arguments


def main() -> None:
    arguments = parse_arguments()
    work_dir = harness.prepare_work_dir(arguments.work_dir, "fraud-bench-online-")
    runner = harness.Runner(
        work_dir, timeout_seconds=arguments.timeout_minutes * 60, memory_limit_bytes=int(arguments.memory_limit_gib * GIB)
    )
    harness.run_and_report(arguments, runner, work_dir, run, print_report)


def run(arguments: argparse.Namespace, runner: harness.Runner, work_dir: Path) -> dict:
    home = str(work_dir / "home")
    read_store = str(work_dir / "store-online-offline-0")
    print(f"Work folder {work_dir}", file=sys.stderr)
    # Read first, because the benchmark measures the code as it was when the run started.
    revision = harness.source_revision()

    # Set-up: the source datastore and the weekly job's staged records.
    loaded = harness.require(runner.ours("load_source", "load", csv_path=str(arguments.data), home=home))
    staging = harness.require(runner.ours("weekly_aggregates", "stage", home=home, mode="stage"))
    staged = staging["staged"]

    # (a) Ingestion. The first store written to both stores serves the reads.
    ours_both, ours_online = [], []
    for index in range(arguments.repeat):
        root = read_store if index == 0 else str(work_dir / f"store-online-offline-{index}")
        ours_both.append(runner.ours("ingest_staged", "ours-ingest-online-offline", home=home, store_root=root,
                                     staged=staged, target_stores=["online", "offline"]))
        if index:
            shutil.rmtree(root, ignore_errors=True)
        root = str(work_dir / f"store-online-{index}")
        ours_online.append(runner.ours("ingest_staged", "ours-ingest-online", home=home, store_root=root,
                                       staged=staged, target_stores=["online"]))
        shutil.rmtree(root, ignore_errors=True)
    harness.require(ours_both[0])

    feast_inputs = {name: str(work_dir / f"{name}.parquet") for name in ("card_path", "terminal_path", "entity_path")}
    harness.require(runner.ours("export_feast_inputs", "export", home=home, store_root=read_store, **feast_inputs))
    feast_views = {key: feast_inputs[key] for key in ("card_path", "terminal_path")}
    read_repo = str(work_dir / "feast-write-0")
    feast_write = []
    for index in range(arguments.repeat):
        repo = read_repo if index == 0 else str(work_dir / f"feast-write-{index}")
        feast_write.append(runner.feast("online_write", "feast-write-to-online-store", repo_dir=repo, ttl_days=14,
                                        staged=staged, **feast_views))
        if index:
            shutil.rmtree(repo, ignore_errors=True)
    week_ends = [week["ingest_id"].removeprefix("week-ending-") for week in staged]
    feast_materialize = {
        per_week: runner.feast("materialize", f"feast-materialize-{'per-week' if per_week else 'once'}",
                               repo_dir=str(work_dir / f"feast-materialize-{per_week}"), ttl_days=14,
                               week_ends=week_ends, per_week=per_week, **feast_views)
        for per_week in (False, True)
    }

    # (b) Online reads, on the same (card, terminal) pairs for both sides.
    stream = harness.require(runner.ours("stream_recent_activity", "stream-last-day", home=home, store_root=read_store))
    pairs_path = str(work_dir / "pairs.json")
    count = arguments.warmup + arguments.reads + (arguments.batches + arguments.warmup // 10) * arguments.batch_size
    harness.require(runner.ours("sample_entities", "sample", home=home, seed=SAMPLE_SEED, count=count, output_path=pairs_path))
    last_week_end = datetime.fromisoformat(staging["last_week_end"]).replace(tzinfo=timezone.utc)
    read_job = {
        "pairs_path": pairs_path, "warmup": arguments.warmup, "reads": arguments.reads,
        "batches": arguments.batches, "batch_size": arguments.batch_size,
    }
    ours_read = runner.ours("online_read", "ours-online-read", home=home, store_root=read_store,
                            as_of=(last_week_end + READ_DELAY).timestamp(), **read_job)
    feast_read = None
    if feast_write[0].ok:
        feast_read = runner.feast("online_read", "feast-online-read", repo_dir=read_repo, ttl_days=14, **feast_views, **read_job)

    profiles = {}
    if arguments.profile:
        root = str(work_dir / "store-profile")
        profiles["ingest into the online store"] = runner.ours(
            "ingest_staged", "profile-ingest-online", home=home, store_root=root, staged=staged,
            target_stores=["online"], profile=True,
        ).result.get("profile")
        profiles["ingest into the offline store"] = runner.ours(
            "ingest_staged", "profile-ingest-offline", home=home, store_root=str(work_dir / "store-profile-offline"),
            staged=staged, target_stores=["offline"], profile=True,
        ).result.get("profile")
        profiles["get_records, one card and all its groups"] = runner.ours(
            "online_read", "profile-online-read", home=home, store_root=read_store,
            as_of=(last_week_end + READ_DELAY).timestamp(), profile=True, **read_job,
        ).result.get("profile")

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": harness.machine_description(),
        "revision": revision,
        "revision_at_end": harness.source_revision(),
        "versions": versions(feast_write),
        "data": str(arguments.data),
        "loaded": loaded,
        "staging": {key: value for key, value in staging.items() if key != "staged"},
        "stream": stream,
        "ours_both": ours_both,
        "ours_online": ours_online,
        "feast_write": feast_write,
        "feast_materialize": feast_materialize,
        "ours_read": ours_read,
        "feast_read": feast_read,
        "profiles": profiles,
    }


def _median_rate(outcomes: list[StepOutcome]) -> float | None:
    summary = seconds_range(outcomes, "rows_per_second")
    return summary[1] if summary else None


def print_report(arguments: argparse.Namespace, report: dict) -> None:
    loaded, staging = report["loaded"], report["staging"]
    print(f"\nDate: {report['date']}")
    print(f"Machine: {report['machine']}")
    if report["revision_at_end"] == report["revision"]:
        print(f"Code: commit {report['revision']}")
    else:
        print(f"Code: commit {report['revision']} at the start and {report['revision_at_end']} at the end, so the code changed during the run")
    print(f"Versions: {report['versions']}")
    print(
        f"Data: {report['data']}: {loaded['rows_loaded']:,} transactions, {loaded['cards']:,} cards, {loaded['terminals']:,} terminals"
    )
    records = staging["records"]
    total = sum(records.values())
    print(
        f"Staged records: {staging['weeks']} weeks, {records['card-weekly-aggregates']:,} card and "
        f"{records['terminal-weekly-aggregates']:,} terminal records ({total:,} in all), computed and staged in "
        f"{staging['seconds']:.1f} s."
    )

    # (a)
    print("\n### Ingestion of every weekly record\n")
    print("| Work | Records written | Time | Rows/s | Peak RSS |")
    print("|---|---|---|---|---|")

    def ingest_line(label: str, outcomes: list[StepOutcome], records_key: str = "records") -> None:
        if not outcomes:
            return
        note = harness.failure_note(outcomes)
        result = next((o.result for o in outcomes if o.ok), None)
        written = f"{result[records_key]:,}" if result else "—"
        rate = _median_rate(outcomes)
        rate_text = f"{rate:,.0f}" if rate else "—"
        print(f"| {label} | {written} | {format_seconds(seconds_range(outcomes))}{f' ({note})' if note else ''} | {rate_text} | {format_peak(outcomes)} |")

    ingest_line("Ours: `ingest`, online and offline store (as the weekly job)", report["ours_both"])
    ingest_line("Ours: `ingest`, online store only", report["ours_online"])
    ingest_line("Feast: `write_to_online_store`, SQLite", report["feast_write"])
    for per_week, label in ((False, "one call over all weeks"), (True, f"one call per week ({staging['weeks']} calls)")):
        outcome = report["feast_materialize"][per_week]
        online = outcome.result.get("online_store", {}) if outcome.ok else {}
        entities = sum(view["entities"] for view in online.values()) if online else None
        time_text = format_seconds(seconds_range([outcome])) if outcome.ok else f"{outcome.status}: {outcome.message.splitlines()[-1] if outcome.message else ''}"
        rate = f"{total / outcome.result['seconds']:,.0f} (records offered)" if outcome.ok and per_week else "—"
        print(
            f"| Feast: `materialize`, {label} | {entities:,} entities in the online store | {time_text} | {rate} | {format_peak([outcome])} |"
            if entities is not None
            else f"| Feast: `materialize`, {label} | — | {time_text} | — | {format_peak([outcome])} |"
        )

    ours_rate, ours_online_rate, feast_rate = (_median_rate(report[k]) for k in ("ours_both", "ours_online", "feast_write"))
    ingest_ratio = ours_rate / feast_rate if ours_rate and feast_rate else None
    online_ratio = ours_online_rate / feast_rate if ours_online_rate and feast_rate else None
    print(f"\nOurs (online and offline) / Feast `write_to_online_store`, rows/s: {format_ratio(ingest_ratio)}.")
    print(f"Ours (online store only) / Feast `write_to_online_store`, rows/s: {format_ratio(online_ratio)}.")

    # (b)
    ours, feast = report["ours_read"], report["feast_read"]
    print(f"\n### Online reads, in-process ({arguments.reads:,} single reads and {arguments.batches:,} batches after a warm-up)\n")
    if not ours.ok:
        print(f"Our read step {ours.status}: {ours.message}")
        return
    print("| Read | Ours p50 | Ours p99 | Feast p50 | Feast p99 | Feast / ours, p50 | Feast / ours, p99 |")
    print("|---|---|---|---|---|---|---|")
    feast_result = feast.result if feast is not None and feast.ok else {}
    lines = (
        ("single_two_groups", "single_two_groups", "One card: card and terminal groups"),
        ("single_three_groups", "single_two_groups", "One card: card, terminal and card-recent-activity groups (Feast: two views)"),
        ("batch_two_groups", "batch_two_groups", f"{arguments.batch_size} cards and their terminals, one call"),
    )
    for ours_key, feast_key, label in lines:
        mine, theirs = ours.result[ours_key], feast_result.get(feast_key)
        cells = [f"{mine['p50_us']:,.0f} µs", f"{mine['p99_us']:,.0f} µs"]
        if theirs:
            cells += [
                f"{theirs['p50_us']:,.0f} µs", f"{theirs['p99_us']:,.0f} µs",
                format_ratio(theirs["p50_us"] / mine["p50_us"]), format_ratio(theirs["p99_us"] / mine["p99_us"]),
            ]
        else:
            cells += ["—"] * 4
        print(f"| {label} | {' | '.join(cells)} |")
    print(f"\nPeak RSS of the read processes: ours {format_peak([ours])}, Feast {format_peak([feast]) if feast else '—'}.")
    for key in ("single_two_groups", "single_three_groups", "batch_two_groups"):
        result = ours.result[key]
        print(f"Ours, {key}: {result['records_found']:,} of {result['records_requested']:,} requested records returned.")
    for key in ("single_two_groups", "batch_two_groups"):
        if key in feast_result:
            result = feast_result[key]
            print(
                f"Feast, {key}: {result['rows_with_card_values']:,} card and {result['rows_with_terminal_values']:,} "
                f"terminal values in {result['rows_requested']:,} rows."
            )

    # Targets.
    print("\n### Targets\n")
    print(target_line("Ours ingest at least 10x Feast's `write_to_online_store` rows/s (online and offline)", ingest_ratio, INGEST_TARGET_RATIO, at_least=True))
    print(target_line("Ours ingest at least 10x Feast's `write_to_online_store` rows/s (online store only)", online_ratio, INGEST_TARGET_RATIO, at_least=True))
    p99 = ours.result["single_three_groups"]["p99_us"]
    print(f"- One card, all groups, p99 under 1 ms: {p99:,.0f} µs, {'met' if p99 < READ_P99_TARGET_US else 'not met'}.")
    if feast_result:
        for ours_key, label in (("single_two_groups", "same two groups"), ("single_three_groups", "ours with three groups")):
            value = feast_result["single_two_groups"]["p99_us"] / ours.result[ours_key]["p99_us"]
            print(target_line(f"One card at least 5x faster than Feast at p99 ({label})", value, READ_TARGET_RATIO, at_least=True))
    print(f"\nWhole run: {report['total_seconds']:.0f} s.")

    for title, text in report["profiles"].items():
        print(f"\n### cProfile: {title}\n")
        print(text or "(the profiled run failed)")


if __name__ == "__main__":
    main()
