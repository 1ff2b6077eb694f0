"""The local offline store: Parquet files laid out like SageMaker's offline store.

Files live under ``<root>/<group name>-<creation time>/data/year=YYYY/month=MM/day=DD/hour=HH/``,
partitioned by the hour of the record's event time, as SageMaker writes them to S3. Each row
carries SageMaker's ``write_time``, ``api_invocation_time`` and ``is_deleted`` columns, so one
DuckDB query reads either store's files. Files are written to a temporary name and renamed,
so readers never see a partial file.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fraud_detection.features.spec import DUCKDB_TYPES, FeatureGroupSpec

log = logging.getLogger(__name__)

TEMPORARY_SUFFIX = ".inprogress"
# SageMaker's columns on every offline row, with their DuckDB types.
VERSION_COLUMNS = {"write_time": "TIMESTAMP WITH TIME ZONE", "api_invocation_time": "TIMESTAMP WITH TIME ZONE", "is_deleted": "BOOLEAN"}


class LocalOfflineStore:
    """Append-only Parquet history of each feature group, with idempotent named ingests."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def data_root(self, resolved_location: str) -> Path:
        return Path(resolved_location) / "data"

    def new_location(self, spec: FeatureGroupSpec, created: datetime) -> str:
        """Return an unused folder named, as in SageMaker, by the group and its creation time."""
        stamp = int(created.timestamp())
        # A group deleted and created again within a second must not inherit the old files.
        while (self.root / f"{spec.name}-{stamp}").exists():
            stamp += 1
        return str(self.root / f"{spec.name}-{stamp}")

    def write(
        self,
        spec: FeatureGroupSpec,
        location: str,
        frame: pd.DataFrame,
        *,
        ingest_id: str | None,
        write_time: datetime,
        is_deleted: bool = False,
    ) -> list[str]:
        """Write typed rows to their event-time partitions and return the files written.

        With an ``ingest_id``, files from an earlier ingest under the same id are replaced,
        including those in partitions this ingest no longer touches.
        """
        data_root = self.data_root(location)
        file_name = f"{ingest_id or uuid.uuid4().hex}.parquet"
        table = frame.copy()
        table["write_time"] = pd.Timestamp(write_time).as_unit("us")
        table["api_invocation_time"] = pd.Timestamp(write_time).as_unit("us")
        table["is_deleted"] = is_deleted
        # Format each distinct hour once: a weekly ingest has a single event time.
        hours = (table[spec.event_time_feature].to_numpy(dtype="float64") // 3600).astype("int64")
        distinct, positions = np.unique(hours, return_inverse=True)
        names = pd.to_datetime(distinct * 3600, unit="s", utc=True).strftime("year=%Y/month=%m/day=%d/hour=%H")
        partitions = pd.Series(np.asarray(names)[positions], index=table.index)
        written = []
        for partition, rows in table.groupby(partitions, sort=True):
            target = data_root / partition / file_name
            _write_atomically(rows.reset_index(drop=True), target)
            written.append(str(target))
        if ingest_id is not None:
            keep = set(written)
            for stale in data_root.glob(f"year=*/month=*/day=*/hour=*/{file_name}"):
                if str(stale) not in keep:
                    stale.unlink()
                    log.info("Removed %s, written by an earlier run of ingest %s", stale, ingest_id)
            # Temporary files of an earlier run of this ingest that was killed mid-write.
            for leftover in data_root.glob(f"year=*/month=*/day=*/hour=*/.{file_name}.*{TEMPORARY_SUFFIX}"):
                leftover.unlink(missing_ok=True)
        return written

    def files(self, location: str) -> list[Path]:
        return sorted(self.data_root(location).glob("year=*/month=*/day=*/hour=*/*.parquet"))

    def table_sql(self, spec: FeatureGroupSpec, location: str, *, all_versions: bool = False) -> str:
        """Return a DuckDB subquery of the latest, non-deleted version of each record.

        With ``all_versions``, every stored row with its ``write_time``, ``api_invocation_time``
        and ``is_deleted`` columns instead.
        """
        pattern = str(self.data_root(location) / "year=*/month=*/day=*/hour=*/*.parquet")
        names = [*spec.feature_names, *VERSION_COLUMNS] if all_versions else spec.feature_names
        columns = ", ".join(f'"{name}"' for name in names)
        if not self.files(location):
            types = {f.name: DUCKDB_TYPES[f.type] for f in spec.features} | VERSION_COLUMNS
            empty = ", ".join(f'CAST(NULL AS {types[name]}) AS "{name}"' for name in names)
            return f"(SELECT {empty} WHERE false)"
        escaped = pattern.replace("'", "''")
        files = f"read_parquet('{escaped}', hive_partitioning = false, union_by_name = true)"
        if all_versions:
            return f"(SELECT {columns} FROM {files})"
        return (
            f"(SELECT {columns} FROM (SELECT *, row_number() OVER ("
            f'PARTITION BY "{spec.record_identifier}", "{spec.event_time_feature}" '
            f"ORDER BY write_time DESC, api_invocation_time DESC) AS version_rank "
            f"FROM {files}) WHERE version_rank = 1 AND NOT is_deleted)"
        )


def _write_atomically(frame: pd.DataFrame, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}{TEMPORARY_SUFFIX}")
    try:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
