"""The stores an ingest can write to, checked without importing pandas (DAG files use it at parse time)."""

from __future__ import annotations

TARGET_STORES = ("online", "offline")


def check_target_stores(target_stores) -> tuple[str, ...]:
    """Return the target stores as a tuple, or raise ``ValueError`` naming the bad value."""
    if isinstance(target_stores, str):
        target_stores = (target_stores,)
    target_stores = tuple(target_stores)
    if not target_stores or set(target_stores) - set(TARGET_STORES):
        raise ValueError(f"Invalid target stores target_stores={target_stores!r}: use 'online', 'offline' or both.")
    return target_stores
