"""The local model registry: versioned model packages with metrics and an approval status.

It mirrors SageMaker Model Registry: a model package group contains numbered versions, each with
its artifacts, evaluation metrics and ``Approved`` / ``Rejected`` status. Each version is
written to a temporary folder and renamed, so a reader never sees half a version.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fraud_detection.errors import ModelNotFoundError

log = logging.getLogger(__name__)

APPROVED = "Approved"
REJECTED = "Rejected"
DEFAULT_GROUP = "card-fraud-xgboost"


@dataclass(frozen=True)
class ModelVersion:
    group: str
    version: int
    path: Path
    status: str
    metrics: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def model_name(self) -> str:
        return f"{self.group}-v{self.version}"


class LocalModelRegistry:
    """Model package groups under one folder; see the module docstring."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def register(
        self, group: str, artifacts: Path, *, metrics: dict[str, Any], metadata: dict[str, Any], status: str
    ) -> ModelVersion:
        """Copy ``artifacts`` into a new version of ``group`` and return it."""
        if status not in (APPROVED, REJECTED):
            raise ValueError(f"Invalid approval status {status!r}: use {APPROVED!r} or {REJECTED!r}.")
        group_root = self.root / group
        group_root.mkdir(parents=True, exist_ok=True)
        temporary = group_root / f".incoming-{uuid.uuid4().hex}"
        shutil.copytree(artifacts, temporary)
        package = {
            "status": status,
            "metrics": metrics,
            "metadata": metadata,
            "registered_at": datetime.now(timezone.utc).isoformat(),
        }
        (temporary / "model-package.json").write_text(json.dumps(package, indent=2, default=str))
        while True:
            version = self._next_version(group_root)
            try:
                os.rename(temporary, group_root / f"{version:06d}")
                break
            except OSError:
                if not (group_root / f"{version:06d}").exists():
                    raise
        log.info("Registered %s version %d (%s), metrics %s", group, version, status, metrics)
        return self.get(group, version)

    def get(self, group: str, version: int) -> ModelVersion:
        path = self.root / group / f"{version:06d}"
        package_file = path / "model-package.json"
        if not package_file.exists():
            raise ModelNotFoundError(f"Model package {group} version {version} not found under {self.root}.")
        package = json.loads(package_file.read_text())
        return ModelVersion(group, version, path, package["status"], package["metrics"], package["metadata"])

    def versions(self, group: str) -> list[int]:
        group_root = self.root / group
        if not group_root.exists():
            return []
        return sorted(int(p.name) for p in group_root.iterdir() if p.name.isdigit())

    def latest(self, group: str = DEFAULT_GROUP, *, approved_only: bool = True) -> ModelVersion:
        """Return the newest version, by default the newest approved one."""
        for version in reversed(self.versions(group)):
            model = self.get(group, version)
            if model.status == APPROVED or not approved_only:
                return model
        qualifier = "approved " if approved_only else ""
        raise ModelNotFoundError(
            f"No {qualifier}model in package group {group!r} under {self.root}. Run the retrain_and_deploy DAG first."
        )

    @staticmethod
    def _next_version(group_root: Path) -> int:
        existing = [int(p.name) for p in group_root.iterdir() if p.name.isdigit()]
        return max(existing, default=0) + 1
