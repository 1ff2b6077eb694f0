"""Exceptions of the domain library. Each message names the object and the next step."""

from __future__ import annotations


class FraudDetectionError(Exception):
    """Base class of every error raised on purpose by this package."""


class ConfigurationError(FraudDetectionError):
    """A deployment setting is missing or invalid."""


class SourceDataError(FraudDetectionError):
    """Input transactions could not be read, or too many of them were malformed."""


class FeatureGroupNotFoundError(FraudDetectionError):
    def __init__(self, name: str):
        super().__init__(
            f"Feature group {name!r} not found. Check the name (the declared groups are listed in "
            "docs/features.md), or create it first with CreateFeatureGroupOperator."
        )
        self.name = name


class FeatureGroupDefinitionMismatchError(FraudDetectionError):
    def __init__(self, name: str, differences: list[str]):
        joined = "; ".join(differences)
        super().__init__(
            f"Feature group {name!r} already exists with a different definition ({joined}). "
            "Delete it, or create the new definition under a new name."
        )
        self.name = name
        self.differences = differences


class IngestError(FraudDetectionError):
    """Too many records of an ingest were rejected."""


class ModelNotFoundError(FraudDetectionError):
    """No registered model version matches the request."""


class ValidationFailedError(FraudDetectionError):
    """A data quality or consistency check failed, with the statistics in ``result``."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


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
