"""The source datastore: raw card transactions in an embedded DuckDB file.

Loading a CSV checks every row. Malformed rows go to a quarantine CSV with the reason, the
good rows are loaded, and a transaction already in the datastore is never loaded twice, so a
rerun of the same file is a no-op. Only the columns of :data:`SOURCE_COLUMNS` are read:
extra columns such as ``TX_FRAUD_SCENARIO`` never enter the datastore.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

import duckdb

from fraud_detection.errors import SourceDataError

log = logging.getLogger(__name__)

SOURCE_COLUMNS = ["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD"]
DEFAULT_MAX_REJECTED_RATIO = 0.05

TABLE_DDL = """
CREATE TABLE IF NOT EXISTS transactions (
    transaction_id BIGINT NOT NULL,
    tx_datetime TIMESTAMP NOT NULL,
    customer_id BIGINT NOT NULL,
    terminal_id BIGINT NOT NULL,
    tx_amount DOUBLE NOT NULL,
    tx_amount_cents BIGINT NOT NULL,
    tx_fraud TINYINT NOT NULL
)
"""

def _whole_number(column: str) -> str:
    # TRY_CAST('13.6' AS BIGINT) rounds to 14, so only plain digits are cast.
    return f"CASE WHEN regexp_full_match(trim({column}), '[+-]?[0-9]+') THEN TRY_CAST(trim({column}) AS BIGINT) END"


_TIMESTAMP_FORMATS = "['%Y-%m-%d %H:%M:%S', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%d %H:%M:%S.%f']"

_TYPED_SQL = f"""
CREATE TEMP TABLE typed AS
SELECT
    -- NOTE: DuckDB keeps the file's row order by default (preserve_insertion_order), which
    -- line numbers rely on. The + 1 accounts for the header line, and the count for the lines
    -- the parser could not split that come before the row.
    row_index + 1 + (SELECT count(*) FROM unsplit WHERE unsplit.rows_before < row_index) AS line_number,
    raw.*,
    {_whole_number("TRANSACTION_ID")} AS parsed_transaction_id,
    TRY_STRPTIME(TX_DATETIME, {_TIMESTAMP_FORMATS}) AS parsed_tx_datetime,
    {_whole_number("CUSTOMER_ID")} AS parsed_customer_id,
    {_whole_number("TERMINAL_ID")} AS parsed_terminal_id,
    TRY_CAST(TX_AMOUNT AS DOUBLE) AS parsed_tx_amount,
    {_whole_number("TX_FRAUD")} AS parsed_tx_fraud
FROM (SELECT row_number() OVER () AS row_index, * FROM raw) AS raw
"""

# Lines the CSV parser could not split into the header's fields, as DuckDB's store_rejects
# recorded them. rows_before is the number of parsed rows before each such line.
_UNSPLIT_SQL = """
CREATE TEMP TABLE unsplit AS
SELECT
    line AS line_number,
    line - row_number() OVER (ORDER BY line) - 1 AS rows_before,
    'line not split into the header''s fields (' || error_message || '): ' || csv_line AS reject_reason
FROM reject_errors
"""

# One reason per malformed row: the first rule the row breaks.
_REASON_SQL = """
CREATE TEMP TABLE checked AS
WITH reasons AS (
    SELECT *,
        CASE
            WHEN TX_FRAUD IS NULL AND TX_AMOUNT IS NULL THEN 'TX_AMOUNT and TX_FRAUD: missing; the row may have fewer fields than the header'
            WHEN parsed_transaction_id IS NULL THEN 'TRANSACTION_ID: missing or not an integer'
            WHEN parsed_tx_datetime IS NULL THEN 'TX_DATETIME: missing or not a timestamp like 2018-04-01 00:00:31'
            WHEN parsed_customer_id IS NULL OR parsed_customer_id < 0 THEN 'CUSTOMER_ID: missing or not a non-negative integer'
            WHEN parsed_terminal_id IS NULL OR parsed_terminal_id < 0 THEN 'TERMINAL_ID: missing or not a non-negative integer'
            WHEN parsed_tx_amount IS NULL OR NOT isfinite(parsed_tx_amount) OR parsed_tx_amount < 0
                THEN 'TX_AMOUNT: missing, negative or not a number'
            WHEN parsed_tx_fraud IS NULL OR parsed_tx_fraud NOT IN (0, 1) THEN 'TX_FRAUD: missing or not 0 or 1'
        END AS row_reason
    FROM typed
)
SELECT *,
    CASE
        WHEN row_reason IS NOT NULL THEN row_reason
        -- Only valid rows count as the first occurrence of an id.
        WHEN row_number() OVER (PARTITION BY parsed_transaction_id, row_reason IS NULL ORDER BY line_number) > 1
            THEN 'TRANSACTION_ID: duplicate of an earlier line of this file'
    END AS reject_reason
