"""The main job: the whole flow on the local backend, run through Airflow.

Every step that a DAG owns runs as a real DAG run (``dag.test``), so the runs are recorded in
Airflow's metadata database and show in the UI afterwards. Airflow's own log output goes to a
file under the home folder; the terminal gets one line per step and a summary at the end.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, TextIO


@dataclass
class JobOptions:
    data: Path | None
    home: Path
    dags_folder: Path
    synthetic_days: int = 84
    synthetic_customers: int = 1000
    synthetic_terminals: int = 2000
    test_days: int = 7
    burn_in_days: int = 7
    training_days: int | None = None
    num_boost_round: int = 200
    min_average_precision: float = 0.05
    sample_transactions: int = 5
    keep_endpoint: bool = True


@dataclass
class JobReport:
    facts: dict[str, Any] = field(default_factory=dict)


class Progress:
    """Print numbered steps with their durations to the terminal."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        self.stream.write(f"[{elapsed:7.1f}s] {message}\n")
        self.stream.flush()


@contextlib.contextmanager
def output_to(log_path: Path):
    """Send this process's stdout and stderr, Python and native, to ``log_path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)


def run_dag(dags: dict, dag_id: str, log_path: Path, *, logical_date: datetime | None = None, conf: dict | None = None):
    """Run one DAG run in-process; raise with the failed tasks if it does not succeed."""
    import pendulum

    dag = dags[dag_id]
    date = pendulum.instance(logical_date, tz="UTC") if logical_date else pendulum.now("UTC")
    with output_to(log_path):
        run = dag.test(logical_date=date, run_conf=conf)
    if run is None or run.state != "success":
        failed = [ti.task_id for ti in run.get_task_instances() if ti.state == "failed"] if run else []
        raise RuntimeError(
            f"DAG run {dag_id} ({run.run_id if run else 'not created'}) ended {run.state if run else 'without a run'}; "
            f"failed tasks: {failed or 'none'}. The task logs are in {log_path}."
        )
    return run


def xcom(run, task_id: str):
    """Return the value a task of a finished run pushed."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalar(XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key="return_value"))
        return XComModel.deserialize_value(row) if row is not None else None


def check_training_windows(options: JobOptions, settings, first: datetime, last: datetime) -> None:
    """Fail at once, naming the options to change, when the data is too short to train on."""
    from fraud_detection.training.train import plan_windows

    try:
        plan_windows(
            data_start=first,
            as_of=last + timedelta(seconds=1),
            label_delay_days=settings.label_delay_days,
            test_days=options.test_days,
            burn_in_days=options.burn_in_days,
            training_days=options.training_days,
        )
    except ValueError as error:
        raise RuntimeError(
            f"{error} On the command line: --test-days, --burn-in-days, and the environment "
            "variable FRAUD_DETECTION_LABEL_DELAY_DAYS."
        ) from None


def load_input(options: JobOptions, settings, progress: Progress, log_path: Path) -> dict[str, Any]:
    """Load the transactions file, or generate a synthetic data set, into the source datastore."""
    from fraud_detection.data.source import load_transactions_csv

    data = options.data
    if data is None:
        from fraud_detection.data.synthetic import generate_transactions, write_transactions_csv

        progress.say(
            f"No data file given: generating {options.synthetic_days} days of synthetic transactions "
            f"({options.synthetic_customers} cards, {options.synthetic_terminals} terminals)"
        )
        frame = generate_transactions(
            n_customers=options.synthetic_customers, n_terminals=options.synthetic_terminals, days=options.synthetic_days
        )
        data = write_transactions_csv(frame, settings.home / "input" / "synthetic-transactions.csv.gz")
    progress.say(f"Loading {data} into the source datastore {settings.source_database}")
    with output_to(log_path):
        loaded = load_transactions_csv(data, settings.source_database, settings.quarantine_root)
    progress.say(
        f"  {loaded.rows_loaded:,} transactions loaded, {loaded.rows_already_present:,} already present, "
        f"{loaded.rows_quarantined:,} quarantined"
        + (f" ({loaded.quarantine_path})" if loaded.quarantine_path else "")
    )
    return {"input": str(data), "loaded": loaded}


def stream_last_day(settings, last: datetime) -> dict[str, Any]:
    """Replay the last day of transactions through the streaming processor."""
    from fraud_detection.features.catalog import CARD_RECENT_ACTIVITY
    from fraud_detection.stores import open_feature_store
    from fraud_detection.stream_processor import StreamProcessor, read_seed_history, read_transactions

    store = open_feature_store(settings)
    store.create_feature_group(CARD_RECENT_ACTIVITY)
    end = last + timedelta(seconds=1)
    start = end - timedelta(days=1)
    processor = StreamProcessor(store)
    processor.seed(read_seed_history(settings.source_database, start, timedelta(milliseconds=processor.retention_ms)))
    transactions = read_transactions(settings.source_database, start, end)
    stats = processor.process(transactions)
    return stats.as_dict()


