"""In-process stand-ins for the AWS side of the aws feature store backend.

- ``FakeFeatureStoreRuntime``: SageMaker Feature Store's record API (PutRecord, BatchGetRecord,
  GetRecord, DeleteRecord, ListRecords) in memory, behind a real boto3
  ``sagemaker-featurestore-runtime`` client whose calls never leave the process. It writes the
  offline store's Parquet files to S3 (moto) as SageMaker does, but at once instead of minutes
  later.
- ``FakeAthena``: an Athena query callable that runs the SQL with DuckDB over those files.
- ``adapt_moto_sagemaker``: fills what moto 5.2.5 leaves out of DescribeFeatureGroup.
- ``attach_request_validation``: checks every request of a boto3 client against botocore's
  service model, including the max-length, pattern and enum rules botocore skips.

Every request to the fake runtime is validated that way, so a misspelt key, a wrong type or a
value SageMaker would reject fails the test with ``ParamValidationError``.
"""

from __future__ import annotations

import copy
import re
import tempfile
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import boto3
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import ParamValidator

RUNTIME_SERVICE = "sagemaker-featurestore-runtime"
ARROW_TYPES = {"Integral": pa.int64(), "Fractional": pa.float64(), "String": pa.string()}
DUCKDB_TYPES = {"Integral": "BIGINT", "Fractional": "DOUBLE", "String": "VARCHAR"}
TTL_UNIT_SECONDS = {"Seconds": 1, "Minutes": 60, "Hours": 3600, "Days": 86400, "Weeks": 604800}
# The formats SageMaker documents for event times given as strings.
EVENT_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ")

# Java regular expression constructs in the service models that Python's re lacks. \p{L},
# \p{Z} and \p{N} become \w and \s, which accept a little more than Java does (the underscore
# and control characters such as tab).
_JAVA_PATTERN_REWRITES = (
    (r"\uD800\uDC00-\uDBFF\uDFFF", r"\U00010000-\U0010FFFF"),
    (r"\p{L}\p{Z}\p{N}", r"\w\s"),
)


# Request validation


@lru_cache(maxsize=None)
def _compiled_pattern(pattern: str) -> re.Pattern:
    for java, python in _JAVA_PATTERN_REWRITES:
        pattern = pattern.replace(java, python)
    return re.compile(pattern)


