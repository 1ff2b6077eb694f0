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
            f"Feature group {name!r} not found. Create it first "
            "(CreateFeatureGroupOperator or FeatureStore.create_feature_group)."
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
