"""Turn errors that a retry cannot fix into immediate task failures."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def fail_without_retry(*error_types: type[BaseException]):
    """Re-raise the given errors as ``AirflowFailException``, so Airflow does not retry the task.

    Use it around steps whose failure depends only on their input, such as invalid
    parameters or data that fails validation, because retrying them only delays the same error.
    """
    try:
        yield
    except error_types as error:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{type(error).__name__}: {error}") from error