def score_samples(settings, endpoint_name: str, now: datetime, count: int) -> list[dict[str, Any]]:
    """Send a few new transactions, timed just after ``now``, to the endpoint."""
    from fraud_detection.data.source import connect
    from fraud_detection.serving.endpoints import LocalEndpointManager

    with connect(settings.source_database) as connection:
        # Templates from the last day: about a third known frauds, the rest genuine.
        frauds = max(1, count // 3)
        templates = connection.execute(
            "(SELECT customer_id, terminal_id, tx_amount FROM transactions WHERE tx_datetime >= $since "
            "AND tx_fraud = 1 ORDER BY transaction_id LIMIT $frauds) UNION ALL "
            "(SELECT customer_id, terminal_id, tx_amount FROM transactions WHERE tx_datetime >= $since "
            "AND tx_fraud = 0 ORDER BY transaction_id LIMIT $genuine)",
            {"since": now - timedelta(days=1), "frauds": frauds, "genuine": count - frauds},
        ).fetchall()
        next_id = connection.execute("SELECT max(transaction_id) + 1 FROM transactions").fetchone()[0]
    manager = LocalEndpointManager(settings.endpoints_root)
    samples = []
    for offset, (card_id, terminal_id, amount) in enumerate(templates):
        payload = {
            "transaction_id": int(next_id + offset),
            "card_id": int(card_id),
            "terminal_id": int(terminal_id),
            "amount": float(amount),
            "timestamp": (now + timedelta(seconds=offset + 1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        response = manager.invoke(endpoint_name, payload)
        prediction = response["predictions"][0] if "predictions" in response else response
        samples.append({**payload, "fraud_score": prediction["fraud_score"]})
    return samples


def scheduled_weeks(boundaries: list[datetime]) -> list[datetime]:
    """Return the week ends that the weekly DAG's start and end dates let it run.

    A DAG run before the DAG's start date runs no task, so weeks outside the dates would be
    reported as done with nothing written. With FRAUD_DETECTION_START_DATE unset, the DAGs
    start at the data's first week, set here before they are loaded.
    """
    from fraud_airflow.dag_defaults import date_from_env

    if not os.environ.get("FRAUD_DETECTION_START_DATE"):
        os.environ["FRAUD_DETECTION_START_DATE"] = f"{boundaries[0]:%Y-%m-%d}"
    start = date_from_env("FRAUD_DETECTION_START_DATE").naive()
    end = date_from_env("FRAUD_DETECTION_END_DATE")
    end = end.naive() if end is not None else None
    weeks = [boundary for boundary in boundaries if boundary >= start and (end is None or boundary <= end)]
    if not weeks:
        raise RuntimeError(
            f"No week of the data (weeks ending {boundaries[0]:%Y-%m-%d} to {boundaries[-1]:%Y-%m-%d}) falls between "
            f"FRAUD_DETECTION_START_DATE {start:%Y-%m-%d} and FRAUD_DETECTION_END_DATE "
            f"{f'{end:%Y-%m-%d}' if end else '(unset)'}. Set them to cover the data, or unset them for the defaults."
        )
    return weeks


def run_main_job(options: JobOptions, progress: Progress) -> JobReport:
    """Run every step of the flow and return the facts for the summary."""
    from fraud_detection.config import Settings
    from fraud_detection.data.source import transaction_time_range, week_boundaries

    settings = Settings.from_env()
    report = JobReport()
    log_path = settings.home / "logs" / f"main-job-{datetime.now():%Y%m%dT%H%M%S}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    report.facts["log_path"] = str(log_path)
    report.facts.update(load_input(options, settings, progress, log_path))

    first, last = transaction_time_range(settings.source_database)
    check_training_windows(options, settings, first, last)
    # Only weeks that ended by the close of the data's last day: a later week is incomplete.
    last_day_end = datetime(last.year, last.month, last.day) + timedelta(days=1)
    boundaries = [boundary for boundary in week_boundaries(first, last) if boundary <= last_day_end]
    if not boundaries:
        raise RuntimeError(f"The data ({first} to {last}) contains no complete week ending on a Monday. Give at least one week of transactions.")
    boundaries = scheduled_weeks(boundaries)
    weeks = f"{len(boundaries)} week" + ("s" if len(boundaries) != 1 else "")
    progress.say(f"Data spans {first} to {last}: {weeks}. Loading the DAGs from {options.dags_folder}")
    dags = _load_dags(options.dags_folder, log_path)

    for index, boundary in enumerate(boundaries, start=1):
        run_dag(dags, "weekly_batch_aggregates", log_path, logical_date=boundary)
        progress.say(f"weekly_batch_aggregates: week ending {boundary:%Y-%m-%d} done ({index}/{len(boundaries)})")
    report.facts["weeks"] = len(boundaries)

    run = run_dag(dags, "feature_consistency_check", log_path, logical_date=boundaries[-1])
    report.facts["consistency"] = xcom(run, "compare_online_and_offline")
    report.facts["expectations"] = xcom(run, "validate_latest_week")
    progress.say("feature_consistency_check: great-expectations suites and online/offline comparison passed")

    conf = {
        "as_of": (last + timedelta(seconds=1)).isoformat(),
        "test_days": options.test_days,
        "burn_in_days": options.burn_in_days,
        "training_days": options.training_days,
        "num_boost_round": options.num_boost_round,
        "min_average_precision": options.min_average_precision,
    }
    progress.say("retrain_and_deploy: building point-in-time training sets, training XGBoost, deploying")
    run = run_dag(dags, "retrain_and_deploy", log_path, logical_date=boundaries[-1], conf=conf)
    report.facts["windows"] = xcom(run, "plan_windows")
    report.facts["model"] = xcom(run, "register_model")
    report.facts["endpoint"] = xcom(run, "deploy_endpoint")
    if report.facts["endpoint"] is None:
        raise RuntimeError(
            f"The model was not deployed: it is {report.facts['model']['status']} with metrics "
            f"{report.facts['model']['metrics']}. See {log_path}."
        )
    progress.say(f"retrain_and_deploy: {report.facts['model']['model_name']} deployed to {report.facts['endpoint']['url']}")

    end = last + timedelta(seconds=1)
    period = {"start": (end - timedelta(days=7)).isoformat(), "end": end.isoformat()}
    run = run_dag(dags, "batch_transform", log_path, logical_date=boundaries[-1] + timedelta(seconds=1), conf=period)
    report.facts["batch_transform"] = xcom(run, "score_period")
    progress.say(f"batch_transform: {report.facts['batch_transform']['transactions']:,} transactions scored")

    with output_to(log_path):
        report.facts["streaming"] = stream_last_day(settings, last)
    progress.say(
        f"Streaming processor: {report.facts['streaming']['accepted']:,} transactions applied, "
        f"{report.facts['streaming']['records_written']:,} card records written"
    )

    # Sample transactions arrive after the last transaction and after the last week boundary.
    now = max(last, boundaries[-1])
    with output_to(log_path):
        report.facts["samples"] = score_samples(
            settings, report.facts["endpoint"]["endpoint_name"], now, options.sample_transactions
        )
    report.facts["stores"] = _store_counts(settings)
    report.facts["elapsed_seconds"] = time.monotonic() - progress.started
    return report


def _load_dags(dags_folder: Path, log_path: Path) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    with output_to(log_path):
        bag = DagBag(str(dags_folder))
    if bag.import_errors:
        with open(log_path, "a") as log_file:
            for path, text in bag.import_errors.items():
                log_file.write(f"Import error in {path}:\n{text}\n")
        # Each error is a whole traceback. Its last line names the exception and its message.
        errors = "; ".join(f"{Path(path).name}: {text.strip().splitlines()[-1]}" for path, text in bag.import_errors.items())
        raise RuntimeError(f"DAG files failed to import: {errors}. Full tracebacks are in {log_path}.")
    return bag.dags


def _store_counts(settings) -> dict[str, dict[str, int]]:
    from fraud_detection.features.catalog import FEATURE_GROUPS
    from fraud_detection.stores import open_feature_store

    store = open_feature_store(settings)
    return {
        spec.name: {"online": store.count_online_records(spec.name), "offline": len(store.read_offline(spec.name))}
        for spec in FEATURE_GROUPS
    }


def format_summary(report: JobReport) -> str:
    """Return the closing summary of a main job run."""
    facts = report.facts
    metrics = facts["model"]["metrics"]
    windows = facts["windows"]
    consistency = facts["consistency"]
    lines = [
        "",
        "Summary",
        f"  Input:                 {facts['input']}",
        f"  Weeks aggregated:      {facts['weeks']}",
        "  Records (online / offline):",
    ]
    for name, counts in facts["stores"].items():
        lines.append(f"    {name:<28} {counts['online']:>9,} / {counts['offline']:>9,}")
    sampled = sum(group["sampled"] for group in consistency["feature_groups"])
    lines += [
        f"  Consistency:           {'passed' if consistency['success'] else 'FAILED'} "
        f"(great-expectations suites, a sample of {sampled} online records equal to offline)",
        f"  Model:                 {facts['model']['model_name']} ({facts['model']['status']}), trained on "
        f"{windows['train_start'][:10]} to {windows['train_end'][:10]}",
        f"  Evaluation window:     {windows['test_start'][:10]} to {windows['test_end'][:10]}: "
        f"average precision {metrics['average_precision']:.3f}, ROC AUC {metrics['roc_auc']:.3f} "
        f"({metrics['frauds']} frauds in {metrics['transactions']:,} transactions)",
        f"  Endpoint:              {facts['endpoint']['url']}/invocations ({facts['endpoint']['endpoint_name']})",
        "  Sample scores:",
    ]
    for sample in facts["samples"]:
        lines.append(
            f"    card {sample['card_id']:>5} terminal {sample['terminal_id']:>5} amount {sample['amount']:>8.2f} "
            f"at {sample['timestamp']}: {sample['fraud_score']:.4f}"
        )
    batch = facts["batch_transform"]
    lines += [
        f"  Batch predictions:     {batch['predictions_path']} ({batch['transactions']:,} transactions)",
        f"  Airflow logs:          {facts['log_path']}",
        f"  Finished in            {facts['elapsed_seconds']:.0f} s",
    ]
    return "\n".join(lines)
