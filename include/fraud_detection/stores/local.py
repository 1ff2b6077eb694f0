"""The local feature store: SQLite online store, Parquet offline store, JSON group registry.

It follows SageMaker Feature Store's semantics on one machine, for development, tests and
laptop runs; it is not meant to serve several hosts.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from fraud_detection.errors import FeatureGroupDefinitionMismatchError, FeatureGroupNotFoundError
from fraud_detection.features.spec import FeatureGroupSpec, spec_from_description
from fraud_detection.stores.base import TARGET_STORES, FeatureStore, IngestResult, check_target_stores
from fraud_detection.stores.local_offline import LocalOfflineStore, utc_now
from fraud_detection.stores.local_online import LocalOnlineStore
from fraud_detection.stores.validation import split_valid_rows, write_quarantine

log = logging.getLogger(__name__)


class LocalFeatureStore(FeatureStore):
    """Feature groups kept under one folder, as the module docstring describes."""

    def __init__(self, root: Path, quarantine_root: Path, specs: dict[str, FeatureGroupSpec] | None = None):
        self.root = Path(root)
        self.registry_root = self.root / "registry"
        self.online = LocalOnlineStore(self.root / "online-store.sqlite")
        self.offline = LocalOfflineStore(self.root / "offline-store")
        self.quarantine_root = Path(quarantine_root)
        self._specs = dict(specs or {})
        self._descriptions: dict[str, dict[str, Any]] = {}

    # Feature groups

    def create_feature_group(self, spec: FeatureGroupSpec) -> dict[str, Any]:
        path = self._registry_path(spec.name)
        if path.exists():
            description = self.describe_feature_group(spec.name)
            differences = _differences(description, spec)
            if differences:
                raise FeatureGroupDefinitionMismatchError(spec.name, differences)
            self._specs[spec.name] = spec
            log.info("Feature group %s already exists with the same definition", spec.name)
            return description

        created = utc_now()
        description = {
            "FeatureGroupName": spec.name,
            "FeatureGroupArn": f"local:feature-group/{spec.name}",
            "RecordIdentifierFeatureName": spec.record_identifier,
            "EventTimeFeatureName": spec.event_time_feature,
            "FeatureDefinitions": spec.feature_definitions(),
            "OnlineStoreConfig": spec.online_store_config(),
            "OfflineStoreConfig": {"ResolvedOutputLocation": self.offline.new_location(spec, created)}
            if spec.offline
            else None,
            "Description": spec.description,
            "CreationTime": created.isoformat(),
            "FeatureGroupStatus": "Created",
        }

        if spec.online:
            self.online.create_table(spec)
        self.registry_root.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(description, indent=2))
        os.replace(temporary, path)
        self._specs[spec.name] = spec
        self._descriptions[spec.name] = description
        log.info("Created feature group %s", spec.name)
        return description

    def describe_feature_group(self, name: str) -> dict[str, Any]:
        cached = self._descriptions.get(name)
        if cached is not None:
            return cached
        path = self._registry_path(name)
        if not path.exists():
            raise FeatureGroupNotFoundError(name)
        description = json.loads(path.read_text())
        self._descriptions[name] = description
        return description

    def delete_feature_group(self, name: str) -> None:
        self.describe_feature_group(name)
        self.online.drop_table(name)
        self._registry_path(name).unlink()
        self._descriptions.pop(name, None)
        self._specs.pop(name, None)
        log.info("Deleted feature group %s and kept its offline store files", name)

    # Records

    def ingest(
        self,
        name: str,
        frame: pd.DataFrame,
        *,
        ingest_id: str | None = None,
        target_stores: tuple[str, ...] = TARGET_STORES,
    ) -> IngestResult:
        spec = self._spec(name)
        description = self.describe_feature_group(name)
        target_stores = check_target_stores(target_stores)
        good, rejected = split_valid_rows(spec, frame)
        quarantine_path = None
        if len(rejected):
            quarantine_path = write_quarantine(self.quarantine_root, name, ingest_id, rejected)
        write_time = utc_now()
        files: list[str] = []
        if "offline" in target_stores and spec.offline and len(good):
            location = description["OfflineStoreConfig"]["ResolvedOutputLocation"]
            files = self.offline.write(spec, location, good, ingest_id=ingest_id, write_time=write_time)
        if "online" in target_stores and spec.online and len(good):
            self.online.put(spec, good, write_time.timestamp())
        log.info(
            "Ingested %d records into feature group %s (%s), rejected %d",
            len(good), name, "+".join(target_stores), len(rejected),
        )
        return IngestResult(name, len(good), len(rejected), quarantine_path, tuple(target_stores), files)

    def get_records(
        self, requests: dict[str, list[Any]], *, as_of: float | None = None
    ) -> dict[str, dict[Any, dict[str, Any]]]:
        as_of = time.time() if as_of is None else as_of
        for name in requests:
            self.describe_feature_group(name)
        return {name: self.online.get(self._spec(name), ids, as_of) for name, ids in requests.items()}

    def delete_record(self, name: str, record_identifier: Any, event_time: float) -> None:
        spec = self._spec(name)
        description = self.describe_feature_group(name)
        if spec.online:
            self.online.delete(spec, record_identifier, event_time)
        if spec.offline:
            tombstone = pd.DataFrame({spec.record_identifier: [record_identifier], spec.event_time_feature: [event_time]})
            typed, _ = split_valid_rows(spec, tombstone)
            location = description["OfflineStoreConfig"]["ResolvedOutputLocation"]
            self.offline.write(spec, location, typed, ingest_id=None, write_time=utc_now(), is_deleted=True)

    def read_offline(self, name: str, *, start: float | None = None, end: float | None = None) -> pd.DataFrame:
        import duckdb

        spec = self._spec(name)
        conditions = []
        if start is not None:
            conditions.append(f'"{spec.event_time_feature}" >= {float(start)!r}')
        if end is not None:
            conditions.append(f'"{spec.event_time_feature}" < {float(end)!r}')
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        order = f' ORDER BY "{spec.event_time_feature}", "{spec.record_identifier}"'
        with duckdb.connect() as connection:
            return connection.sql(f"SELECT * FROM {self.offline_table_sql(name)}{where}{order}").df()

    def offline_table_sql(self, name: str, *, all_versions: bool = False) -> str:
        spec = self._spec(name)
        offline_config = self.describe_feature_group(name)["OfflineStoreConfig"]
        if offline_config is None:
            raise ValueError(f"Feature group {name!r} has no offline store because it was created online only.")
        return self.offline.table_sql(spec, offline_config["ResolvedOutputLocation"], all_versions=all_versions)

    def count_online_records(self, name: str) -> int:
        return self.online.count(name)

    # Helpers

    def _registry_path(self, name: str) -> Path:
        return self.registry_root / f"{name}.json"

    def _spec(self, name: str) -> FeatureGroupSpec:
        spec = self._specs.get(name)
        if spec is None:
            spec = spec_from_description(self.describe_feature_group(name))
            self._specs[name] = spec
        return spec


def _differences(description: dict[str, Any], spec: FeatureGroupSpec) -> list[str]:
    requested = {
        "RecordIdentifierFeatureName": spec.record_identifier,
        "EventTimeFeatureName": spec.event_time_feature,
        "FeatureDefinitions": spec.feature_definitions(),
        "OnlineStoreConfig": spec.online_store_config(),
    }
    differences = []
    for key, value in requested.items():
        if description.get(key) != value:
            differences.append(f"{key} is {description.get(key)!r}, requested {value!r}")
    if (description.get("OfflineStoreConfig") is not None) != spec.offline:
        differences.append(f"offline store enabled is {not spec.offline}, requested {spec.offline}")
    return differences
