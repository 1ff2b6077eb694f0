"""Deployment settings, read from environment variables.

Every process of the product (the command line, Airflow tasks, the local endpoint runtime)
builds its settings from the same variables, so they all agree on the backend and on where
the local state lives:

- ``FRAUD_DETECTION_BACKEND``: ``local`` (default) or ``aws``.
- ``FRAUD_DETECTION_HOME``: folder of the local backend's state (source datastore, feature
  store, model registry, endpoints, batch transform output). Defaults to ``var/`` in a source
  checkout, else ``~/.fraud-detection``.
- ``FRAUD_DETECTION_LABEL_DELAY_DAYS``: days until a transaction's fraud label is known (7).

The ``aws`` backend also reads these, and fails with ``ConfigurationError`` naming the
missing one when a feature store is opened without them:

- ``FRAUD_DETECTION_SAGEMAKER_ROLE_ARN``: IAM role SageMaker Feature Store assumes to write the
  offline store (``CreateFeatureGroup``'s ``RoleArn``).
- ``FRAUD_DETECTION_OFFLINE_STORE_S3_URI``: ``s3://bucket/prefix`` under which SageMaker writes
  each feature group's offline store.
- ``FRAUD_DETECTION_ATHENA_OUTPUT_S3_URI``: ``s3://bucket/prefix`` where Athena writes the
  results of offline store queries.
- ``AWS_DEFAULT_REGION``: the region, read as boto3 reads it. Inside Airflow, the AWS
  connection's ``region_name`` takes precedence.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fraud_detection.errors import ConfigurationError

BACKENDS = ("local", "aws")
# The role ARN pattern is CreateFeatureGroup's RoleArn rule in the botocore 1.44.8 service model.
ROLE_ARN_PATTERN = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
S3_URI_PATTERN = re.compile(r"s3://[^/]+(/.*)?")
MAX_S3_URI_LENGTH = 1024


def _default_home() -> Path:
    project_root = Path(__file__).resolve().parents[2]
    if (project_root / "pyproject.toml").is_file():
        return project_root / "var"
    return Path.home() / ".fraud-detection"


@dataclass(frozen=True)
class Settings:
    """Settings shared by every component. The paths are those of the local backend."""

    backend: str = "local"
    home: Path = field(default_factory=_default_home)
    label_delay_days: int = 7
    sagemaker_role_arn: str | None = None
    offline_store_s3_uri: str | None = None
    athena_output_s3_uri: str | None = None
    aws_region: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigurationError(
                f"Invalid FRAUD_DETECTION_BACKEND {self.backend!r}: use one of {', '.join(BACKENDS)}."
            )
        if self.label_delay_days < 0:
            raise ConfigurationError(
                f"Invalid FRAUD_DETECTION_LABEL_DELAY_DAYS {self.label_delay_days}: "
                "use a whole number of days, 0 or more."
            )

    @classmethod
    def from_env(cls) -> Settings:
        """Build the settings from the ``FRAUD_DETECTION_*`` environment variables."""
        return cls.from_mapping(os.environ)

    @classmethod
    def from_mapping(cls, environment: Mapping[str, str]) -> Settings:
        """Build the settings from a mapping of ``FRAUD_DETECTION_*`` variables, such as a model's environment."""
        home = environment.get("FRAUD_DETECTION_HOME")
        delay = environment.get("FRAUD_DETECTION_LABEL_DELAY_DAYS", "7")
        try:
            label_delay_days = int(delay)
        except ValueError:
            raise ConfigurationError(
                f"Invalid FRAUD_DETECTION_LABEL_DELAY_DAYS {delay!r}: use a whole number of days."
            ) from None
        return cls(
            backend=environment.get("FRAUD_DETECTION_BACKEND", "local"),
            home=Path(home).expanduser().resolve() if home else _default_home(),
            label_delay_days=label_delay_days,
            sagemaker_role_arn=environment.get("FRAUD_DETECTION_SAGEMAKER_ROLE_ARN") or None,
            offline_store_s3_uri=environment.get("FRAUD_DETECTION_OFFLINE_STORE_S3_URI") or None,
            athena_output_s3_uri=environment.get("FRAUD_DETECTION_ATHENA_OUTPUT_S3_URI") or None,
            aws_region=environment.get("AWS_DEFAULT_REGION") or None,
        )

    def check_aws_settings(self) -> None:
        """Raise ``ConfigurationError`` naming every aws setting that is missing or invalid."""
        required = {
            "FRAUD_DETECTION_SAGEMAKER_ROLE_ARN": self.sagemaker_role_arn,
            "FRAUD_DETECTION_OFFLINE_STORE_S3_URI": self.offline_store_s3_uri,
            "FRAUD_DETECTION_ATHENA_OUTPUT_S3_URI": self.athena_output_s3_uri,
        }
        missing = [name for name, value in required.items() if not value]
        if missing:
            raise ConfigurationError(
                f"The aws backend needs {', '.join(missing)}: set "
                f"{'it' if len(missing) == 1 else 'them'} in the environment of every process that "
                "opens the feature store (see the config module's docstring)."
            )
        problems = []
        if not ROLE_ARN_PATTERN.fullmatch(self.sagemaker_role_arn):
            problems.append(
                f"FRAUD_DETECTION_SAGEMAKER_ROLE_ARN {self.sagemaker_role_arn!r} is not an IAM role ARN "
                "(arn:aws:iam::<12-digit account>:role/<name>)"
            )
        for name in ("FRAUD_DETECTION_OFFLINE_STORE_S3_URI", "FRAUD_DETECTION_ATHENA_OUTPUT_S3_URI"):
            uri = required[name]
            if len(uri) > MAX_S3_URI_LENGTH or not S3_URI_PATTERN.fullmatch(uri):
                problems.append(f"{name} {uri!r} is not an s3://bucket/prefix URI of at most {MAX_S3_URI_LENGTH} characters")
        if problems:
            raise ConfigurationError("Invalid aws settings: " + ". ".join(problems) + ".")

    @property
    def source_database(self) -> Path:
        return self.home / "source" / "transactions.duckdb"

    @property
    def offline_store_root(self) -> Path:
        return self.home / "feature-store" / "offline-store"

    @property
    def online_store_path(self) -> Path:
        return self.home / "feature-store" / "online-store.sqlite"

    @property
    def offline_store_cache_root(self) -> Path:
        """Local copy of the aws backend's S3 offline store files, read by DuckDB."""
        return self.home / "feature-store" / "offline-store-cache"

    @property
    def staging_root(self) -> Path:
        return self.home / "staging"

    @property
    def quarantine_root(self) -> Path:
        return self.home / "quarantine"

    @property
    def model_registry_root(self) -> Path:
        return self.home / "model-registry"

    @property
    def endpoints_root(self) -> Path:
        return self.home / "endpoints"

    @property
    def batch_transform_root(self) -> Path:
        return self.home / "batch-transform"

    @property
    def reports_root(self) -> Path:
        return self.home / "reports"
