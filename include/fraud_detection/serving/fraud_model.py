"""The fraud model's inference entry point: ``fraud_detection.serving.fraud_model:load``.

An endpoint runtime calls :func:`load` with the model folder and the model's environment,
then ``predict`` once per transaction. The predictor reads the card's and terminal's features
from the online store, enriches the request and returns the fraud score.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from fraud_detection.config import Settings
from fraud_detection.serving.online_features import build_online_feature_frame, parse_request
from fraud_detection.stores import open_feature_store
from fraud_detection.training.train import load_booster, predict

log = logging.getLogger(__name__)

ENTRY_POINT = "fraud_detection.serving.fraud_model:load"


class FraudPredictor:
    """Score one transaction with the booster and the online store's features."""

    def __init__(self, model_dir: Path, environment: dict[str, str]):
        self.booster = load_booster(model_dir)
        card = json.loads((model_dir / "model-card.json").read_text())
        self.model_name = environment.get("MODEL_NAME", card.get("model_name", model_dir.name))
        # The model's environment wins over the runtime process's own variables.
        self.store = open_feature_store(Settings.from_mapping({**os.environ, **environment}))

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        request = parse_request(payload)
        frame = build_online_feature_frame(self.store, [request])
        score = float(predict(self.booster, frame)[0])
        return {"transaction_id": request.transaction_id, "fraud_score": score, "model": self.model_name}


def load(model_dir: Path, environment: dict[str, str]) -> FraudPredictor:
    return FraudPredictor(Path(model_dir), environment)
