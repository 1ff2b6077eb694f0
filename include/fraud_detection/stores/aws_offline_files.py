"""A local copy of the aws backend's offline store files.

SageMaker writes each feature group's offline store as Parquet files under an S3 prefix.
``sync_offline_files`` mirrors them to a local folder, downloading only new or changed
objects, so that DuckDB can read them with the local offline store's SQL.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

log = logging.getLogger(__name__)


def sync_offline_files(s3: Any, cache_root: Path, name: str, resolved_uri: str) -> Path:
    """Mirror the Parquet files under ``resolved_uri`` to a folder under ``cache_root`` and return that folder.

    A manifest keeps each file's ETag, so only new or changed objects are downloaded, and
    local files whose object is gone are removed.
    """
    bucket, prefix = split_s3_uri(resolved_uri)
    prefix = prefix.rstrip("/") + "/"
    location = cache_root / name / hashlib.sha256(resolved_uri.encode()).hexdigest()[:16]
    data_root = location / "data"
    manifest_path = location / "manifest.json"
    manifest: dict[str, str] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}

    listed: dict[str, str] = {}
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :]
            if not relative.endswith(".parquet"):
                continue
            if not _is_safe_relative_path(relative):
                log.warning("Skipped offline store object %s: its key leaves the group's folder", item["Key"])
                continue
            listed[relative] = item["ETag"]

    downloaded = 0
    for relative, etag in listed.items():
        target = data_root / relative
        if manifest.get(relative) == etag and target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.download")
        try:
            s3.download_file(bucket, prefix + relative, str(temporary))
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        manifest[relative] = etag
        downloaded += 1
    removed = 0
    for relative in set(manifest) - set(listed):
        (data_root / relative).unlink(missing_ok=True)
        del manifest[relative]
        removed += 1

    location.mkdir(parents=True, exist_ok=True)
    temporary_manifest = manifest_path.with_suffix(".json.tmp")
    temporary_manifest.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(temporary_manifest, manifest_path)
    log.info(
        "Synced the offline store of %s from %s: %d files downloaded, %d unchanged, %d removed",
        name, resolved_uri, downloaded, len(listed) - downloaded, removed,
    )
    return location


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Return (bucket, key prefix) of an ``s3://bucket/prefix`` URI."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise ValueError(f"Invalid S3 URI {uri!r}: use s3://bucket/prefix.")
    return bucket, prefix


def _is_safe_relative_path(relative: str) -> bool:
    path = PurePosixPath(relative)
    return not path.is_absolute() and ".." not in path.parts and bool(path.parts)
