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

import logging
import random
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from fraud_detection.errors import (
    ConfigurationError,
    FeatureGroupCreationError,
    FeatureGroupDefinitionMismatchError,
    FeatureGroupNotFoundError,
    FraudDetectionError,
    RecordReadError,
)
from fraud_detection.features.spec import FeatureGroupSpec, spec_from_description
from fraud_detection.stores.athena import frame_from_rows, offline_query_sql
from fraud_detection.stores.aws_clients import FeatureStoreClients, SageMakerFeatureStoreConfig
from fraud_detection.stores.aws_feature_groups import (
    OFFLINE_TABLE_FORMAT,
    check_create_arguments,
    check_group_name,
    definition_differences,
    raise_unless_created,
)
from fraud_detection.stores.aws_offline_files import sync_offline_files
from fraud_detection.stores.aws_records import (
    identifier_as_string,
    is_current,
    iso_event_time,
    records_from_frame,
    split_long_strings,
    typed_record,
)
from fraud_detection.stores.base import TARGET_STORES, FeatureStore, IngestResult, check_target_stores
from fraud_detection.stores.local_offline import LocalOfflineStore
from fraud_detection.stores.validation import REJECT_REASON, split_valid_rows, write_quarantine

log = logging.getLogger(__name__)

# Limits of the botocore 1.44.8 service model of sagemaker-featurestore-runtime.
MAX_IDENTIFIERS_PER_BATCH_GET = 100
MAX_LIST_RECORDS_RESULTS = 100

# Error codes worth another attempt. Any HTTP 5xx status is retried as well.
RETRYABLE_ERROR_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "ServiceUnavailable", "InternalFailure"}
)
STORE_NAMES = {"online": "OnlineStore", "offline": "OfflineStore"}


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
        check_create_arguments(spec)
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
            raise_unless_created(spec.name, description)
            log.info("Feature group %s already exists", spec.name)

        differences = definition_differences(description, spec)
        if differences:
            raise FeatureGroupDefinitionMismatchError(spec.name, differences)
        self._specs[spec.name] = spec
        self._descriptions[spec.name] = description
        return description

    def describe_feature_group(self, name: str) -> dict[str, Any]:
        """Return SageMaker's DescribeFeatureGroup response without its ``ResponseMetadata``."""
        check_group_name(name)
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
                raise_unless_created(name, description)
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
        target_stores = check_target_stores(target_stores)
        good, rejected = split_valid_rows(spec, frame)
        good, too_long = split_long_strings(spec, good)
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
                if is_current(spec, values, record.get("ExpiresAt"), as_of):
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

    def offline_table_sql(self, name: str, *, all_versions: bool = False) -> str:
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
        if self.clients.s3 is None:
            raise ConfigurationError("offline_table_sql on the aws backend needs an S3 client.")
        location = sync_offline_files(self.clients.s3, self.config.cache_root, name, resolved)
        return LocalOfflineStore(self.config.cache_root).table_sql(spec, str(location), all_versions=all_versions)

    def _offline_config(self, name: str) -> dict[str, Any]:
        config = self._description(name).get("OfflineStoreConfig")
        if config is None:
            raise ValueError(f"Feature group {name!r} has no offline store because it was created online only.")
        return config

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


# Small helpers


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
