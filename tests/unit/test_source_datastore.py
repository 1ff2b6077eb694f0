"""Unit tests for the source datastore: CSV loading, quarantine and week boundaries."""

from __future__ import annotations

import csv
import gzip
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from fraud_detection.data.source import (
    SOURCE_COLUMNS,
    connect,
    load_transactions_csv,
    transaction_time_range,
    week_boundaries,
)
from fraud_detection.errors import SourceDataError

HEADER = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD,TX_FRAUD_SCENARIO"

# The header is line 1, so the first data row is line 2.
GOOD_ROWS = [
    "0,2018-04-02 00:00:31,1,10,12.34,0,0",
    "1,2018-04-02 01:00:00,2,11,4.35,1,1",
    "2,2018-04-03T08:15:00,3,12,100,0,0",
    "3,2018-04-09 23:59:59,4,13,0,1,2",
]
BAD_ROWS = {
    "x7,2018-04-02 02:00:00,3,12,5.00,0,0": "TRANSACTION_ID: missing or not an integer",
    "8,2018-13-02 02:00:00,3,12,5.00,0,0": "TX_DATETIME: missing or not a timestamp",
    "9,2018-04-02 03:00:00,3,12,-1.00,0,0": "TX_AMOUNT: missing, negative or not a number",
    "10,2018-04-02 04:00:00,3,12,5.00,2,0": "TX_FRAUD: missing or not 0 or 1",
    "1,2018-04-02 05:00:00,3,12,5.00,0,0": "TRANSACTION_ID: duplicate of an earlier line of this file",
    "12,,3,12,5.00,0,0": "TX_DATETIME: missing or not a timestamp",
    "13,2018-04-02 06:00:00,,12,5.00,0,0": "CUSTOMER_ID: missing or not a non-negative integer",
    "14,2018-04-02 06:00:00,3,,5.00,0,0": "TERMINAL_ID: missing or not a non-negative integer",
    "15,2018-04-02 06:00:00,3,12,,0,0": "TX_AMOUNT: missing, negative or not a number",
    "16,2018-04-02 06:00:00,3,12,5.00,,0": "TX_FRAUD: missing or not 0 or 1",
}
GOOD_IDS = [0, 1, 2, 3]


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    text = "\n".join([header, *rows]) + "\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def read_quarantine(path: str) -> dict[int, dict[str, str]]:
    with open(path, newline="") as handle:
        return {int(row["line_number"]): row for row in csv.DictReader(handle)}


def loaded_ids(database: Path) -> list[int]:
    with connect(database) as connection:
        return [row[0] for row in connection.execute("SELECT transaction_id FROM transactions ORDER BY 1").fetchall()]


@pytest.fixture(scope="module", params=["transactions.csv", "transactions.csv.gz"])
def mixed_load(request, tmp_path_factory):
    """Load one file of good and malformed rows, plain or gzipped."""
    folder = tmp_path_factory.mktemp("mixed")
    csv_path = write_csv(folder / request.param, [*GOOD_ROWS, *BAD_ROWS])
    database = folder / "source.duckdb"
    result = load_transactions_csv(csv_path, database, folder / "quarantine", max_rejected_ratio=1.0)
    return result, database


# Loading


def test_load_good_rows(mixed_load):
    result, database = mixed_load

    assert loaded_ids(database) == GOOD_IDS
    assert result.rows_loaded == len(GOOD_IDS)


def test_load_counts_rows(mixed_load):
    result, _ = mixed_load

    assert result.rows_read == len(GOOD_ROWS) + len(BAD_ROWS)
    assert result.rows_quarantined == len(BAD_ROWS)
    assert result.rows_already_present == 0


def test_load_reports_time_span(mixed_load):
    result, _ = mixed_load

    assert result.first_transaction == datetime(2018, 4, 2, 0, 0, 31)
    assert result.last_transaction == datetime(2018, 4, 9, 23, 59, 59)


def test_extra_column_not_stored(mixed_load):
    _, database = mixed_load

    with connect(database) as connection:
        columns = [row[0] for row in connection.execute("DESCRIBE transactions").fetchall()]

    assert not any("scenario" in column.lower() for column in columns)


