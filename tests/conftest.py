"""Test-wide settings: Airflow and the local backend point at a throwaway folder.

The variables are set when pytest loads this file, before any test imports Airflow, which
reads its configuration at import time.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The handbook's data is read from ../shared beside the checkout, or from FRAUD_DETECTION_TEST_DATA.
HANDBOOK_DATA = Path(
    os.environ.get(
        "FRAUD_DETECTION_TEST_DATA",
        PROJECT_ROOT.parent / "shared" / "data" / "fraud-detection-handbook-simulated" / "transactions.csv.gz",
    )
)

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="fraud-detection-tests-"))
os.environ["FRAUD_DETECTION_HOME"] = str(_SESSION_HOME / "fraud")
os.environ["FRAUD_DETECTION_BACKEND"] = "local"
os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(PROJECT_ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["GX_ANALYTICS_ENABLED"] = "false"


@pytest.fixture(scope="session")
def handbook_data() -> Path:
    """Path of the handbook's transactions; skips the test where the shared data is absent."""
    if not HANDBOOK_DATA.is_file():
        pytest.skip(
            f"Real data not found at {HANDBOOK_DATA}: place the Fraud Detection Handbook's "
            "transactions.csv.gz there, or set FRAUD_DETECTION_TEST_DATA to its path, to run this test."
        )
    return HANDBOOK_DATA
