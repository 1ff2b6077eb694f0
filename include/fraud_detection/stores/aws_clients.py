"""Clients and settings of the aws backend.

``FeatureStoreClients`` bundles the boto3 clients and the Athena query runner that
``SageMakerFeatureStore`` calls, and ``default_clients`` builds them from boto3's default
session. ``SageMakerFeatureStoreConfig`` contains the backend's settings: the IAM role and S3
locations, the local folders, and the thread, retry and timeout limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraud_detection.errors import ConfigurationError
from fraud_detection.stores.athena import AthenaQuery, AthenaQueryRunner


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
