"""Provide a tiny predictor for the endpoint runtime tests.

The runtime process imports it as "endpoint_fixtures:make_predictor", so this
folder must be on the PYTHONPATH that the runtime inherits. The model folder
contains model.json with a version and a factor. Environment variables control
the test behaviour:

- PREDICT_SLEEP_SECONDS: time each predict call sleeps, to hold requests in flight.
- LOAD_SLEEP_SECONDS: time the factory sleeps, to make loads observable.
- FAIL_LOAD: if set, the factory raises RuntimeError with this message.
- ALLOCATE_MB: megabytes of memory that the predictor fills, to test the memory limit.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from fraud_detection.serving.predictor import InvalidRequestError

ENTRY_POINT = "endpoint_fixtures:make_predictor"


class ScalingPredictor:
    """Score a transaction as amount * factor and report the model version."""

    def __init__(self, model_dir: Path, environment: dict[str, str]):
        if environment.get("FAIL_LOAD"):
            raise RuntimeError(environment["FAIL_LOAD"])
        model = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
        self.version = model["version"]
        self.factor = model["factor"]
        self.predict_sleep_seconds = float(environment.get("PREDICT_SLEEP_SECONDS", "0"))
        # Filling the bytes (not only allocating them) makes them count as resident memory.
        self.ballast = b"\x01" * (int(environment.get("ALLOCATE_MB", "0")) * 1024 * 1024)
        time.sleep(float(environment.get("LOAD_SLEEP_SECONDS", "0")))

    def predict(self, payload: dict) -> dict:
        """Return the score of one transaction; raise InvalidRequestError if amount is missing or not a number."""
        if "amount" not in payload:
            raise InvalidRequestError("amount", "is required.")
        amount = payload["amount"]
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise InvalidRequestError("amount", f"must be a number, not {type(amount).__name__}.")
        if payload.get("fail"):
            raise RuntimeError("the test predictor failed on request")
        time.sleep(self.predict_sleep_seconds)
        return {"score": amount * self.factor, "model_version": self.version}


def make_predictor(model_dir: Path, environment: dict[str, str]) -> ScalingPredictor:
    """Build the test predictor from model_dir/model.json."""
    return ScalingPredictor(model_dir, environment)


def write_model(model_dir: Path, version: str, factor: float = 2.0) -> Path:
    """Write model.json for the test predictor and return the folder."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.json").write_text(json.dumps({"version": version, "factor": factor}), encoding="utf-8")
    return model_dir
