"""The local online store: one SQLite table per feature group, keyed by record identifier.

SQLite runs in WAL mode so the endpoint can read while an ingest or the streaming processor
writes. Each thread gets its own connection. This is a store for one machine: it is not
shared across hosts and has no replication.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from fraud_detection.features.spec import SQLITE_TYPES, FeatureGroupSpec

log = logging.getLogger(__name__)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class LocalOnlineStore:
    """Latest record per record identifier for each feature group, in a SQLite file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._select_cache: dict[str, str] = {}

    def connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def create_table(self, spec: FeatureGroupSpec) -> None:
        columns = []
        for feature in spec.features:
            column = f"{_quote(feature.name)} {SQLITE_TYPES[feature.type]}"
            if feature.name == spec.record_identifier:
                column += " PRIMARY KEY"
            columns.append(column)
        columns.append('"write_time" REAL NOT NULL')
        self.connection().execute(f"CREATE TABLE IF NOT EXISTS {_quote(spec.name)} ({', '.join(columns)})")

    def drop_table(self, name: str) -> None:
        self.connection().execute(f"DROP TABLE IF EXISTS {_quote(name)}")
        self._select_cache.pop(name, None)

    def put(self, spec: FeatureGroupSpec, frame: pd.DataFrame, write_time: float) -> int:
        """Upsert typed rows, skipping any row older than the stored record for its identifier."""
        names = spec.feature_names
        table = _quote(spec.name)
        event_time = _quote(spec.event_time_feature)
        assignments = ", ".join(f"{_quote(n)} = excluded.{_quote(n)}" for n in names if n != spec.record_identifier)
        sql = (
            f"INSERT INTO {table} ({', '.join(map(_quote, names))}, \"write_time\") "
            f"VALUES ({', '.join('?' * (len(names) + 1))}) "
            f"ON CONFLICT({_quote(spec.record_identifier)}) DO UPDATE SET {assignments}, "
            f'"write_time" = excluded."write_time" '
            f"WHERE excluded.{event_time} >= {table}.{event_time}"
        )
        rows = _rows(frame[names], write_time)
        connection = self.connection()
        before = connection.total_changes
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(sql, rows)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return connection.total_changes - before

    def get(self, spec: FeatureGroupSpec, identifiers: Iterable[Any], as_of: float) -> dict[Any, dict[str, Any]]:
        """Return current records by identifier, leaving out expired ones."""
        identifiers = list(dict.fromkeys(identifiers))
        if not identifiers:
            return {}
        sql = self._select_cache.get(spec.name)
        if sql is None:
            columns = ", ".join(map(_quote, spec.feature_names))
            sql = f"SELECT {columns} FROM {_quote(spec.name)} WHERE {_quote(spec.record_identifier)} IN "
            self._select_cache[spec.name] = sql
        cursor = self.connection().execute(sql + f"({', '.join('?' * len(identifiers))})", identifiers)
        names = spec.feature_names
        event_index = names.index(spec.event_time_feature)
        id_index = names.index(spec.record_identifier)
        ttl = spec.ttl.total_seconds() if spec.ttl is not None else None
        records = {}
        for row in cursor:
            if ttl is not None and as_of >= row[event_index] + ttl:
                continue
            records[row[id_index]] = dict(zip(names, row))
        return records

    def delete(self, spec: FeatureGroupSpec, identifier: Any, event_time: float) -> int:
        """Delete the record unless the stored one is newer than ``event_time``."""
        cursor = self.connection().execute(
            f"DELETE FROM {_quote(spec.name)} WHERE {_quote(spec.record_identifier)} = ? "
            f"AND {_quote(spec.event_time_feature)} <= ?",
            (identifier, event_time),
        )
        return cursor.rowcount

    def count(self, name: str) -> int:
        return self.connection().execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()[0]


def _rows(frame: pd.DataFrame, write_time: float) -> list[tuple]:
    """Convert a typed frame to SQLite rows of Python values, with missing values as NULL."""
    # na_value also replaces NaN in float columns, so every missing value becomes None.
    columns = [frame[name].to_numpy(dtype=object, na_value=None).tolist() for name in frame.columns]
    columns.append([write_time] * len(frame))
    return list(zip(*columns))
