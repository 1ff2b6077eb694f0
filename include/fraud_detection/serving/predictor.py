"""Define the contract between the local serving runtime and model code.

The runtime loads model code through ``load_predictor`` and calls ``predict``
once per transaction. Model code raises ``InvalidRequestError`` for a request
that it cannot score, so the runtime can respond with HTTP 400 and the field name.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["InvalidRequestError", "Predictor", "load_predictor", "parse_entry_point"]

# "package.module:factory", the same form as a setuptools entry point object reference.
_ENTRY_POINT_PATTERN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


class InvalidRequestError(ValueError):
    """A request body that cannot be scored; `field` names the bad field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@runtime_checkable
class Predictor(Protocol):
    """Model code that scores one transaction per predict call.

    The runtime calls predict from up to MaxConcurrency request threads at once,
    so predict must be thread-safe (for example, one DuckDB cursor per call).
    """

    def predict(self, payload: dict) -> dict:
        """Score one transaction, raising InvalidRequestError for a bad field."""
        ...


def parse_entry_point(entry_point: str) -> tuple[str, str]:
    """Split "package.module:factory" into the module and factory names, or raise ValueError if malformed."""
    if not isinstance(entry_point, str) or not _ENTRY_POINT_PATTERN.match(entry_point):
        raise ValueError(
            f"Invalid entry point {entry_point!r}: expected 'package.module:factory', "
            "for example 'fraud_detection.serving.model:load'."
        )
    module_name, _, factory_name = entry_point.partition(":")
    return module_name, factory_name


def load_predictor(entry_point: str, model_dir: Path, environment: Mapping[str, str]) -> Predictor:
    """Import the factory named by entry_point and build a predictor with it.

    entry_point is "package.module:factory", and ``factory(model_dir, environment)``
    returns a Predictor. environment mirrors the string map of a SageMaker model's
    ``Environment``. Raises ValueError for a malformed entry point, ImportError
    when the module cannot be imported, AttributeError when the factory is
    missing, and TypeError when the factory or its result has the wrong type.
    Errors raised by the factory itself propagate unchanged.
    """
    module_name, factory_name = parse_entry_point(entry_point)

    # NOTE: import_module returns the module cached in sys.modules, so a changed
    # source file on disk is picked up only by a new runtime process.
    module = importlib.import_module(module_name)
    factory = getattr(module, factory_name, None)
    if factory is None:
        raise AttributeError(f"Entry point {entry_point!r}: module {module_name!r} has no attribute {factory_name!r}.")
    if not callable(factory):
        raise TypeError(f"Entry point {entry_point!r}: {factory_name!r} is not callable.")

    predictor = factory(Path(model_dir), dict(environment))
    if not callable(getattr(predictor, "predict", None)):
        raise TypeError(
            f"Entry point {entry_point!r} returned {type(predictor).__name__}, which has no predict(payload) method."
        )
    return predictor
