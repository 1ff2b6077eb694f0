"""Unit tests for the synthetic transaction generator."""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from fraud_detection.data.synthetic import (
    AMOUNT_FRAUD_THRESHOLD,
    BURST_MIN_SIZE,
    BURST_SPAN_SECONDS,
    COLUMNS,
    GRID_SIZE,
    generate_profiles,
    generate_transactions,
    write_transactions_csv,
)

SMALL = {"n_customers": 50, "n_terminals": 100, "days": 7}
# Large enough that every fraud scenario occurs, still well under a second.
MEDIUM = {"n_customers": 500, "n_terminals": 1000, "days": 56, "seed": 11}


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate_transactions(**SMALL)


@pytest.fixture(scope="module")
def medium() -> pd.DataFrame:
    return generate_transactions(**MEDIUM)


def test_columns_in_order(small):
    assert list(small.columns) == COLUMNS


def test_column_dtypes(small):
    expected = {
        "TRANSACTION_ID": "int64",
        "TX_DATETIME": "datetime64[s]",
        "CUSTOMER_ID": "int64",
        "TERMINAL_ID": "int64",
        "TX_AMOUNT": "float64",
        "TX_FRAUD": "int8",
        "TX_FRAUD_SCENARIO": "int8",
    }
    for column, dtype in expected.items():
        assert str(small[column].dtype) == dtype, column


def test_datetime_is_naive(small):
    assert small["TX_DATETIME"].dt.tz is None


def test_ids_within_ranges(small):
    assert small["CUSTOMER_ID"].between(0, SMALL["n_customers"] - 1).all()
    assert small["TERMINAL_ID"].between(0, SMALL["n_terminals"] - 1).all()


def test_transaction_ids_number_rows(small):
    assert small["TRANSACTION_ID"].is_unique
    assert (small["TRANSACTION_ID"].to_numpy() == np.arange(len(small))).all()


def test_datetimes_ascending_within_range(small):
    start = pd.Timestamp("2018-04-01")
    assert small["TX_DATETIME"].is_monotonic_increasing
    assert small["TX_DATETIME"].min() >= start
    assert small["TX_DATETIME"].max() < start + pd.Timedelta(days=SMALL["days"])


def test_amounts_positive_in_cents(small):
    amounts = small["TX_AMOUNT"].to_numpy()
    assert (amounts > 0).all()
    assert np.allclose(amounts * 100, np.round(amounts * 100), atol=1e-6)


def test_same_seed_same_data():
    first = generate_transactions(**SMALL, seed=3)
    second = generate_transactions(**SMALL, seed=3)
    pd.testing.assert_frame_equal(first, second)


def test_different_seed_different_data():
    first = generate_transactions(**SMALL, seed=3)
    second = generate_transactions(**SMALL, seed=4)
    assert not first.equals(second)


def test_profiles_deterministic():
    profiles = generate_profiles(n_customers=50, n_terminals=100, seed=3)
    again = generate_profiles(n_customers=50, n_terminals=100, seed=3)
    pd.testing.assert_frame_equal(profiles.customers, again.customers)
    pd.testing.assert_frame_equal(profiles.terminals, again.terminals)
    assert len(profiles.customers) == 50
    assert len(profiles.terminals) == 100


def test_customer_profiles_in_ranges():
    customers = generate_profiles(n_customers=2000, n_terminals=10).customers
    assert customers[["X", "Y"]].stack().between(0, GRID_SIZE).all()
    assert customers["MEAN_AMOUNT"].between(10, 100).all()
    assert (customers["STD_AMOUNT"] < customers["MEAN_AMOUNT"]).all()
    assert customers["MEAN_TX_PER_DAY"].between(0, 4).all()


def test_start_accepts_datetime():
    from_string = generate_transactions(**SMALL, start="2020-01-05")
    from_datetime = generate_transactions(**SMALL, start=datetime(2020, 1, 5))
    pd.testing.assert_frame_equal(from_string, from_datetime)


def test_start_time_of_day_ignored():
    midnight = generate_transactions(**SMALL, start="2020-01-05")
    afternoon = generate_transactions(**SMALL, start="2020-01-05 15:30:00")
    pd.testing.assert_frame_equal(midnight, afternoon)


def test_start_aware_converted_to_utc():
    # 2020-01-05 23:00 at UTC-5 is 2020-01-06 04:00 UTC, so the data starts on 01-06.
    aware = datetime(2020, 1, 5, 23, 0, tzinfo=timezone(timedelta(hours=-5)))
    transactions = generate_transactions(**SMALL, start=aware)
    assert transactions["TX_DATETIME"].min() >= pd.Timestamp("2020-01-06")
    assert transactions["TX_DATETIME"].dt.tz is None


def test_fraud_flag_matches_scenario(medium):
    expected = (medium["TX_FRAUD_SCENARIO"] > 0).astype("int8")
    assert (medium["TX_FRAUD"] == expected).all()
    assert set(medium["TX_FRAUD_SCENARIO"].unique()) <= {0, 1, 2, 3, 4}


def test_fraud_rate_in_band(medium):
    rate = medium["TX_FRAUD"].mean()
    assert 0.004 <= rate <= 0.02, rate


@pytest.mark.parametrize("scenario", [1, 2, 3, 4])
def test_scenario_present(medium, scenario):
    share = (medium["TX_FRAUD_SCENARIO"] == scenario).mean()
    assert 0.0005 <= share <= 0.01, share


def test_amounts_above_threshold_are_fraud(medium):
    large = medium[medium["TX_AMOUNT"] > AMOUNT_FRAUD_THRESHOLD]
    assert len(large) > 0
    assert (large["TX_FRAUD"] == 1).all()