@pytest.mark.parametrize(
    ("line_number", "reason"),
    [(line, reason) for line, reason in enumerate(BAD_ROWS.values(), start=len(GOOD_ROWS) + 2)],
)
def test_bad_row_quarantined(mixed_load, line_number, reason):
    result, _ = mixed_load

    quarantined = read_quarantine(result.quarantine_path)

    assert quarantined[line_number]["reject_reason"].startswith(reason)


def test_quarantine_keeps_raw_values(mixed_load):
    result, _ = mixed_load
    first_bad_line = len(GOOD_ROWS) + 2

    row = read_quarantine(result.quarantine_path)[first_bad_line]

    assert [row[column] for column in SOURCE_COLUMNS] == ["x7", "2018-04-02 02:00:00", "3", "12", "5.00", "0"]


def test_quarantine_holds_only_bad_rows(mixed_load):
    result, _ = mixed_load

    quarantined = read_quarantine(result.quarantine_path)

    assert len(quarantined) == len(BAD_ROWS)


def test_amount_cents_rounded(tmp_path):
    # 4.35 * 100 is 434.99999999999994 in binary floating point, so truncation would give 434.
    csv_path = write_csv(tmp_path / "tx.csv", GOOD_ROWS)
    database = tmp_path / "source.duckdb"
    load_transactions_csv(csv_path, database, tmp_path / "quarantine")

    with connect(database) as connection:
        cents = dict(connection.execute("SELECT transaction_id, tx_amount_cents FROM transactions").fetchall())

    assert cents == {0: 1234, 1: 435, 2: 10000, 3: 0}


def test_load_twice_idempotent(tmp_path):
    csv_path = write_csv(tmp_path / "tx.csv", GOOD_ROWS)
    database = tmp_path / "source.duckdb"
    load_transactions_csv(csv_path, database, tmp_path / "quarantine")

    second = load_transactions_csv(csv_path, database, tmp_path / "quarantine")

    assert second.rows_loaded == 0
    assert second.rows_already_present == len(GOOD_ROWS)
    assert loaded_ids(database) == GOOD_IDS


def test_overlapping_file_loads_new_rows(tmp_path):
    database = tmp_path / "source.duckdb"
    load_transactions_csv(write_csv(tmp_path / "first.csv", GOOD_ROWS[:2]), database, tmp_path / "quarantine")

    second = load_transactions_csv(write_csv(tmp_path / "second.csv", GOOD_ROWS), database, tmp_path / "quarantine")

    assert second.rows_loaded == 2
    assert second.rows_already_present == 2


def test_missing_column_raises(tmp_path):
    header = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_FRAUD"
    csv_path = write_csv(tmp_path / "tx.csv", ["0,2018-04-02 00:00:31,1,10,0"], header=header)

    with pytest.raises(SourceDataError, match=r"lacks the columns \['TX_AMOUNT'\]"):
        load_transactions_csv(csv_path, tmp_path / "source.duckdb", tmp_path / "quarantine")


def test_unsplittable_line_quarantined_with_line(tmp_path):
    # Past DuckDB's sniffing sample, so the parser meets the extra fields only while reading.
    rows = [f"{index},2018-04-02 00:00:31,1,10,5.00,0,0" for index in range(25_000)]
    unsplittable = "99999,2018-04-02 00:00:32,1,10,5.00,0,0,extra"
    after = ["99998,2018-04-02 00:00:33,1,10,-5.00,0,0", "99997,2018-04-02 00:00:34,1,10,5.00,0,0"]
    csv_path = write_csv(tmp_path / "tx.csv", [*rows, unsplittable, *after])

    result = load_transactions_csv(csv_path, tmp_path / "source.duckdb", tmp_path / "quarantine")

    assert result.rows_read == 25_003
    assert result.rows_loaded == 25_001
    with open(result.quarantine_path, newline="") as handle:
        quarantined = list(csv.DictReader(handle))
    assert [row["line_number"] for row in quarantined] == ["25002", "25003"]
    assert quarantined[0]["reject_reason"].startswith("line not split into the header's fields")
    assert quarantined[0]["reject_reason"].endswith(unsplittable)
    assert quarantined[1]["reject_reason"].startswith("TX_AMOUNT")


def test_missing_file_raises(tmp_path):
    with pytest.raises(SourceDataError, match="absent.csv not found"):
        load_transactions_csv(tmp_path / "absent.csv", tmp_path / "source.duckdb", tmp_path / "quarantine")


