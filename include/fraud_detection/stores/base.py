"""The feature store interface that every backend implements.

Contract shared by the backends:

- ``create_feature_group`` is idempotent: an existing group with the same definition is
  returned as it is; a different definition raises ``FeatureGroupDefinitionMismatchError``.
- ``ingest`` writes a DataFrame whose columns are the group's features. Rows with a missing
  record identifier or event time, or a value that does not convert to the feature's type,
  are quarantined with a reason per row, and the good rows are written.
- In the online store a record with an older event time never replaces a newer one, and a
  read at time ``as_of`` never returns a record whose TTL has run out by then.
- ``get_records`` returns, per feature group, a dict from record identifier to record for
  the identifiers found; missing and expired records are absent from the dict.
- ``read_offline`` returns one row per (record identifier, event time), the latest write
  winning, with deleted records left out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fraud_detection.features.spec import FeatureGroupSpec

from fraud_detection.ingest_targets import TARGET_STORES, check_target_stores


@dataclass
class IngestResult:
    """Counts of an ingest; ``quarantine_path`` is set when rows were rejected."""

    feature_group_name: str
    records_written: int
    records_rejected: int
    quarantine_path: Path | None = None
    target_stores: tuple[str, ...] = TARGET_STORES
    offline_files: list[str] = field(default_factory=list)

    @property
    def rejected_ratio(self) -> float:
        total = self.records_written + self.records_rejected
        return self.records_rejected / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature_group_name": self.feature_group_name,
            "records_written": self.records_written,
            "records_rejected": self.records_rejected,
            "quarantine_path": str(self.quarantine_path) if self.quarantine_path else None,
            "target_stores": list(self.target_stores),
            "offline_files": self.offline_files,
        }


class FeatureStore(ABC):
    """Feature groups with an online store for lookups and an offline store for history."""

    @abstractmethod
    def create_feature_group(self, spec: FeatureGroupSpec) -> dict[str, Any]:
        """Create the group if it is absent and return its description once it is ``Created``."""

    @abstractmethod
    def describe_feature_group(self, name: str) -> dict[str, Any]:
        """Return the group's description; raise ``FeatureGroupNotFoundError`` if absent."""

    @abstractmethod
    def delete_feature_group(self, name: str) -> None:
        """Delete the group and its online records; the offline store's files are kept."""

    @abstractmethod
    def ingest(
        self,
        name: str,
        frame: pd.DataFrame,
        *,
        ingest_id: str | None = None,
        target_stores: tuple[str, ...] = TARGET_STORES,
    ) -> IngestResult:
        """Write the rows of ``frame`` to the group's stores.

        ``ingest_id`` makes a rerun idempotent: writing the same ``ingest_id`` again replaces
        the offline data written under it instead of adding to it.
        """

    @abstractmethod
    def get_records(
        self, requests: dict[str, list[Any]], *, as_of: float | None = None
    ) -> dict[str, dict[Any, dict[str, Any]]]:
        """Read online records of several groups; ``as_of`` is epoch seconds (default: now)."""

    @abstractmethod
    def delete_record(self, name: str, record_identifier: Any, event_time: float) -> None:
        """Delete a record from the online store and mark it deleted in the offline store."""

    @abstractmethod
    def read_offline(
        self, name: str, *, start: float | None = None, end: float | None = None
    ) -> pd.DataFrame:
        """Return offline records with ``start <= event_time < end`` (epoch seconds)."""

    @abstractmethod
    def offline_table_sql(self, name: str, *, all_versions: bool = False) -> str:
        """Return a DuckDB table expression over the group's offline records.

        By default each record (record identifier and event time) appears once, in its latest
        version, and deleted records not at all. With ``all_versions`` every stored row appears,
        with the ``write_time``, ``api_invocation_time`` and ``is_deleted`` columns, for readers
        that deduplicate themselves (:func:`fraud_detection.features.asof.latest_versions`).
        """

    def count_online_records(self, name: str) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not count online records.")