def constraint_errors(value: Any, shape, path: str = "") -> list[str]:
    """List the max, pattern and enum rules of ``shape`` that ``value`` breaks.

    Patterns must match the whole value, as AWS applies them, and ``.`` does not match a line
    break, as in Java. Types, required members and minimums are left to botocore's ParamValidator.
    """
    errors: list[str] = []
    metadata = shape.metadata
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                errors += constraint_errors(value[name], member, f"{path}.{name}" if path else name)
    elif shape.type_name == "list" and isinstance(value, (list, tuple)):
        if "max" in metadata and len(value) > metadata["max"]:
            errors.append(f"{path}: {len(value)} items, the maximum is {metadata['max']}")
        for index, item in enumerate(value):
            errors += constraint_errors(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        if "max" in metadata and len(value) > metadata["max"]:
            errors.append(f"{path}: {len(value)} entries, the maximum is {metadata['max']}")
        for key, item in value.items():
            errors += constraint_errors(key, shape.key, f"{path} key {key!r}")
            errors += constraint_errors(item, shape.value, f"{path}[{key!r}]")
    elif shape.type_name == "string" and isinstance(value, str):
        if "max" in metadata and len(value) > metadata["max"]:
            errors.append(f"{path}: length {len(value)}, the maximum is {metadata['max']}")
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of {shape.enum}")
        if "pattern" in metadata and not _compiled_pattern(metadata["pattern"]).fullmatch(value):
            errors.append(f"{path}: {value[:80]!r} does not match the pattern {metadata['pattern']!r}")
    elif shape.type_name in ("integer", "long", "float", "double") and isinstance(value, (int, float)):
        if "max" in metadata and value > metadata["max"]:
            errors.append(f"{path}: {value} is above the maximum {metadata['max']}")
    return errors


def validate_against_shape(params: dict[str, Any], shape, label: str) -> None:
    """Raise ``ParamValidationError`` unless ``params`` conforms to ``shape`` in every rule."""
    report = ParamValidator().validate(params, shape)
    problems = [report.generate_report()] if report.has_errors() else []
    problems += constraint_errors(params, shape)
    if problems:
        raise ParamValidationError(report=f"{label}:\n" + "\n".join(problems))


def attach_request_validation(client) -> None:
    """Validate each request of ``client`` against its service model before botocore sends it."""
    service_id = client.meta.service_model.service_id.hyphenize()

    def validate(params, model, **kwargs):
        validate_against_shape(params, model.input_shape, f"Invalid {model.name} request")

    client.meta.events.register(f"before-parameter-build.{service_id}", validate)


# moto's SageMaker control plane


def adapt_moto_sagemaker(client, glue_tables: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
    """Validate the requests of a moto ``sagemaker`` client and complete its DescribeFeatureGroup.

    moto 5.2.5 leaves ``OnlineStoreConfig`` and ``Description`` out of DescribeFeatureGroup, so
    they are added back from the CreateFeatureGroup request. Each described group's Glue table is
    recorded in ``glue_tables`` for ``FakeAthena``, as SageMaker creates the table.
    """
    attach_request_validation(client)
    created: dict[str, dict[str, Any]] = {}

    def remember_request(params, context, **kwargs):
        context["create_feature_group_request"] = copy.deepcopy(params)

    def remember_created(http_response, parsed, context, **kwargs):
        request = context.get("create_feature_group_request")
        if http_response.status_code == 200 and request is not None:
            created.setdefault(request["FeatureGroupName"], request)

    def complete_description(http_response, parsed, **kwargs):
        if http_response.status_code != 200:
            return
        request = created.get(parsed.get("FeatureGroupName"), {})
        for key in ("OnlineStoreConfig", "Description"):
            if key not in parsed and key in request:
                parsed[key] = copy.deepcopy(request[key])
        catalog = (parsed.get("OfflineStoreConfig") or {}).get("DataCatalogConfig")
        if catalog is not None and glue_tables is not None:
            glue_tables[(catalog["Database"], catalog["TableName"])] = {
                "location": parsed["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"],
                "feature_definitions": parsed["FeatureDefinitions"],
            }

    client.meta.events.register("before-parameter-build.sagemaker.CreateFeatureGroup", remember_request)
    client.meta.events.register("after-call.sagemaker.CreateFeatureGroup", remember_created)
    client.meta.events.register("after-call.sagemaker.DescribeFeatureGroup", complete_description)


# The record API


class _ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class FakeFeatureStoreRuntime:
    """SageMaker Feature Store's record API in memory, behind the real boto3 client ``client``.

    The online semantics follow the PutRecord and DeleteRecord documentation in botocore
    1.44.8. A record replaces the stored one only if its event time is greater. A SoftDelete
    hides the stored record only if the delete's event time is greater. The offline store gets
    every record and every deletion marker. Records expire at ``EventTime + TtlDuration``,
    measured by ``clock``, SageMaker's wall clock.

    NOTE: the documentation leaves open whether an equal event time replaces the online record.
    This fake keeps the stored one.

    ``calls`` lists (operation, request) of every call, and ``inject_error`` makes the next
    calls of an operation fail with an error code.
    """

    def __init__(
        self,
        sagemaker_client,
        *,
        s3_client=None,
        session: boto3.session.Session | None = None,
        region: str = "us-east-1",
        clock: Callable[[], float] = time.time,
    ):
        self.sagemaker = sagemaker_client
        self.s3 = s3_client
        self.clock = clock
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.online: dict[str, dict[str, dict[str, Any]]] = {}
        self._groups: dict[str, dict[str, Any]] = {}
        self._injected: dict[str, deque[tuple[str, int]]] = {}
        self._lock = threading.RLock()
        self._last_write_time = 0.0
        self.client = (session or boto3).client(RUNTIME_SERVICE, region_name=region)
        self._service_model = self.client.meta.service_model
        attach_request_validation(self.client)
        self.client.meta.events.register(f"before-parameter-build.{RUNTIME_SERVICE}", self._keep_params)
        self.client.meta.events.register(f"before-call.{RUNTIME_SERVICE}", self._respond)

    def inject_error(self, operation: str, code: str, *, times: int = 1, status: int = 400) -> None:
        self._injected.setdefault(operation, deque()).extend([(code, status)] * times)

    def calls_of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    # Dispatch

    def _keep_params(self, params, context, **kwargs):
        context["fake_request"] = copy.deepcopy(params)

    def _respond(self, model, context, **kwargs):
        operation = model.name
        params = context["fake_request"]
        with self._lock:
            self.calls.append((operation, params))
            injected = self._injected.get(operation)
            try:
                if injected:
                    code, status = injected.popleft()
                    raise _ServiceError(code, f"Injected {code}", status)
                handler = getattr(self, f"_{_snake(operation)}")
                parsed = handler(params)
            except _ServiceError as error:
                parsed = {
                    "Error": {"Code": error.code, "Message": error.message},
                    "ResponseMetadata": {"HTTPStatusCode": error.status},
                }
                return AWSResponse(None, error.status, {}, None), parsed
        if model.output_shape is not None:
            validate_against_shape(parsed, model.output_shape, f"Invalid fake {operation} response")
        parsed["ResponseMetadata"] = {"HTTPStatusCode": 200, "RequestId": uuid.uuid4().hex}
        return AWSResponse(None, 200, {}, None), parsed

    # Operations

    def _put_record(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._group(params["FeatureGroupName"], missing_code="ValidationError")
        self._write(group, params["Record"], params.get("TargetStores"), params.get("TtlDuration"))
        return {}

    def _batch_get_record(self, params: dict[str, Any]) -> dict[str, Any]:
        records = []
        for identifier in params["Identifiers"]:
            group = self._group(identifier["FeatureGroupName"], missing_code="ValidationError")
            for text in identifier["RecordIdentifiersValueAsString"]:
                stored = self._current(group, text)
                if stored is None:
                    continue
                detail = {
                    "FeatureGroupName": identifier["FeatureGroupName"],
                    "RecordIdentifierValueAsString": text,
                    "Record": _selected(stored["record"], identifier.get("FeatureNames")),
                }
                if params.get("ExpirationTimeResponse") == "Enabled" and stored["expires_at"] is not None:
                    detail["ExpiresAt"] = _iso(stored["expires_at"])
                records.append(detail)
        return {"Records": records, "Errors": [], "UnprocessedIdentifiers": []}

    def _get_record(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._group(params["FeatureGroupName"], missing_code="ResourceNotFound")
        stored = self._current(group, params["RecordIdentifierValueAsString"])
        if stored is None:
            return {}
        response = {"Record": _selected(stored["record"], params.get("FeatureNames"))}
        if params.get("ExpirationTimeResponse") == "Enabled" and stored["expires_at"] is not None:
            response["ExpiresAt"] = _iso(stored["expires_at"])
        return response

    def _delete_record(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._group(params["FeatureGroupName"], missing_code="ValidationError")
        text = params["RecordIdentifierValueAsString"]
        event_time = _parse_event_time(params["EventTime"])
        stores = self._target_stores(group, params.get("TargetStores"))
        mode = params.get("DeletionMode", "SoftDelete")
        stored = self.online.setdefault(group["FeatureGroupName"], {}).get(text)
        newer = stored is None or event_time > stored["event_time"]
        if mode == "HardDelete" and not newer:
            raise _ServiceError("ValidationError", "EventTime: the delete must be later than the stored record")
        if "OnlineStore" in stores and stored is not None and newer:
            if mode == "HardDelete":
                del self.online[group["FeatureGroupName"]][text]
            else:
                stored.update(record=None, event_time=event_time)
        if "OfflineStore" in stores:
            marker = [
                {"FeatureName": group["RecordIdentifierFeatureName"], "ValueAsString": text},
                {"FeatureName": group["EventTimeFeatureName"], "ValueAsString": repr(event_time)},
            ]
            self._write_offline(group, marker, event_time, is_deleted=True)
        return {}

    def _list_records(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._group(params["FeatureGroupName"], missing_code="ResourceNotFound")
        include_deleted = params.get("IncludeSoftDeletedRecords", False)
        texts = sorted(
            text
            for text, stored in self.online.get(group["FeatureGroupName"], {}).items()
            if not self._expired(stored) and (include_deleted or stored["record"] is not None)
        )
        start = int(params.get("NextToken", "0"))
        end = start + params.get("MaxResults", 100)
        response: dict[str, Any] = {"RecordIdentifiers": texts[start:end]}
        if end < len(texts):
            response["NextToken"] = str(end)
        return response

    # State

    def _group(self, name_or_arn: str, *, missing_code: str) -> dict[str, Any]:
        name = name_or_arn.rsplit("feature-group/", 1)[-1]
        if name not in self._groups:
            try:
                description = self.sagemaker.describe_feature_group(FeatureGroupName=name)
            except (KeyError, ClientError):
                raise _ServiceError(missing_code, f"Resource Not Found: Amazon SageMaker can't find a FeatureGroup with name {name}") from None
            self._groups[name] = description
        return self._groups[name]

    def _write(self, group: dict[str, Any], record: list[dict[str, Any]], targets, ttl) -> None:
        definitions = {d["FeatureName"]: d["FeatureType"] for d in group["FeatureDefinitions"]}
        values = {}
        for value in record:
            name = value["FeatureName"]
            if name not in definitions:
                raise _ServiceError("ValidationError", f"Feature {name} is not defined in the feature group")
            if name in values:
                raise _ServiceError("ValidationError", f"Feature {name} appears twice in the record")
            if "ValueAsString" not in value:
                raise _ServiceError("ValidationError", f"Feature {name} has no ValueAsString")
            _check_value(definitions[name], name, value["ValueAsString"])
            values[name] = value["ValueAsString"]
        for key in (group["RecordIdentifierFeatureName"], group["EventTimeFeatureName"]):
            if key not in values:
                raise _ServiceError("ValidationError", f"The record has no value for {key}")
        text = values[group["RecordIdentifierFeatureName"]]
        event_time = float(values[group["EventTimeFeatureName"]])
        stores = self._target_stores(group, targets)
        if "OnlineStore" in stores:
            ttl = ttl or (group.get("OnlineStoreConfig") or {}).get("TtlDuration")
            expires_at = event_time + ttl["Value"] * TTL_UNIT_SECONDS[ttl["Unit"]] if ttl else None
            online = self.online.setdefault(group["FeatureGroupName"], {})
            stored = online.get(text)
            if stored is None or event_time > stored["event_time"]:
                online[text] = {"record": copy.deepcopy(record), "event_time": event_time, "expires_at": expires_at}
        if "OfflineStore" in stores:
            self._write_offline(group, record, event_time, is_deleted=False)

    def _target_stores(self, group: dict[str, Any], targets) -> list[str]:
        enabled = []
        if (group.get("OnlineStoreConfig") or {}).get("EnableOnlineStore"):
            enabled.append("OnlineStore")
        if group.get("OfflineStoreConfig"):
            enabled.append("OfflineStore")
        if targets is None:
            return enabled
        for target in targets:
            if target not in enabled:
                raise _ServiceError("ValidationError", f"The feature group has no {target}")
        return list(targets)

    def _current(self, group: dict[str, Any], text: str) -> dict[str, Any] | None:
        stored = self.online.get(group["FeatureGroupName"], {}).get(text)
        if stored is None or stored["record"] is None or self._expired(stored):
            return None
        return stored

    def _expired(self, stored: dict[str, Any]) -> bool:
        return stored["expires_at"] is not None and self.clock() >= stored["expires_at"]

    def _write_offline(self, group: dict[str, Any], record: list[dict[str, Any]], event_time: float, *, is_deleted: bool) -> None:
        """Write one record as a Parquet file in SageMaker's layout under ResolvedOutputS3Uri."""
        if self.s3 is None:
            return
        self._last_write_time = max(time.time(), self._last_write_time + 1e-6)
        write_time = datetime.fromtimestamp(self._last_write_time, tz=timezone.utc)
        texts = {value["FeatureName"]: value.get("ValueAsString") for value in record}
        columns, fields = {}, []
        for definition in group["FeatureDefinitions"]:
            name, feature_type = definition["FeatureName"], definition["FeatureType"]
            columns[name] = [_typed(feature_type, texts.get(name))]
            fields.append(pa.field(name, ARROW_TYPES[feature_type]))
        columns.update(write_time=[write_time], api_invocation_time=[write_time], is_deleted=[is_deleted])
        fields += [
            pa.field("write_time", pa.timestamp("us", tz="UTC")),
            pa.field("api_invocation_time", pa.timestamp("us", tz="UTC")),
            pa.field("is_deleted", pa.bool_()),
        ]
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table(columns, schema=pa.schema(fields)), sink)
        resolved = group["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"]
        bucket, _, prefix = resolved.removeprefix("s3://").partition("/")
        partition = datetime.fromtimestamp(event_time, tz=timezone.utc).strftime("year=%Y/month=%m/day=%d/hour=%H")
        key = f"{prefix.rstrip('/')}/{partition}/{write_time:%Y%m%dT%H%M%S%fZ}_{uuid.uuid4().hex[:8]}.parquet"
        self.s3.put_object(Bucket=bucket, Key=key, Body=sink.getvalue().to_pybytes())


# Athena


class FakeAthena:
    """An Athena query callable that runs the SQL with DuckDB over the offline store's S3 files.

    ``glue_tables`` maps (database, table) to the group's S3 location and feature definitions,
    as ``adapt_moto_sagemaker`` records them. Results come back as Athena returns them: text
    values, doubles in Java's notation (``1.7096238E9``), ``None`` for NULL. ``queries`` lists
    every call's SQL and arguments.
    """

    TABLE_REFERENCE = re.compile(r'"([^"]+)"\."([^"]+)"')

    def __init__(self, s3_client, glue_tables: dict[tuple[str, str], dict[str, Any]]):
        self.s3 = s3_client
        self.glue_tables = glue_tables
        self.queries: list[dict[str, Any]] = []

    def __call__(self, sql: str, *, database: str, catalog: str, output_location: str) -> list[dict[str, str | None]]:
        self.queries.append(
            {"sql": sql, "database": database, "catalog": catalog, "output_location": output_location}
        )
        if not output_location.startswith("s3://"):
            raise ValueError(f"Athena needs an s3:// output location, got {output_location!r}")
        references = set(self.TABLE_REFERENCE.findall(sql))
        with tempfile.TemporaryDirectory(prefix="fake-athena-") as folder, duckdb.connect() as connection:
            for schema, table in references:
                connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                connection.execute(f'CREATE VIEW "{schema}"."{table}" AS {self._table_sql(schema, table, Path(folder))}')
            relation = connection.sql(sql)
            names = relation.columns
            return [dict(zip(names, (_athena_text(value) for value in row))) for row in relation.fetchall()]

    def _table_sql(self, database: str, table: str, folder: Path) -> str:
        entry = self.glue_tables.get((database, table))
        if entry is None:
            raise ValueError(f"Table {database}.{table} does not exist in the fake Glue catalog")
        bucket, _, prefix = entry["location"].removeprefix("s3://").partition("/")
        paths = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
            for item in page.get("Contents", []):
                path = folder / f"{len(paths)}.parquet"
                path.write_bytes(self.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                paths.append(str(path))
        if paths:
            return f"SELECT * FROM read_parquet({paths!r}, union_by_name = true)"
        columns = [
            f'CAST(NULL AS {DUCKDB_TYPES[d["FeatureType"]]}) AS "{d["FeatureName"].lower()}"'
            for d in entry["feature_definitions"]
        ]
        columns += ["CAST(NULL AS TIMESTAMP) AS write_time", "CAST(NULL AS TIMESTAMP) AS api_invocation_time"]
        return f"SELECT {', '.join(columns)}, CAST(NULL AS BOOLEAN) AS is_deleted WHERE false"


# Value helpers


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def _check_value(feature_type: str, name: str, text: str) -> None:
    try:
        if feature_type == "Integral":
            int(text)
        elif feature_type == "Fractional" and not np.isfinite(float(text)):
            raise ValueError(text)
    except ValueError:
        raise _ServiceError("ValidationError", f"{text!r} is not a valid {feature_type} value for {name}") from None


def _typed(feature_type: str, text: str | None) -> Any:
    if text is None:
        return None
    if feature_type == "Integral":
        return int(text)
    if feature_type == "Fractional":
        return float(text)
    return text


def _selected(record: list[dict[str, Any]], names: list[str] | None) -> list[dict[str, Any]]:
    if names is None:
        return copy.deepcopy(record)
    return [copy.deepcopy(value) for value in record if value["FeatureName"] in names]


def _parse_event_time(text: str) -> float:
    for pattern in EVENT_TIME_FORMATS:
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    try:
        return float(text)
    except ValueError:
        raise _ServiceError("ValidationError", f"EventTime {text!r} is neither ISO-8601 nor epoch seconds") from None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _athena_text(value: Any) -> str | None:
    """Render a value as Athena's GetQueryResults does."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != 0 and not 1e-3 <= abs(value) < 1e7:
            mantissa, exponent = np.format_float_scientific(value, unique=True).split("e")
            mantissa = mantissa + "0" if mantissa.endswith(".") else mantissa
            return f"{mantissa}E{int(exponent)}"
        return repr(value)
    return str(value)
