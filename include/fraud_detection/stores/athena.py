"""Athena queries of the aws backend's offline store.

``offline_query_sql`` builds the SQL that reads a feature group's latest, non-deleted records
from its Glue table, and ``AthenaQueryRunner`` runs it with a boto3 Athena client.
``rows_from_result_pages`` and ``frame_from_rows`` convert the result pages to a typed frame.
``AthenaQuery`` is the call signature that ``AthenaQueryRunner`` and the Airflow hook's query
runner share. A failed, cancelled or timed-out query raises ``OfflineQueryError``.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import pandas as pd

from fraud_detection.errors import OfflineQueryError
from fraud_detection.features.spec import PANDAS_TYPES, FeatureGroupSpec
from fraud_detection.stores.aws_records import parse_value

log = logging.getLogger(__name__)


class AthenaQuery(Protocol):
    """Run SQL on Athena and return the result rows, each a dict from column name to text.

    Values are strings as Athena returns them, with ``None`` for NULL. The header row is left out.
    """

    def __call__(self, sql: str, *, database: str, catalog: str, output_location: str) -> list[dict[str, str | None]]:
        ...


def offline_query_sql(
    spec: FeatureGroupSpec, catalog: dict[str, str], *, start: float | None = None, end: float | None = None
) -> str:
    """Return the Athena SQL of the group's latest, non-deleted records with ``start <= event_time < end``.

    Glue stores column names in lower case, so the query uses lower-case names.
    NOTE: the query has no predicate on the year/month/day/hour partitions, so Athena reads
    the whole table. Add one if scan costs matter.
    """
    columns = ", ".join(_quote(feature.name.lower()) for feature in spec.features)
    identifier = _quote(spec.record_identifier.lower())
    event_time = _quote(spec.event_time_feature.lower())
    conditions = []
    for value, operator in ((start, ">="), (end, "<")):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"Invalid time bound {value!r}: give finite seconds since the Unix epoch.")
        conditions.append(f"{event_time} {operator} {float(value)!r}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    table = f"{_quote(catalog['Database'])}.{_quote(catalog['TableName'])}"
    return (
        f"SELECT {columns} FROM (SELECT *, row_number() OVER (PARTITION BY {identifier}, {event_time} "
        f"ORDER BY write_time DESC, api_invocation_time DESC) AS version_rank FROM {table}{where}) AS versions "
        f"WHERE version_rank = 1 AND NOT is_deleted ORDER BY {event_time}, {identifier}"
    )


def frame_from_rows(spec: FeatureGroupSpec, rows: list[dict[str, str | None]]) -> pd.DataFrame:
    """Build a typed frame of the group's features from Athena's text rows."""
    data = {}
    for feature in spec.features:
        column = feature.name.lower()
        values = [parse_value(feature.type, row.get(column, row.get(feature.name))) for row in rows]
        data[feature.name] = pd.Series(values, dtype=PANDAS_TYPES[feature.type])
    return pd.DataFrame(data)


def rows_from_result_pages(pages: Iterable[dict[str, Any]]) -> list[dict[str, str | None]]:
    """Convert GetQueryResults pages of a SELECT to dicts from column name to text.

    Athena returns the header as the first row of the first page, which is left out.
    """
    rows: list[dict[str, str | None]] = []
    columns: list[str] | None = None
    for page in pages:
        result_set = page["ResultSet"]
        page_rows = result_set.get("Rows", [])
        if columns is None:
            columns = [column["Name"] for column in result_set["ResultSetMetadata"]["ColumnInfo"]]
            page_rows = page_rows[1:]
        for row in page_rows:
            rows.append(dict(zip(columns, (datum.get("VarCharValue") for datum in row["Data"]))))
    return rows


class AthenaQueryRunner:
    """Run offline store queries with a boto3 Athena client.

    Wraps ``Athena.Client.start_query_execution``, polls ``get_query_execution`` every
    ``poll_interval_seconds`` and reads the rows with the ``get_query_results`` paginator.
    """

    def __init__(
        self,
        client: Any,
        *,
        workgroup: str = "primary",
        poll_interval_seconds: float = 1.0,
        timeout_seconds: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client = client
        self.workgroup = workgroup
        self.poll_interval_seconds = poll_interval_seconds
        self.timeout_seconds = timeout_seconds
        self._sleep = sleep

    def __call__(self, sql: str, *, database: str, catalog: str, output_location: str) -> list[dict[str, str | None]]:
        execution_id = self.client.start_query_execution(
            QueryString=sql,
            QueryExecutionContext={"Database": database, "Catalog": catalog},
            ResultConfiguration={"OutputLocation": output_location},
            WorkGroup=self.workgroup,
        )["QueryExecutionId"]
        log.info("Started Athena query %s on %s.%s", execution_id, catalog, database)
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            status = self.client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                break
            if state in ("FAILED", "CANCELLED"):
                raise OfflineQueryError(execution_id, state, status.get("StateChangeReason"))
            if time.monotonic() >= deadline:
                raise OfflineQueryError(execution_id, state, f"still {state} after {self.timeout_seconds} s")
            self._sleep(self.poll_interval_seconds)
        pages = self.client.get_paginator("get_query_results").paginate(QueryExecutionId=execution_id)
        return rows_from_result_pages(pages)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
