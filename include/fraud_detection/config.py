"""Deployment settings, read from environment variables.

Every process of the product (the command line, Airflow tasks, the local endpoint runtime)
builds its settings from the same variables, so they all agree on the backend and on where
the local state lives:

- ``FRAUD_DETECTION_BACKEND``: ``local`` (default) or ``aws``.
- ``FRAUD_DETECTION_HOME``: folder of the local backend's state (source datastore, feature
  store, model registry, endpoints, batch transform output). Defaults to ``var/`` in a source
  checkout, else ``~/.fraud-detection``.
- ``FRAUD_DETECTION_LABEL_DELAY_DAYS``: days until a transaction's fraud label is known (7).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fraud_detection.errors import ConfigurationError

BACKENDS = ("local", "aws")


def _default_home() -> Path:
    project_root = Path(__file__).resolve().parents[2]
    if (project_root / "pyproject.toml").is_file():
        return project_root / "var"
    return Path.home() / ".fraud-detection"


@dataclass(frozen=True)
class Settings:
    """Settings shared by every component; paths are those of the local backend."""

    backend: str = "local"
    home: Path = field(default_factory=_default_home)
    label_delay_days: int = 7

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
        )

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