FROM reasons
"""


# A transaction id already stored with other values is a conflict, not a repeat of the row.
_CONFLICT_SQL = """
UPDATE checked SET reject_reason = 'TRANSACTION_ID: already in the datastore with different values'
FROM transactions t
WHERE checked.reject_reason IS NULL
  AND t.transaction_id = checked.parsed_transaction_id
  AND (t.tx_datetime <> checked.parsed_tx_datetime OR t.customer_id <> checked.parsed_customer_id
       OR t.terminal_id <> checked.parsed_terminal_id OR t.tx_amount <> checked.parsed_tx_amount
       OR t.tx_fraud <> checked.parsed_tx_fraud)
"""


@dataclass(frozen=True)
class LoadResult:
    """Counts of one CSV load and the time span of the whole datastore afterwards."""

    path: str
    rows_read: int
    rows_loaded: int
    rows_already_present: int
    rows_quarantined: int
    quarantine_path: str | None
    first_transaction: datetime | None
    last_transaction: datetime | None


@contextmanager
def connect(database: Path, *, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the datastore. A writer must be alone, while readers may be many."""
    database = Path(database)
    if read_only and not database.exists():
        raise SourceDataError(
            f"Source datastore {database} not found. Load transactions first with `fraud-detection run [FILE]`."
        )
    database.parent.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect(str(database), read_only=read_only)
    try:
        yield connection
    finally:
        connection.close()


