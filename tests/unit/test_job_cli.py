"""Option checks of the fraud-detection command line, before any work starts."""

from __future__ import annotations

import pytest

from fraud_airflow.fraud_job_cli import build_parser


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--test-days", "-1"], "argument --test-days: invalid value -1: use a whole number of at least 1"),
        (["--training-days", "0"], "argument --training-days: invalid value 0: use a whole number of at least 1"),
        (["--burn-in-days", "x"], "argument --burn-in-days: invalid value 'x': use a whole number of at least 0"),
        (["--min-average-precision", "2"], "argument --min-average-precision: invalid value 2.0: use a number from 0 to 1"),
        (["--test-day", "3"], "unrecognized arguments: --test-day"),
    ],
)
def test_invalid_run_option_rejected(arguments, message, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", *arguments])

    assert message in capsys.readouterr().err


def test_valid_run_options_parsed():
    options = build_parser().parse_args(["run", "--burn-in-days", "0", "--min-average-precision", "0.5"])

    assert options.burn_in_days == 0
    assert options.min_average_precision == 0.5