def test_scenario_one_only_above_threshold(medium):
    amount_fraud = medium[medium["TX_FRAUD_SCENARIO"] == 1]
    assert (amount_fraud["TX_AMOUNT"] > AMOUNT_FRAUD_THRESHOLD).all()


def test_compromised_terminal_all_fraud(medium):
    # Compromise windows last 28 days, so fraud spanning less than 28 days at one
    # terminal comes from one window or overlapping ones, and every row between the
    # first and the last fraud is fraud. Scenarios 3 and 4 take precedence over 2.
    terminal_fraud = medium[medium["TX_FRAUD_SCENARIO"] == 2]
    windows = terminal_fraud.groupby("TERMINAL_ID")["TX_DATETIME"].agg(["min", "max"])
    windows = windows[windows["max"] - windows["min"] < pd.Timedelta(days=28)]
    assert len(windows) > 0

    for terminal_id, (first, last) in windows.iterrows():
        at_terminal = medium[medium["TERMINAL_ID"] == terminal_id]
        inside = at_terminal[at_terminal["TX_DATETIME"].between(first, last)]
        assert (inside["TX_FRAUD_SCENARIO"] >= 2).all(), terminal_id


def test_compromised_card_amounts_larger(medium):
    card_fraud = medium[medium["TX_FRAUD_SCENARIO"] == 3]
    genuine = medium[medium["TX_FRAUD_SCENARIO"] == 0]
    assert card_fraud["TX_AMOUNT"].median() > 3 * genuine["TX_AMOUNT"].median()


def test_bursts_are_rapid(medium):
    bursts = medium[medium["TX_FRAUD_SCENARIO"] == 4]
    by_card_day = bursts.groupby(["CUSTOMER_ID", bursts["TX_DATETIME"].dt.floor("D")])
    spans = by_card_day["TX_DATETIME"].agg(lambda times: times.max() - times.min())
    sizes = by_card_day.size()
    assert (sizes >= BURST_MIN_SIZE).all()
    # Groups smaller than two bursts hold exactly one burst.
    single = spans[sizes < 2 * BURST_MIN_SIZE]
    assert len(single) > 0
    assert (single < pd.Timedelta(seconds=BURST_SPAN_SECONDS)).all()


def test_customers_use_nearby_terminals(medium):
    profiles = generate_profiles(
        n_customers=MEDIUM["n_customers"], n_terminals=MEDIUM["n_terminals"], seed=MEDIUM["seed"]
    )
    customer_xy = profiles.customers[["X", "Y"]].to_numpy()
    terminal_xy = profiles.terminals[["X", "Y"]].to_numpy()
    genuine = medium[medium["TX_FRAUD_SCENARIO"] == 0]

    distance = np.linalg.norm(
        customer_xy[genuine["CUSTOMER_ID"]] - terminal_xy[genuine["TERMINAL_ID"]], axis=1
    )
    # Two uniform points on a 100 x 100 grid are about 52 apart on average. This also
    # checks that generate_profiles returns the profiles behind the transactions.
    assert distance.mean() < 10, distance.mean()


def test_few_terminals_fall_back_to_nearest():
    transactions = generate_transactions(n_customers=30, n_terminals=2, days=5)
    assert len(transactions) > 0
    assert transactions["TERMINAL_ID"].isin([0, 1]).all()


def test_time_of_day_peaks_midday(medium):
    hours = medium["TX_DATETIME"].dt.hour
    midday = hours.between(10, 15).mean()
    night = hours.between(0, 5).mean()
    assert midday > 0.4, midday
    assert 0.01 < night < 0.2, night


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("n_customers", 0),
        ("n_customers", -5),
        ("n_terminals", 0),
        ("days", 0),
        ("days", 2.5),
        ("days", True),
        ("seed", -1),
        ("start", "not-a-date"),
    ],
)
def test_invalid_argument_raises(argument, value):
    with pytest.raises(ValueError) as raised:
        generate_transactions(**{**SMALL, argument: value})
    message = str(raised.value)
    assert argument in message
    assert repr(value) in message


def test_write_csv_plain(tmp_path, small):
    path = write_transactions_csv(small, tmp_path / "nested" / "transactions.csv")
    assert path == tmp_path / "nested" / "transactions.csv"

    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    first = lines[1].split(",")
    assert first[1] == small["TX_DATETIME"].iloc[0].strftime("%Y-%m-%d %H:%M:%S")

    back = pd.read_csv(path, parse_dates=["TX_DATETIME"])
    assert len(back) == len(small)
    assert np.array_equal(back["TX_AMOUNT"].to_numpy(), small["TX_AMOUNT"].to_numpy())
    assert (back["TX_DATETIME"].to_numpy() == small["TX_DATETIME"].to_numpy()).all()


def test_write_csv_gzip(tmp_path, small):
    path = write_transactions_csv(small, tmp_path / "transactions.csv.gz")
    with gzip.open(path, "rt") as stream:
        header = stream.readline().strip()
    assert header == ",".join(COLUMNS)


def test_write_csv_gzip_reproducible(tmp_path, small):
    # The gzip header stores the file name, so both writes use the same path.
    path = tmp_path / "transactions.csv.gz"
    first = write_transactions_csv(small, path).read_bytes()
    second = write_transactions_csv(small, path).read_bytes()
    assert first == second


def test_write_csv_without_datetime_raises(tmp_path):
    with pytest.raises(ValueError, match="TX_DATETIME"):
        write_transactions_csv(pd.DataFrame({"A": [1]}), tmp_path / "bad.csv")
