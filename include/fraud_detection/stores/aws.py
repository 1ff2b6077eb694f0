"""The aws feature store backend: SageMaker Feature Store through injected boto3 clients.

The online store is SageMaker's, written and read with the ``sagemaker-featurestore-runtime``
client (PutRecord, BatchGetRecord, DeleteRecord, ListRecords). Feature groups are managed with
the ``sagemaker`` client. The offline store is the Parquet history SageMaker writes to S3, read
with Athena (``read_offline``) or with DuckDB over a local copy of its files
(``offline_table_sql``).

Differences from the local backend, all following from SageMaker:

- The offline store is append-only: ``ingest_id`` cannot replace what an earlier run wrote.
  Readers deduplicate instead, keeping the latest ``write_time`` per record identifier and
  event time, as the local offline SQL does, so a rerun adds files but no rows to the result.
- SageMaker expires records by wall-clock time (``ExpiresAt = EventTime + TtlDuration``), while
  the contract's TTL rule is relative to ``as_of``. ``get_records`` applies the contract's rule
  to what SageMaker still returns, so a read with an ``as_of`` in the past cannot bring back a
  record that SageMaker has already expired.
- SageMaker writes the offline store some time after PutRecord, while the local store writes at once.

The clients come from the caller (``open_feature_store`` or the Airflow hook), so this module
never reads credentials.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
import os
import random
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import numpy as np
import pandas as pd
from botocore.exceptions import ClientError

from fraud_detection.errors import (
    ConfigurationError,
    FeatureGroupDefinitionMismatchError,
    FeatureGroupNotFoundError,
    FraudDetectionError,
)
from fraud_detection.features.spec import (
    FEATURE_GROUP_NAME_PATTERN,
    MAX_NAME_LENGTH,
    PANDAS_TYPES,
    FeatureGroupSpec,
    FeatureType,
    spec_from_description,
)
from fraud_detection.stores.base import TARGET_STORES, FeatureStore, IngestResult
from fraud_detection.stores.local_offline import LocalOfflineStore
from fraud_detection.stores.validation import REJECT_REASON, split_valid_rows, write_quarantine

log = logging.getLogger(__name__)

# Limits of the botocore 1.44.8 service models of sagemaker and sagemaker-featurestore-runtime.
MAX_IDENTIFIERS_PER_BATCH_GET = 100
MAX_VALUE_LENGTH = 358400
MAX_DESCRIPTION_LENGTH = 128
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
MAX_LIST_RECORDS_RESULTS = 100

# Error codes worth another attempt. Any HTTP 5xx status is retried as well.
RETRYABLE_ERROR_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "ServiceUnavailable", "InternalFailure"}
)
STORE_NAMES = {"online": "OnlineStore", "offline": "OfflineStore"}
TTL_UNIT_SECONDS = {"Seconds": 1, "Minutes": 60, "Hours": 3600, "Days": 86400, "Weeks": 604800}
# The layout offline_table_sql reads. An Iceberg offline store lays its files out differently.
OFFLINE_TABLE_FORMAT = "Glue"


class FeatureGroupCreationError(FraudDetectionError):
    """SageMaker failed to create a feature group, or it did not become ``Created`` in time."""

    def __init__(self, name: str, reason: str):
        super().__init__(
            f"Feature group {name!r} was not created: {reason}. Fix the cause, delete the group "
            "if it exists, and create it again."
        )
        self.name = name
        self.reason = reason


class RecordReadError(FraudDetectionError):
    """BatchGetRecord left records unread after every retry, listed in ``failures``."""

    def __init__(self, failures: list[tuple[str, str, str]]):
        listed = ", ".join(f"{group}/{identifier} ({reason})" for group, identifier, reason in failures[:20])
        more = f" and {len(failures) - 20} more" if len(failures) > 20 else ""
        super().__init__(
            f"BatchGetRecord failed for {len(failures)} records: {listed}{more}. "
            "Retry the read, and lower the request rate if throttling persists."
        )
        self.failures = failures


class OfflineQueryError(FraudDetectionError):
    """An Athena query of the offline store failed, was cancelled or timed out."""

    def __init__(self, query_execution_id: str, state: str, reason: str | None):
        super().__init__(
            f"Athena query {query_execution_id} ended {state}: {reason or 'no reason given'}. "
            "Check the query in the Athena console and the permissions on the Glue table and S3."
        )
        self.query_execution_id = query_execution_id
        self.state = state


class AthenaQuery(Protocol):
    """Run SQL on Athena and return the result rows, each a dict from column name to text.

    Values are strings as Athena returns them, with ``None`` for NULL. The header row is left out.
    """

    def __call__(self, sql: str, *, database: str, catalog: str, output_location: str) -> list[dict[str, str | None]]:
        ...


@dataclass(frozen=True)
class FeatureStoreClients:
    """The boto3 clients of the aws backend. ``s3`` and ``athena_query`` serve the offline reads."""

    sagemaker: Any
    featurestore_runtime: Any
    s3: Any = None
    athena_query: AthenaQuery | None = None


@dataclass(frozen=True)
class SageMakerFeatureStoreConfig:
    """Settings of the aws backend.

    ``max_attempts`` counts every attempt of a call, the first included. The delay before
    attempt ``n + 1`` is drawn uniformly from 0 to ``min(backoff_max_seconds,
    backoff_base_seconds * 2 ** (n - 1))`` (exponential backoff with full jitter).
    """

    role_arn: str
    offline_store_s3_uri: str
    athena_output_s3_uri: str | None
    cache_root: Path
    quarantine_root: Path
    max_workers: int = 8
    max_attempts: int = 5
    backoff_base_seconds: float = 0.1
    backoff_max_seconds: float = 5.0
    create_timeout_seconds: float = 900.0
    delete_timeout_seconds: float = 900.0
    poll_interval_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.max_workers < 1:
            raise ValueError(f"Invalid max_workers {self.max_workers!r}: use 1 or more threads.")
        if self.max_attempts < 1:
            raise ValueError(f"Invalid max_attempts {self.max_attempts!r}: use 1 or more attempts.")
        for name in (
            "backoff_base_seconds",
            "backoff_max_seconds",
            "create_timeout_seconds",
            "delete_timeout_seconds",
            "poll_interval_seconds",
        ):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"Invalid {name} {value!r}: use a number of seconds, 0 or more.")


@dataclass
class _WriteOutcome:
    """Counts of one ingest's PutRecord calls, shared by the writer threads."""

    written: int = 0
    retries: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SageMakerFeatureStore(FeatureStore):
    """Feature groups in SageMaker Feature Store (the module docstring lists the differences)."""

    def __init__(
        self,
        config: SageMakerFeatureStoreConfig,
        clients: FeatureStoreClients,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.config = config
        self.clients = clients
        self._sleep = sleep
        self._random = random.Random()
        self._specs: dict[str, FeatureGroupSpec] = {}
        self._descriptions: dict[str, dict[str, Any]] = {}

    # Feature groups

    def create_feature_group(self, spec: FeatureGroupSpec) -> dict[str, Any]:
        """Create the group unless it exists, wait until it is ``Created`` and return its description.

        Wraps ``SageMaker.Client.create_feature_group`` and polls ``describe_feature_group``
        every ``poll_interval_seconds`` for up to ``create_timeout_seconds``.
        """
        _check_create_arguments(spec)
        try:
            description = self.describe_feature_group(spec.name)
        except FeatureGroupNotFoundError:
            description = None

        if description is None:
            try:
                self.clients.sagemaker.create_feature_group(**self._create_request(spec))
                log.info("Creating feature group %s", spec.name)
            except ClientError as error:
                if _error_code(error) != "ResourceInUse":
                    raise
                log.info("Feature group %s was created by another process meanwhile, checking its definition", spec.name)
            description = self._wait_until_created(spec.name)
        elif description.get("FeatureGroupStatus") == "Creating":
            log.info("Feature group %s is being created by another process, waiting until it is Created", spec.name)
            description = self._wait_until_created(spec.name)
        else:
            _raise_unless_created(spec.name, description)
            log.info("Feature group %s already exists", spec.name)

        differences = _differences(description, spec)
        if differences:
            raise FeatureGroupDefinitionMismatchError(spec.name, differences)
        self._specs[spec.name] = spec
        self._descriptions[spec.name] = description
        return description

    def describe_feature_group(self, name: str) -> dict[str, Any]:
        """Return SageMaker's DescribeFeatureGroup response without its ``ResponseMetadata``."""
        _check_group_name(name)
        try:
            response = self.clients.sagemaker.describe_feature_group(FeatureGroupName=name)
        except ClientError as error:
            if _error_code(error) == "ResourceNotFound":
                raise FeatureGroupNotFoundError(name) from None
            raise
        except KeyError:
            # NOTE: moto 5.2.5 raises a bare KeyError for a missing group instead of the
            # service's ResourceNotFound. Remove this branch once moto translates it.
            raise FeatureGroupNotFoundError(name) from None
        response.pop("ResponseMetadata", None)
        return response

    def delete_feature_group(self, name: str) -> None:
        """Delete the group and its online records, and wait until SageMaker has removed it.

        Wraps ``SageMaker.Client.delete_feature_group``. The offline store's S3 files and its
        Glue table are kept, as SageMaker keeps them.
        """
        self.describe_feature_group(name)
        try:
            self.clients.sagemaker.delete_feature_group(FeatureGroupName=name)
        except ClientError as error:
            if _error_code(error) == "ResourceNotFound":
                raise FeatureGroupNotFoundError(name) from None
            raise
        self._specs.pop(name, None)
        self._descriptions.pop(name, None)
        log.info("Deleting feature group %s, keeping its offline store files", name)
        self._wait_until_deleted(name)
        log.info("Deleted feature group %s", name)

    def _create_request(self, spec: FeatureGroupSpec) -> dict[str, Any]:
        request: dict[str, Any] = {
            "FeatureGroupName": spec.name,
            "RecordIdentifierFeatureName": spec.record_identifier,
            "EventTimeFeatureName": spec.event_time_feature,
            "FeatureDefinitions": spec.feature_definitions(),
            "OnlineStoreConfig": spec.online_store_config(),
            "RoleArn": self.config.role_arn,
        }
        if spec.offline:
            request["OfflineStoreConfig"] = {
                "S3StorageConfig": {"S3Uri": self.config.offline_store_s3_uri},
                "DisableGlueTableCreation": False,
                "TableFormat": OFFLINE_TABLE_FORMAT,
            }
        if spec.description:
            request["Description"] = spec.description
        if spec.tags:
            request["Tags"] = [{"Key": key, "Value": value} for key, value in spec.tags.items()]
        return request

    def _wait_until_created(self, name: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.config.create_timeout_seconds
        while True:
            try:
                description = self.describe_feature_group(name)
                status = description.get("FeatureGroupStatus")
            except FeatureGroupNotFoundError:
                # A group can be missing from DescribeFeatureGroup for a moment after its creation.
                description, status = None, "not visible yet"
            if status == "Created":
                log.info("Feature group %s is Created", name)
                return description
            if description is not None and status != "Creating":
                _raise_unless_created(name, description)
            if time.monotonic() >= deadline:
                raise FeatureGroupCreationError(
                    name, f"timed out after {self.config.create_timeout_seconds} s with status {status}"
                )
            log.info("Feature group %s is %s, checking again in %s s", name, status, self.config.poll_interval_seconds)
            self._sleep(self.config.poll_interval_seconds)

    def _wait_until_deleted(self, name: str) -> None:
        deadline = time.monotonic() + self.config.delete_timeout_seconds
        while True:
            try:
                description = self.describe_feature_group(name)
            except FeatureGroupNotFoundError:
                return
            status = description.get("FeatureGroupStatus")
            if status == "DeleteFailed":
                raise FraudDetectionError(
                    f"Deleting feature group {name!r} failed: {description.get('FailureReason', 'no reason given')}. "
                    "Check the group in the SageMaker console and delete it again."
                )
            if time.monotonic() >= deadline:
                raise FraudDetectionError(
                    f"Deleting feature group {name!r} timed out after {self.config.delete_timeout_seconds} s "
                    f"with status {status}. Check the group in the SageMaker console."
                )
            self._sleep(self.config.poll_interval_seconds)

    # Records

    def ingest(
        self,
        name: str,
        frame: pd.DataFrame,
        *,
        ingest_id: str | None = None,
        target_stores: tuple[str, ...] = TARGET_STORES,
    ) -> IngestResult:
        """Write the rows of ``frame`` with PutRecord, in parallel, retrying throttled calls.

        Rows that fail the row checks, and records whose PutRecord still fails after
        ``max_attempts``, go to one quarantine file with a reason each. ``ingest_id`` names that
        file. It cannot make SageMaker's append-only offline store idempotent, so a rerun's rows
        reach the offline store again and readers deduplicate them.
        """
        spec = self._spec(name)
        unknown = set(target_stores) - set(TARGET_STORES)
        if unknown or not target_stores:
            raise ValueError(f"Invalid target stores {target_stores!r}: use 'online', 'offline' or both.")
        good, rejected = split_valid_rows(spec, frame)
        good, too_long = _split_long_strings(spec, good)
        rejected = pd.concat([rejected, too_long], ignore_index=True) if len(too_long) else rejected
        stores = [STORE_NAMES[store] for store in TARGET_STORES if store in target_stores and _has_store(spec, store)]
        if ingest_id is not None:
            log.info(
                "Ingest %s into %s: SageMaker's offline store is append-only, so readers keep the "
                "latest write per record identifier and event time",
                ingest_id, name,
            )

        outcome = _WriteOutcome()
        if len(good) and stores:
            outcome = self._put_records(spec, good, stores)
        elif len(good):
            log.warning(
                "Feature group %s has none of the target stores %s, so nothing was written", name, "+".join(target_stores)
            )
            outcome.written = len(good)

        failed = good.iloc[[index for index, _ in outcome.failures]].copy()
        failed[REJECT_REASON] = [reason for _, reason in outcome.failures]
        quarantined = pd.concat([rejected, failed], ignore_index=True) if len(failed) else rejected
        quarantine_path = None
        if len(quarantined):
            quarantine_path = write_quarantine(self.config.quarantine_root, name, ingest_id, quarantined)
        if outcome.failures:
            log.warning(
                "%d records of feature group %s were not written (first: %s) and are in %s",
                len(outcome.failures), name, outcome.failures[0][1], quarantine_path,
            )
        log.info(
            "Ingested %d records into feature group %s (%s), rejected %d, write failures %d, retries %d",
            outcome.written, name, "+".join(target_stores), len(rejected), len(outcome.failures), outcome.retries,
        )
        return IngestResult(name, outcome.written, len(quarantined), quarantine_path, tuple(target_stores), [])

    def _put_records(self, spec: FeatureGroupSpec, good: pd.DataFrame, stores: list[str]) -> _WriteOutcome:
        """Write the records with ``max_workers`` threads and return the counts and failures.

        Every record of one identifier goes to the same thread, in frame order, so two records
        with equal event times reach SageMaker in a fixed order.
        """
        records = records_from_frame(spec, good)
        identifiers = good[spec.record_identifier].astype(str).tolist()
        chunk_count = min(self.config.max_workers, len(records))
        chunks: list[list[int]] = [[] for _ in range(chunk_count)]
        for index, identifier in enumerate(identifiers):
            chunks[zlib.crc32(identifier.encode()) % chunk_count].append(index)

        outcome = _WriteOutcome()
        abort = threading.Event()
        with ThreadPoolExecutor(max_workers=chunk_count, thread_name_prefix=f"put-record-{spec.name}") as executor:
            futures = [
                executor.submit(self._put_chunk, spec.name, chunk, records, stores, outcome, abort)
                for chunk in chunks
                if chunk
            ]
            try:
                for future in as_completed(futures):
                    future.result()
            except BaseException:
                abort.set()
                raise
        outcome.failures.sort()
        return outcome

    def _put_chunk(
        self,
        name: str,
        chunk: list[int],
        records: list[list[dict[str, str]]],
        stores: list[str],
        outcome: _WriteOutcome,
        abort: threading.Event,
    ) -> None:
        for index in chunk:
            if abort.is_set():
                return
            request = {"FeatureGroupName": name, "Record": records[index], "TargetStores": stores}
            retries, failure = self._put_record(request)
            with outcome.lock:
                outcome.retries += retries
                if failure is None:
                    outcome.written += 1
                else:
                    outcome.failures.append((index, failure))

    def _put_record(self, request: dict[str, Any]) -> tuple[int, str | None]:
        """Call PutRecord and return (retries, ``None`` or the reason the record was not written)."""
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                self.clients.featurestore_runtime.put_record(**request)
                return attempt - 1, None
            except ClientError as error:
                code = _error_code(error)
                if _is_retryable(error) and attempt < self.config.max_attempts:
                    log.debug("PutRecord into %s failed with %s, retrying", request["FeatureGroupName"], code)
                    self._sleep(self._backoff_delay(attempt))
                    continue
                if _is_retryable(error) or code == "ValidationError":
                    attempts = f"{attempt} attempt" if attempt == 1 else f"{attempt} attempts"
                    reason = f"PutRecord failed after {attempts}: {code}: {_error_message(error)}"
                    log.debug("Record of %s not written: %s", request["FeatureGroupName"], reason)
                    return attempt - 1, reason
                raise
        raise AssertionError("unreachable: the loop returns or raises")

    def get_records(
        self, requests: dict[str, list[Any]], *, as_of: float | None = None
    ) -> dict[str, dict[Any, dict[str, Any]]]:
        """Read online records with BatchGetRecord, at most 100 identifiers per call.

        A record is returned while ``as_of < event_time + ttl``. Identifiers that SageMaker
        leaves unprocessed, or reports with a retryable error, are requested again up to
        ``max_attempts`` times. What remains raises ``RecordReadError`` with the identifiers.
        """
        as_of = time.time() if as_of is None else float(as_of)
        specs = {name: self._spec(name) for name in requests}
        for name, spec in specs.items():
            if not spec.online:
                raise ValueError(f"Feature group {name!r} has no online store. Read it with read_offline.")
        pending: list[tuple[str, str]] = []
        for name, identifiers in requests.items():
            strings = [identifier_as_string(specs[name], value) for value in identifiers]
            pending += [(name, text) for text in dict.fromkeys(strings)]

        results: dict[str, dict[Any, dict[str, Any]]] = {name: {} for name in requests}
        for start in range(0, len(pending), MAX_IDENTIFIERS_PER_BATCH_GET):
            batch = pending[start : start + MAX_IDENTIFIERS_PER_BATCH_GET]
            for name, record in self._batch_get(batch):
                spec = specs[name]
                values = typed_record(spec, record["Record"])
                if _is_current(spec, values, record.get("ExpiresAt"), as_of):
                    results[name][values[spec.record_identifier]] = values
        return results

    def _batch_get(self, batch: list[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
        """Return (group name, record detail) for each record found among ``batch``."""
        found: list[tuple[str, dict[str, Any]]] = []
        fatal: list[tuple[str, str, str]] = []
        pending = batch
        for attempt in range(1, self.config.max_attempts + 1):
            identifiers: dict[str, list[str]] = {}
            for name, text in pending:
                identifiers.setdefault(name, []).append(text)
            request = {
                "Identifiers": [
                    {"FeatureGroupName": name, "RecordIdentifiersValueAsString": texts}
                    for name, texts in identifiers.items()
                ],
                "ExpirationTimeResponse": "Enabled",
            }
            try:
                response = self.clients.featurestore_runtime.batch_get_record(**request)
            except ClientError as error:
                if not _is_retryable(error) or attempt == self.config.max_attempts:
                    raise
                log.warning("BatchGetRecord failed with %s (attempt %d), retrying", _error_code(error), attempt)
                self._sleep(self._backoff_delay(attempt))
                continue

            found += [(_group_name(record["FeatureGroupName"]), record) for record in response.get("Records", [])]
            retry: list[tuple[str, str]] = []
            for error in response.get("Errors", []):
                key = (_group_name(error["FeatureGroupName"]), error["RecordIdentifierValueAsString"])
                if error["ErrorCode"] in RETRYABLE_ERROR_CODES:
                    retry.append(key)
                else:
                    fatal.append((*key, f"{error['ErrorCode']}: {error['ErrorMessage']}"))
            for unprocessed in response.get("UnprocessedIdentifiers", []):
                group = _group_name(unprocessed["FeatureGroupName"])
                retry += [(group, text) for text in unprocessed["RecordIdentifiersValueAsString"]]
            if not retry:
                break
            if attempt == self.config.max_attempts:
                fatal += [(group, text, f"unprocessed after {attempt} attempts") for group, text in retry]
                break
            log.warning("BatchGetRecord left %d records unread (attempt %d), retrying them", len(retry), attempt)
            self._sleep(self._backoff_delay(attempt))
            pending = retry
        if fatal:
            raise RecordReadError(fatal)
        return found

    def delete_record(self, name: str, record_identifier: Any, event_time: float) -> None:
        """Soft-delete a record with DeleteRecord in the group's stores.

        SageMaker deletes the online record only if ``event_time`` is later than the stored
        record's event time. It appends a deletion marker to the offline store either way.
        """
        spec = self._spec(name)
        request = {
            "FeatureGroupName": name,
            "RecordIdentifierValueAsString": identifier_as_string(spec, record_identifier),
            "EventTime": iso_event_time(event_time),
            "TargetStores": [STORE_NAMES[store] for store in TARGET_STORES if _has_store(spec, store)],
            "DeletionMode": "SoftDelete",
        }
        self._call_with_retry("DeleteRecord", lambda: self.clients.featurestore_runtime.delete_record(**request))
        log.info("Deleted record %s of feature group %s at event time %s", record_identifier, name, request["EventTime"])

    def count_online_records(self, name: str) -> int:
        """Count the group's online records with ListRecords, soft-deleted ones left out."""
        self._spec(name)
        count = 0
        request: dict[str, Any] = {
            "FeatureGroupName": name,
            "MaxResults": MAX_LIST_RECORDS_RESULTS,
            "IncludeSoftDeletedRecords": False,
        }
        while True:
            response = self._call_with_retry(
                "ListRecords", lambda: self.clients.featurestore_runtime.list_records(**request)
            )
            count += len(response.get("RecordIdentifiers", []))
            token = response.get("NextToken")
            if not token:
                return count
            request["NextToken"] = token

    # Offline store

    def read_offline(self, name: str, *, start: float | None = None, end: float | None = None) -> pd.DataFrame:
        """Query the group's Glue table with Athena and return the deduplicated records.

        Rows keep ``start <= event_time < end``. Per record identifier and event time the latest
        ``write_time`` wins, and deletion markers remove their record.
        """
        spec = self._spec(name)
        catalog = self._offline_config(name).get("DataCatalogConfig")
        if not catalog:
            raise ValueError(
                f"Feature group {name!r} has no Glue table (DisableGlueTableCreation was set), so Athena "
                "cannot read it. Use offline_table_sql instead."
            )
        if self.clients.athena_query is None or not self.config.athena_output_s3_uri:
            raise ConfigurationError(
                "read_offline on the aws backend needs an Athena query runner and "
                "FRAUD_DETECTION_ATHENA_OUTPUT_S3_URI."
            )
        sql = offline_query_sql(spec, catalog, start=start, end=end)
        rows = self.clients.athena_query(
            sql,
            database=catalog["Database"],
            catalog=catalog["Catalog"],
            output_location=self.config.athena_output_s3_uri,
        )
        log.info(
            "Read %d offline records of %s from Athena table %s.%s",
            len(rows), name, catalog["Database"], catalog["TableName"],
        )
        return frame_from_rows(spec, rows)

    def offline_table_sql(self, name: str) -> str:
        """Copy new or changed offline store files from S3 and return a DuckDB table expression.

        The files are copied under ``cache_root`` with the layout of the local offline store,
        and the expression is the local store's (:meth:`LocalOfflineStore.table_sql`).
        """
        spec = self._spec(name)
        resolved = self._offline_config(name).get("S3StorageConfig", {}).get("ResolvedOutputS3Uri")
        if not resolved:
            raise ValueError(
                f"Feature group {name!r} has no ResolvedOutputS3Uri yet. Wait until it is Created."
            )
        location = self._sync_offline_files(name, resolved)
        return LocalOfflineStore(self.config.cache_root).table_sql(spec, str(location))

    def _offline_config(self, name: str) -> dict[str, Any]:
        config = self._description(name).get("OfflineStoreConfig")
        if config is None:
            raise ValueError(f"Feature group {name!r} has no offline store because it was created online only.")
        return config

    def _sync_offline_files(self, name: str, resolved_uri: str) -> Path:
        """Mirror the Parquet files under ``resolved_uri`` to a local folder and return that folder.

        A manifest keeps each file's ETag, so only new or changed objects are downloaded, and
        local files whose object is gone are removed.
        """
        if self.clients.s3 is None:
            raise ConfigurationError("offline_table_sql on the aws backend needs an S3 client.")
        bucket, prefix = split_s3_uri(resolved_uri)
        prefix = prefix.rstrip("/") + "/"
        location = self.config.cache_root / name / hashlib.sha256(resolved_uri.encode()).hexdigest()[:16]
        data_root = location / "data"
        manifest_path = location / "manifest.json"
        manifest: dict[str, str] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}

        listed: dict[str, str] = {}
        paginator = self.clients.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix) :]
                if not relative.endswith(".parquet"):
                    continue
                if not _is_safe_relative_path(relative):
                    log.warning("Skipped offline store object %s: its key leaves the group's folder", item["Key"])
                    continue
                listed[relative] = item["ETag"]

        downloaded = 0
        for relative, etag in listed.items():
            target = data_root / relative
            if manifest.get(relative) == etag and target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.download")
            try:
                self.clients.s3.download_file(bucket, prefix + relative, str(temporary))
                os.replace(temporary, target)
            finally:
                temporary.unlink(missing_ok=True)
            manifest[relative] = etag
            downloaded += 1
        removed = 0
        for relative in set(manifest) - set(listed):
            (data_root / relative).unlink(missing_ok=True)
            del manifest[relative]
            removed += 1

        location.mkdir(parents=True, exist_ok=True)
        temporary_manifest = manifest_path.with_suffix(".json.tmp")
        temporary_manifest.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(temporary_manifest, manifest_path)
        log.info(
            "Synced the offline store of %s from %s: %d files downloaded, %d unchanged, %d removed",
            name, resolved_uri, downloaded, len(listed) - downloaded, removed,
        )
        return location

    # Helpers

    def _description(self, name: str) -> dict[str, Any]:
        """Return the group's description, described once per store because definitions do not change."""
        description = self._descriptions.get(name)
        if description is None:
            description = self.describe_feature_group(name)
            self._descriptions[name] = description
        return description

    def _spec(self, name: str) -> FeatureGroupSpec:
        spec = self._specs.get(name)
        if spec is None:
            spec = spec_from_description(self._description(name))
            self._specs[name] = spec
        return spec

    def _call_with_retry(self, operation: str, call: Callable[[], Any]) -> Any:
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                return call()
            except ClientError as error:
                if not _is_retryable(error) or attempt == self.config.max_attempts:
                    raise
                log.warning("%s failed with %s (attempt %d), retrying", operation, _error_code(error), attempt)
                self._sleep(self._backoff_delay(attempt))
        raise AssertionError("unreachable: the loop returns or raises")

    def _backoff_delay(self, attempt: int) -> float:
        ceiling = min(self.config.backoff_max_seconds, self.config.backoff_base_seconds * 2 ** (attempt - 1))
        return self._random.uniform(0, ceiling)


# Conversions between typed values and SageMaker's ValueAsString


def records_from_frame(spec: FeatureGroupSpec, frame: pd.DataFrame) -> list[list[dict[str, str]]]:
    """Convert typed rows to PutRecord ``Record`` lists, leaving out missing values.

    Integral values become decimal integers and Fractional values the shortest text that
    parses back to the same float (``repr``), so values round-trip exactly.
    """
    columns: list[tuple[str, list[str | None]]] = []
    for feature in spec.features:
        if feature.name not in frame.columns:
            continue
        values = frame[feature.name].astype(object).tolist()
        present = frame[feature.name].notna().tolist()
        if feature.type is FeatureType.INTEGRAL:
            texts = [str(int(value)) if keep else None for value, keep in zip(values, present)]
        elif feature.type is FeatureType.FRACTIONAL:
            texts = [repr(float(value)) if keep else None for value, keep in zip(values, present)]
        else:
            texts = [str(value) if keep else None for value, keep in zip(values, present)]
        columns.append((feature.name, texts))
    return [
        [{"FeatureName": name, "ValueAsString": texts[row]} for name, texts in columns if texts[row] is not None]
        for row in range(len(frame))
    ]


def typed_record(spec: FeatureGroupSpec, record: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Convert a ``Record`` list to a dict of every feature, ``None`` where a value is missing."""
    texts = {value["FeatureName"]: value.get("ValueAsString") for value in record}
    return {feature.name: parse_value(feature.type, texts.get(feature.name)) for feature in spec.features}


def parse_value(feature_type: FeatureType, text: str | None) -> Any:
    if text is None:
        return None
    if feature_type is FeatureType.INTEGRAL:
        return int(text)
    if feature_type is FeatureType.FRACTIONAL:
        return float(text)
    return text


def identifier_as_string(spec: FeatureGroupSpec, value: Any) -> str:
    """Return a record identifier as SageMaker's ValueAsString, or raise ``ValueError`` if invalid."""
    feature = spec.feature(spec.record_identifier)
    if feature.type is FeatureType.INTEGRAL:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise ValueError(
                f"Invalid record identifier {value!r} for feature group {spec.name!r}: "
                f"{spec.record_identifier!r} is Integral, so give an int."
            )
        return str(int(value))
    if not isinstance(value, str):
        raise ValueError(
            f"Invalid record identifier {value!r} for feature group {spec.name!r}: "
            f"{spec.record_identifier!r} is String, so give a str."
        )
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(
            f"Invalid record identifier of {len(value)} characters for feature group {spec.name!r}: "
            f"SageMaker allows at most {MAX_VALUE_LENGTH}."
        )
    return value


def iso_event_time(seconds: float) -> str:
    """Format epoch seconds as SageMaker's ``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` event time.

    NOTE: the format has millisecond resolution, so the time is rounded up to the next
    millisecond. A delete then never falls before a record written at ``seconds``.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not math.isfinite(seconds):
        raise ValueError(f"Invalid event time {seconds!r}: give finite seconds since the Unix epoch.")
    milliseconds = math.ceil(round(float(seconds) * 1000, 6))
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{milliseconds % 1000:03d}Z"


def _is_current(spec: FeatureGroupSpec, values: dict[str, Any], expires_at: str | None, as_of: float) -> bool:
    """Apply the contract's TTL rule: a record is current while ``as_of < event_time + ttl``.

    The group's TTL decides. A record-level ``ExpiresAt`` counts only in a group without one.
    """
    if spec.ttl is not None:
        return as_of < values[spec.event_time_feature] + spec.ttl.total_seconds()
    if expires_at:
        return as_of < datetime.fromisoformat(expires_at).timestamp()
    return True


def _split_long_strings(spec: FeatureGroupSpec, good: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Move rows with a String value longer than SageMaker's ValueAsString limit aside."""
    reasons = pd.Series("", index=good.index, dtype="object")
    for feature in spec.features:
        if feature.type is FeatureType.STRING and feature.name in good.columns:
            too_long = good[feature.name].str.len().fillna(0) > MAX_VALUE_LENGTH
            reasons[too_long & (reasons == "")] = (
                f"{feature.name}: longer than {MAX_VALUE_LENGTH} characters, SageMaker's maximum"
            )
    bad = reasons != ""
    rejected = good[bad].copy()
    rejected[REJECT_REASON] = reasons[bad]
    return good[~bad].reset_index(drop=True), rejected


# The offline store


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


def default_clients(region: str | None) -> FeatureStoreClients:
    """Build the clients from boto3's default session, or raise ``ConfigurationError`` without a region."""
    import boto3

    session = boto3.session.Session(region_name=region)
    if session.region_name is None:
        raise ConfigurationError(
            "No AWS region for the aws backend: set AWS_DEFAULT_REGION or a region in the AWS config file."
        )
    return FeatureStoreClients(
        sagemaker=session.client("sagemaker"),
        featurestore_runtime=session.client("sagemaker-featurestore-runtime"),
        s3=session.client("s3"),
        athena_query=AthenaQueryRunner(session.client("athena")),
    )


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Return (bucket, key prefix) of an ``s3://bucket/prefix`` URI."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise ValueError(f"Invalid S3 URI {uri!r}: use s3://bucket/prefix.")
    return bucket, prefix


# Checks and small helpers


def _check_group_name(name: Any) -> None:
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not FEATURE_GROUP_NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"Invalid feature group name {name!r}: use 1-64 letters or digits, with '-' or '_' only between them."
        )


def _check_create_arguments(spec: FeatureGroupSpec) -> None:
    """Check what ``FeatureGroupSpec`` does not: the limits SageMaker puts on descriptions and tags."""
    problems = []
    if len(spec.description) > MAX_DESCRIPTION_LENGTH:
        problems.append(
            f"description of {len(spec.description)} characters, SageMaker allows at most {MAX_DESCRIPTION_LENGTH}"
        )
    for key, value in spec.tags.items():
        if not 1 <= len(key) <= MAX_TAG_KEY_LENGTH:
            problems.append(f"tag key {key!r} must be 1-{MAX_TAG_KEY_LENGTH} characters")
        if len(value) > MAX_TAG_VALUE_LENGTH:
            problems.append(f"tag value of {key!r} is longer than {MAX_TAG_VALUE_LENGTH} characters")
    if problems:
        raise ValueError(f"Invalid feature group {spec.name!r} for SageMaker: " + ", ".join(problems) + ".")


def _raise_unless_created(name: str, description: dict[str, Any]) -> None:
    status = description.get("FeatureGroupStatus")
    if status == "CreateFailed":
        raise FeatureGroupCreationError(name, f"CreateFailed: {description.get('FailureReason', 'no reason given')}")
    if status != "Created":
        raise FeatureGroupCreationError(name, f"its status is {status}")


def _differences(description: dict[str, Any], spec: FeatureGroupSpec) -> list[str]:
    """List how an existing group differs from ``spec``, in the local store's wording."""
    differences = []
    for key, expected in (
        ("RecordIdentifierFeatureName", spec.record_identifier),
        ("EventTimeFeatureName", spec.event_time_feature),
    ):
        if description.get(key) != expected:
            differences.append(f"{key} is {description.get(key)!r}, requested {expected!r}")
    definitions = [
        {key: value for key, value in definition.items() if key in ("FeatureName", "FeatureType", "CollectionType")}
        for definition in description.get("FeatureDefinitions", [])
    ]
    if definitions != spec.feature_definitions():
        differences.append(f"FeatureDefinitions is {definitions!r}, requested {spec.feature_definitions()!r}")

    online = description.get("OnlineStoreConfig") or {}
    actual_online = {"EnableOnlineStore": bool(online.get("EnableOnlineStore", False))}
    if online.get("TtlDuration"):
        actual_online["TtlDuration"] = online["TtlDuration"]
    requested_online = spec.online_store_config()
    if _online_key(actual_online) != _online_key(requested_online):
        differences.append(f"OnlineStoreConfig is {actual_online!r}, requested {requested_online!r}")

    offline = description.get("OfflineStoreConfig")
    if (offline is not None) != spec.offline:
        differences.append(f"offline store enabled is {not spec.offline}, requested {spec.offline}")
    elif offline is not None and offline.get("TableFormat", OFFLINE_TABLE_FORMAT) not in (OFFLINE_TABLE_FORMAT, "Default"):
        differences.append(
            f"OfflineStoreConfig.TableFormat is {offline['TableFormat']!r}, requested {OFFLINE_TABLE_FORMAT!r}"
        )
    return differences


def _online_key(config: dict[str, Any]) -> tuple[bool, int | None]:
    """Return (enabled, TTL in seconds), so 14 Days and 2 Weeks compare equal."""
    ttl = config.get("TtlDuration")
    seconds = ttl["Value"] * TTL_UNIT_SECONDS[ttl["Unit"]] if ttl else None
    return bool(config.get("EnableOnlineStore")), seconds


def _has_store(spec: FeatureGroupSpec, store: str) -> bool:
    return spec.online if store == "online" else spec.offline


def _group_name(name_or_arn: str) -> str:
    return name_or_arn.rsplit("feature-group/", 1)[-1]


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "Unknown")


def _error_message(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Message", "")


def _is_retryable(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return _error_code(error) in RETRYABLE_ERROR_CODES or status >= 500


def _is_safe_relative_path(relative: str) -> bool:
    path = PurePosixPath(relative)
    return not path.is_absolute() and ".." not in path.parts and bool(path.parts)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