def test_bad_ratio_raises_naming_quarantine(tmp_path):
    csv_path = write_csv(tmp_path / "tx.csv", [*GOOD_ROWS, *list(BAD_ROWS)[:2]])
    quarantine_root = tmp_path / "quarantine"

    with pytest.raises(SourceDataError, match="2 of 6 rows") as raised:
        load_transactions_csv(csv_path, tmp_path / "source.duckdb", quarantine_root, max_rejected_ratio=0.1)

    quarantine_files = list((quarantine_root / "source").glob("*.csv"))
    assert len(quarantine_files) == 1
    assert str(quarantine_files[0]) in str(raised.value)


def test_bad_ratio_still_loads_good_rows(tmp_path):
    csv_path = write_csv(tmp_path / "tx.csv", [*GOOD_ROWS, *list(BAD_ROWS)[:2]])
    database = tmp_path / "source.duckdb"

    with pytest.raises(SourceDataError):
        load_transactions_csv(csv_path, database, tmp_path / "quarantine", max_rejected_ratio=0.1)

    assert loaded_ids(database) == GOOD_IDS


def test_ratio_at_limit_passes(tmp_path):
    csv_path = write_csv(tmp_path / "tx.csv", [*GOOD_ROWS, *list(BAD_ROWS)[:1]])

    result = load_transactions_csv(csv_path, tmp_path / "source.duckdb", tmp_path / "quarantine", max_rejected_ratio=0.2)

    assert result.rows_quarantined == 1


@pytest.mark.parametrize(
    "row",
    ["13.6,2018-04-02 06:00:00,3,12,5.00,0,0", "17,2018-04-02 06:00:00,3.7,12,5.00,0,0", "18,2018-04-02 06:00:00,3,12,5.00,0.6,0"],
    ids=["transaction-id", "customer-id", "tx-fraud"],
)
def test_fractional_integer_quarantined(tmp_path, row):
    csv_path = write_csv(tmp_path / "tx.csv", [row])

    result = load_transactions_csv(csv_path, tmp_path / "source.duckdb", tmp_path / "quarantine", max_rejected_ratio=1.0)

    assert result.rows_quarantined == 1


def test_time_range_of_empty_store_raises(tmp_path):
    database = tmp_path / "source.duckdb"
    load_transactions_csv(write_csv(tmp_path / "tx.csv", []), database, tmp_path / "quarantine")

    with pytest.raises(SourceDataError, match="holds no transactions"):
        transaction_time_range(database)


# Week boundaries


def test_weeks_cover_span():
    first, last = datetime(2018, 4, 4, 12, 30), datetime(2018, 4, 16, 0, 0)

    boundaries = week_boundaries(first, last)

    assert boundaries == [datetime(2018, 4, 9), datetime(2018, 4, 16), datetime(2018, 4, 23)]


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (datetime(2018, 4, 1, 23, 59), datetime(2018, 4, 1, 23, 59)),
        (datetime(2018, 4, 2), datetime(2018, 6, 30, 18)),
        (datetime(2018, 4, 8, 0, 0, 1), datetime(2018, 9, 3)),
    ],
    ids=["sunday-only", "monday-start", "year-span"],
)
def test_weeks_are_mondays_covering_span(first, last):
    boundaries = week_boundaries(first, last)

    assert all(b.weekday() == 0 and b.time() == datetime.min.time() for b in boundaries)
    assert all(later - earlier == timedelta(days=7) for earlier, later in zip(boundaries, boundaries[1:]))
    assert boundaries[0] - timedelta(days=7) <= first < boundaries[0]
    assert boundaries[-1] - timedelta(days=7) <= last < boundaries[-1]


def test_conflicting_transaction_id_quarantined(tmp_path):
    database = tmp_path / "source.duckdb"
    first = write_csv(tmp_path / "first.csv", ["1,2018-04-02 06:00:00,3,12,5.00,0,0"])
    second = write_csv(tmp_path / "second.csv", ["1,2018-04-03 07:00:00,4,13,9.00,0,0"])
    load_transactions_csv(first, database, tmp_path / "quarantine")

    result = load_transactions_csv(second, database, tmp_path / "quarantine", max_rejected_ratio=1.0)

    assert result.rows_quarantined == 1
    assert result.rows_already_present == 0
    assert "different values" in Path(result.quarantine_path).read_text()
