"""Unit tests for the local model registry and the training window plan."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from fraud_detection.errors import ModelNotFoundError
from fraud_detection.training.registry import APPROVED, REJECTED, LocalModelRegistry
from fraud_detection.training.train import TrainingWindows, plan_windows

GROUP = "card-fraud-test"


@pytest.fixture
def artifacts(tmp_path) -> Path:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"trees": []}))
    return folder


@pytest.fixture
def registry(tmp_path) -> LocalModelRegistry:
    return LocalModelRegistry(tmp_path / "registry")


def register(registry: LocalModelRegistry, artifacts: Path, status: str, average_precision: float = 0.5):
    return registry.register(
        GROUP,
        artifacts,
        metrics={"average_precision": average_precision},
        metadata={"training_rows": 100},
        status=status,
    )


# Model registry


def test_versions_increment(registry, artifacts):
    first = register(registry, artifacts, APPROVED)
    second = register(registry, artifacts, REJECTED)
    third = register(registry, artifacts, APPROVED)

    assert [first.version, second.version, third.version] == [1, 2, 3]
    assert registry.versions(GROUP) == [1, 2, 3]


def test_register_copies_artifacts(registry, artifacts):
    model = register(registry, artifacts, APPROVED)

    assert json.loads((model.path / "model.json").read_text()) == {"trees": []}


def test_register_keeps_metrics_and_metadata(registry, artifacts):
    register(registry, artifacts, APPROVED, average_precision=0.73)

    model = registry.get(GROUP, 1)

    assert model.metrics == {"average_precision": 0.73}
    assert model.metadata == {"training_rows": 100}


def test_model_name_includes_version(registry, artifacts):
    register(registry, artifacts, APPROVED)
    model = register(registry, artifacts, APPROVED)

    assert model.model_name == f"{GROUP}-v2"


def test_latest_skips_rejected(registry, artifacts):
    register(registry, artifacts, APPROVED)
    register(registry, artifacts, APPROVED)
    register(registry, artifacts, REJECTED)

    latest = registry.latest(GROUP)

    assert latest.version == 2
    assert latest.status == APPROVED


def test_latest_any_status_returns_newest(registry, artifacts):
    register(registry, artifacts, APPROVED)
    register(registry, artifacts, REJECTED)

    latest = registry.latest(GROUP, approved_only=False)

    assert latest.version == 2


def test_latest_all_rejected_raises(registry, artifacts):
    register(registry, artifacts, REJECTED)

    with pytest.raises(ModelNotFoundError, match=f"No approved model in package group '{GROUP}'"):
        registry.latest(GROUP)


def test_latest_empty_group_raises(registry):
    with pytest.raises(ModelNotFoundError, match="retrain_and_deploy"):
        registry.latest(GROUP)


def test_get_missing_version_raises(registry, artifacts):
    register(registry, artifacts, APPROVED)

    with pytest.raises(ModelNotFoundError, match=f"{GROUP} version 7 not found"):
        registry.get(GROUP, 7)


def test_invalid_status_raises(registry, artifacts):
    with pytest.raises(ValueError, match="Invalid approval status 'PendingManualApproval'"):
        register(registry, artifacts, "PendingManualApproval")


def test_invalid_status_writes_nothing(registry, artifacts):
    with pytest.raises(ValueError):
        register(registry, artifacts, "approved")

    assert registry.versions(GROUP) == []


def test_registry_reopened_sees_versions(registry, artifacts):
    register(registry, artifacts, APPROVED)

    reopened = LocalModelRegistry(registry.root)

    assert reopened.latest(GROUP).version == 1


# Training windows

DATA_START = datetime(2018, 4, 1)
AS_OF = datetime(2018, 7, 1)


def test_windows_gap_is_label_delay():
    windows = plan_windows(data_start=DATA_START, as_of=AS_OF, label_delay_days=7)

    assert AS_OF - windows.test_end == timedelta(days=7)
    assert windows.test_start - windows.train_end == timedelta(days=7)


def test_windows_test_length():
    windows = plan_windows(data_start=DATA_START, as_of=AS_OF, label_delay_days=7, test_days=10)

    assert windows.test_end - windows.test_start == timedelta(days=10)


def test_windows_start_after_burn_in():
    windows = plan_windows(data_start=DATA_START, as_of=AS_OF, label_delay_days=7, burn_in_days=14)

    assert windows.train_start == DATA_START + timedelta(days=14)


def test_windows_capped_by_training_days():
    windows = plan_windows(data_start=DATA_START, as_of=AS_OF, label_delay_days=7, training_days=21)

    assert windows.train_end - windows.train_start == timedelta(days=21)


def test_windows_cap_never_precedes_burn_in():
    windows = plan_windows(
        data_start=DATA_START, as_of=AS_OF, label_delay_days=7, burn_in_days=7, training_days=365
    )

    assert windows.train_start == DATA_START + timedelta(days=7)


def test_windows_zero_delay_adjacent():
    windows = plan_windows(data_start=DATA_START, as_of=AS_OF, label_delay_days=0)

    assert windows.test_end == AS_OF
    assert windows.train_end == windows.test_start


def test_windows_without_room_raise():
    # 7 days burn-in + 7 days delay + 7 days test + 7 days delay leaves no training day in 28 days.
    as_of = DATA_START + timedelta(days=28)

    with pytest.raises(ValueError, match="No room for a training window") as raised:
        plan_windows(data_start=DATA_START, as_of=as_of, label_delay_days=7)

    assert "FRAUD_DETECTION_LABEL_DELAY_DAYS" in str(raised.value)


def test_windows_one_day_room_fits():
    as_of = DATA_START + timedelta(days=29)

    windows = plan_windows(data_start=DATA_START, as_of=as_of, label_delay_days=7)

    assert windows.train_end - windows.train_start == timedelta(days=1)


def test_windows_dict_round_trip():
    windows = plan_windows(data_start=DATA_START, as_of=AS_OF, label_delay_days=7)

    assert TrainingWindows.from_dict(windows.as_dict()) == windows