def load_transactions_csv(
    csv_path: Path,
    database: Path,
    quarantine_root: Path,
    *,
    max_rejected_ratio: float = DEFAULT_MAX_REJECTED_RATIO,
) -> LoadResult:
    """Load a transactions CSV, optionally gzipped, into the datastore as the module docstring describes."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise SourceDataError(f"Transactions file {csv_path} not found. Pass the path of a CSV or CSV.GZ file.")
    with connect(database, read_only=False) as connection:
        connection.execute(TABLE_DDL)
        _read_raw(connection, csv_path)
        connection.execute(_TYPED_SQL)
        connection.execute(_REASON_SQL)
        connection.execute(_CONFLICT_SQL)
        unsplit = connection.execute("SELECT count(*) FROM unsplit").fetchone()[0]
        rows_read = connection.execute("SELECT count(*) FROM checked").fetchone()[0] + unsplit
        rejected = connection.execute("SELECT count(*) FROM checked WHERE reject_reason IS NOT NULL").fetchone()[0] + unsplit
        quarantine_path = _write_quarantine(connection, csv_path, quarantine_root) if rejected else None
        before = connection.execute("SELECT count(*) FROM transactions").fetchone()[0]
        connection.execute(
            """
            INSERT INTO transactions
            SELECT c.parsed_transaction_id, c.parsed_tx_datetime, c.parsed_customer_id, c.parsed_terminal_id,
                   c.parsed_tx_amount, CAST(round(c.parsed_tx_amount * 100) AS BIGINT), c.parsed_tx_fraud
            FROM checked c
            ANTI JOIN transactions t ON t.transaction_id = c.parsed_transaction_id
            WHERE c.reject_reason IS NULL
            ORDER BY c.parsed_tx_datetime, c.parsed_transaction_id
            """
        )
        loaded = connection.execute("SELECT count(*) FROM transactions").fetchone()[0] - before
        first, last = connection.execute("SELECT min(tx_datetime), max(tx_datetime) FROM transactions").fetchone()
    result = LoadResult(
        path=str(csv_path),
        rows_read=rows_read,
        rows_loaded=loaded,
        rows_already_present=rows_read - rejected - loaded,
        rows_quarantined=rejected,
        quarantine_path=str(quarantine_path) if quarantine_path else None,
        first_transaction=first,
        last_transaction=last,
    )
    log.info(
        "Loaded %d transactions from %s (%d already present, %d quarantined)",
        loaded, csv_path, result.rows_already_present, rejected,
    )
    if rows_read and rejected / rows_read > max_rejected_ratio:
        raise SourceDataError(
            f"{rejected} of {rows_read} rows of {csv_path} are malformed or conflict with stored transactions, more than the allowed "
            f"{max_rejected_ratio:.1%}. The good rows were loaded; the bad ones, each with its reason, "
            f"are in {quarantine_path}. Fix them and load the file again. If the datastore contains another "
            "data set with the same transaction ids, start from a new state folder (--home or HOME_DIR)."
        )
    return result


def _read_raw(connection: duckdb.DuckDBPyConnection, csv_path: Path) -> None:
    escaped = str(csv_path).replace("'", "''")
    try:
        connection.execute(
            f"CREATE TEMP TABLE raw AS SELECT * FROM read_csv('{escaped}', header = true, "
            "all_varchar = true, auto_detect = true, null_padding = true, store_rejects = true)"
        )
        connection.execute(_UNSPLIT_SQL)
    except duckdb.Error as error:
        # DuckDB's first lines name the line and the problem. The rest lists its parser settings.
        summary = " ".join(line.strip() for line in str(error).splitlines()[:3] if line.strip())
        raise SourceDataError(
            f"Could not read {csv_path} as CSV: {summary}. Pass a CSV or gzipped CSV file with a header line. "
            "Single malformed lines do not stop a load, because they are quarantined."
        ) from error
    columns = [row[0] for row in connection.execute("DESCRIBE raw").fetchall()]
    missing = [c for c in SOURCE_COLUMNS if c not in columns]
    if missing:
        raise SourceDataError(
            f"{csv_path} lacks the columns {missing}. A transactions file needs the header "
            f"{','.join(SOURCE_COLUMNS)} (extra columns are ignored)."
        )
    extra = [c for c in columns if c not in SOURCE_COLUMNS]
    if extra:
        log.info("Ignoring columns %s of %s", extra, csv_path)
        connection.execute(f"ALTER TABLE raw RENAME TO raw_all")
        connection.execute(f"CREATE TEMP TABLE raw AS SELECT {', '.join(SOURCE_COLUMNS)} FROM raw_all")


def _write_quarantine(connection: duckdb.DuckDBPyConnection, csv_path: Path, quarantine_root: Path) -> Path:
    folder = Path(quarantine_root) / "source"
    folder.mkdir(parents=True, exist_ok=True)
    name = csv_path.name.removesuffix(".gz").removesuffix(".csv")
    target = folder / f"{name}-{datetime.now():%Y%m%dT%H%M%S%f}.csv"
    escaped = str(target).replace("'", "''")
    columns = ", ".join(["line_number", *SOURCE_COLUMNS, "reject_reason"])
    unsplit_columns = ", ".join(["line_number", *(f"NULL AS {name}" for name in SOURCE_COLUMNS), "reject_reason"])
    connection.execute(
        f"COPY (SELECT {columns} FROM checked WHERE reject_reason IS NOT NULL "
        f"UNION ALL SELECT {unsplit_columns} FROM unsplit ORDER BY line_number) "
        f"TO '{escaped}' (HEADER, DELIMITER ',')"
    )
    log.warning("Quarantined malformed rows of %s to %s", csv_path, target)
    return target


def transaction_time_range(database: Path) -> tuple[datetime, datetime]:
    """Return the first and last transaction times in the datastore."""
    with connect(database) as connection:
        first, last = connection.execute("SELECT min(tx_datetime), max(tx_datetime) FROM transactions").fetchone()
    if first is None:
        raise SourceDataError(f"Source datastore {database} holds no transactions. Load a file first.")
    return first, last


def week_boundaries(first: datetime, last: datetime) -> list[datetime]:
    """Return the Monday 00:00 week ends whose week contains at least one of the given times."""
    start = datetime(first.year, first.month, first.day) - timedelta(days=first.weekday())
    boundaries = []
    boundary = start + timedelta(days=7)
    while boundary - timedelta(days=7) <= last:
        boundaries.append(boundary)
        boundary += timedelta(days=7)
    return boundaries
