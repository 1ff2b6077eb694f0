"""The ``fraud-detection`` command: run the main job on the local backend, manage the endpoint."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def configure_environment(home: Path, dags_folder: Path) -> None:
    """Point Airflow and the domain library at one home folder; call before importing Airflow."""
    os.environ["FRAUD_DETECTION_HOME"] = str(home)
    os.environ.setdefault("FRAUD_DETECTION_BACKEND", "local")
    os.environ.setdefault("AIRFLOW_HOME", str(home / "airflow"))
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(PROJECT_ROOT / "plugins"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def migrate_metadata_database() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"`airflow db migrate` failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def whole_number(minimum: int) -> Callable[[str], int]:
    """Return an argparse type that accepts whole numbers of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: use a whole number of at least {minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"invalid value {value}: use a whole number of at least {minimum}")
        return value

    return parse


def fraction(text: str) -> float:
    """Parse a number from 0 to 1, for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: use a number from 0 to 1") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"invalid value {value}: use a number from 0 to 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    # allow_abbrev=False, so that a misspelt option is an error rather than a guess.
    parser = argparse.ArgumentParser(prog="fraud-detection", description=__doc__, allow_abbrev=False)
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("FRAUD_DETECTION_HOME", PROJECT_ROOT / "var")),
                        help="Folder of all local state: datastore, feature store, models, Airflow (default: var/).")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="Run the whole flow through Airflow on the local backend.", allow_abbrev=False)
    run.add_argument("data", nargs="?", type=Path,
                     help="Transactions CSV (or .csv.gz) with TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, "
                          "TX_AMOUNT, TX_FRAUD; without it a synthetic data set is generated.")
    run.add_argument("--dags-folder", type=Path, default=PROJECT_ROOT / "dags", help="Folder of the DAG files.")
    run.add_argument("--synthetic-days", type=whole_number(1), default=84, help="Days of synthetic data to generate (default 84).")
    run.add_argument("--test-days", type=whole_number(1), default=7, help="Days in the evaluation window (default 7).")
    run.add_argument("--burn-in-days", type=whole_number(0), default=7, help="First days left out of training (default 7).")
    run.add_argument("--training-days", type=whole_number(1), default=None, help="Maximum training window in days (default: all data).")
    run.add_argument("--num-boost-round", type=whole_number(1), default=200, help="XGBoost boosting rounds (default 200).")
    run.add_argument("--min-average-precision", type=fraction, default=0.05,
                     help="Average precision a model needs to be approved and deployed, 0 to 1 (default 0.05).")

    stop = commands.add_parser("stop-endpoint", help="Stop a local endpoint and remove its state.")
    stop.add_argument("name", nargs="?", default="card-fraud-scoring")
    describe = commands.add_parser("describe-endpoint", help="Print a local endpoint's status as JSON.")
    describe.add_argument("name", nargs="?", default="card-fraud-scoring")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    home = arguments.home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    if arguments.command == "run":
        return _run(arguments, home)
    os.environ["FRAUD_DETECTION_HOME"] = str(home)
    from fraud_detection.config import Settings
    from fraud_detection.serving.endpoints import EndpointNotFoundError, LocalEndpointManager

    manager = LocalEndpointManager(Settings.from_env().endpoints_root)
    try:
        if arguments.command == "stop-endpoint":
            if arguments.name not in manager.list_endpoints():
                print(f"No endpoint {arguments.name} under {manager.root}: nothing to stop.")
                return 0
            manager.delete(arguments.name)
            print(f"Stopped endpoint {arguments.name}.")
        else:
            description = manager.describe(arguments.name)
            print(json.dumps({k: str(v) for k, v in vars(description).items()}, indent=2))
    except EndpointNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


def _run(arguments: argparse.Namespace, home: Path) -> int:
    if arguments.data is not None and not arguments.data.is_file():
        print(
            f"Transactions file {arguments.data.resolve()} not found. Pass the path of a CSV or CSV.GZ file.",
            file=sys.stderr,
        )
        return 2
    configure_environment(home, arguments.dags_folder.resolve())
    from fraud_airflow.main_job import JobOptions, Progress, format_summary, run_main_job

    progress = Progress(sys.stdout)
    progress.say(f"Preparing Airflow's metadata database in {os.environ['AIRFLOW_HOME']}")
    migrate_metadata_database()
    options = JobOptions(
        data=arguments.data.resolve() if arguments.data else None,
        home=home,
        dags_folder=arguments.dags_folder.resolve(),
        synthetic_days=arguments.synthetic_days,
        test_days=arguments.test_days,
        burn_in_days=arguments.burn_in_days,
        training_days=arguments.training_days,
        num_boost_round=arguments.num_boost_round,
        min_average_precision=arguments.min_average_precision,
    )
    try:
        report = run_main_job(options, progress)
    except Exception as error:  # The command's last word: report any failure plainly.
        progress.say(f"FAILED: {error}")
        return 1
    print(format_summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
