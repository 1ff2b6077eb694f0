"""An ingest killed with SIGKILL half way, then rerun, ends with exactly the right records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fraud_detection.features.catalog import CARD_RECENT_ACTIVITY
from fraud_detection.stores.local import LocalFeatureStore

ROWS = 40_000
HOURS = 400

INGEST_SCRIPT = """
import sys
from pathlib import Path
import pandas as pd
from fraud_detection.features.catalog import CARD_RECENT_ACTIVITY
from fraud_detection.stores.local import LocalFeatureStore
root = Path(sys.argv[1])
store = LocalFeatureStore(root / "store", root / "quarantine")
store.create_feature_group(CARD_RECENT_ACTIVITY)
print("ready", flush=True)
store.ingest(CARD_RECENT_ACTIVITY.name, pd.read_parquet(root / "records.parquet"), ingest_id="replay-1")
print("done", flush=True)
"""


def _records() -> pd.DataFrame:
    generator = np.random.default_rng(3)
    hours = generator.integers(0, HOURS, ROWS)
    return pd.DataFrame(
        {
            "card_id": np.arange(ROWS, dtype=np.int64) % 5000,
            "event_time": 1_530_000_000.0 + hours * 3600.0 + np.arange(ROWS) % 3600,
            "recent_transactions": ['{"events":[],"anchor":null}'] * ROWS,
            "transaction_count": np.arange(ROWS, dtype=np.int64),
        }
    )


def _kill_mid_ingest(root: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", INGEST_SCRIPT, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "ready"
    offline = root / "store" / "offline-store"
    deadline = time.monotonic() + 60
    # Kill as soon as some, but not all, partitions are written.
    while time.monotonic() < deadline and len(list(offline.rglob("*.parquet"))) < 20:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def test_killed_ingest_rerun_is_exact(tmp_path):
    records = _records()
    records.to_parquet(tmp_path / "records.parquet")
    _kill_mid_ingest(tmp_path)
    written_before_rerun = len(list((tmp_path / "store" / "offline-store").rglob("*.parquet")))
    store = LocalFeatureStore(tmp_path / "store", tmp_path / "quarantine")

    store.ingest(CARD_RECENT_ACTIVITY.name, records, ingest_id="replay-1")

    assert 0 < written_before_rerun < HOURS
    offline = store.read_offline(CARD_RECENT_ACTIVITY.name)
    expected = records.sort_values(["event_time", "card_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(offline, expected, check_dtype=False)
    latest = records.sort_values("event_time").groupby("card_id").tail(1)
    online = store.get_records({CARD_RECENT_ACTIVITY.name: latest["card_id"].tolist()})[CARD_RECENT_ACTIVITY.name]
    assert {k: v["event_time"] for k, v in online.items()} == dict(zip(latest["card_id"], latest["event_time"]))
    assert list((tmp_path / "store").rglob("*.inprogress")) == []
