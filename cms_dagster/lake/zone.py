"""The lake's zones (raw, processed, archive): a local directory or an S3 prefix, with one key layout
(cms_dagster/lake/layout.py).

Local writes are atomic and durable (temporary file, fsync, rename, fsync of the directory), so a reader
never sees half a file and an acknowledged write survives a crash. S3 writes are single PUTs (atomic by
nature). Keys always use ``/``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cms_dagster.lake.layout import SOURCES, raw_hour_prefix


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip (no name, mtime 0): same input, same bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6, filename="") as f:
        f.write(data)
    return buf.getvalue()


_S3_CLIENTS: dict[tuple, Any] = {}


def _s3_client() -> Any:
    """One S3 client per endpoint/region/credentials (clients are thread-safe and costly to build)."""
    from cms_dagster.lake.aws import client
    from cms_dagster.settings import aws_identity

    key = aws_identity()
    if key not in _S3_CLIENTS:
        _S3_CLIENTS[key] = client("s3")
    return _S3_CLIENTS[key]


class LakeSymlinkError(ValueError):
    """A local zone holds a symbolic link where a key's file or directory should be."""


@dataclass(frozen=True)
class Zone:
    """One zone of the lake at ``url`` (a local path or ``s3://bucket/prefix``)."""

    url: str

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    def _bucket_prefix(self) -> tuple[str, str]:
        rest = self.url[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        return bucket, prefix.strip("/")

    def _s3_key(self, key: str) -> str:
        _, prefix = self._bucket_prefix()
        return f"{prefix}/{key}" if prefix else key

    def _s3(self) -> Any:
        return _s3_client()

    def path(self, key: str) -> Path:
        """The local path of ``key``; refuses keys that leave the zone (``..``, absolute) and any symlink
        between the zone's root and the key (a link could copy or overwrite a file outside the lake)."""
        if self.is_s3:
            raise ValueError(f"{self.url} is on S3: no local path for {key}")
        parts = [p for p in key.split("/") if p not in ("", ".")]
        if ".." in parts or key.startswith("/"):
            raise ValueError(f"lake key {key!r} leaves the zone: keys are relative, without '..'")
        p = Path(self.url)
        for part in parts:
            p = p / part
            if p.is_symlink():
                raise LakeSymlinkError(
                    f"{p} is a symbolic link: lake zones hold no links; replace it with the file or directory itself"
                )
        return p

    def uri(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{key}"

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` atomically and durably."""
        if self.is_s3:
            bucket, _ = self._bucket_prefix()
            self._s3().put_object(Bucket=bucket, Key=self._s3_key(key), Body=data)
            return
        target = self.path(key)
        tmp = _durable_temp(target, data)
        try:
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def put_new(self, key: str, data: bytes) -> bool:
        """Write ``data`` at ``key`` only if nothing is there yet (never replaces): True when written.

        Local zones link a durable temporary file into place (atomic, fails if the key exists); S3 uses a
        conditional PUT (``If-None-Match: *``). Quarantine is written this way, so it only ever grows.
        """
        if self.is_s3:
            bucket, _ = self._bucket_prefix()
            try:
                self._s3().put_object(Bucket=bucket, Key=self._s3_key(key), Body=data, IfNoneMatch="*")
            except Exception as e:  # botocore ClientError 412: the key exists
                code = getattr(e, "response", {}).get("Error", {}).get("Code")
                if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    return False
                raise
            return True
        target = self.path(key)
        tmp = _durable_temp(target, data)
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(target.parent)
        return True

    def get(self, key: str) -> bytes:
        if self.is_s3:
            bucket, _ = self._bucket_prefix()
            return self._s3().get_object(Bucket=bucket, Key=self._s3_key(key))["Body"].read()
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        if self.is_s3:
            bucket, _ = self._bucket_prefix()
            try:
                self._s3().head_object(Bucket=bucket, Key=self._s3_key(key))
                return True
            except Exception as e:  # botocore ClientError 404
                if getattr(e, "response", {}).get("Error", {}).get("Code") in (
                    "404",
                    "NoSuchKey",
                    "NotFound",
                ):
                    return False
                raise
        return self.path(key).exists()

    def delete(self, key: str) -> None:
        if self.is_s3:
            bucket, _ = self._bucket_prefix()
            self._s3().delete_object(Bucket=bucket, Key=self._s3_key(key))
        else:
            self.path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix`` (relative to the zone), sorted."""
        if self.is_s3:
            bucket, zprefix = self._bucket_prefix()
            full = f"{zprefix}/{prefix}" if zprefix else prefix
            strip = len(zprefix) + 1 if zprefix else 0
            keys = []
            for page in self._s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=full):
                keys.extend(o["Key"][strip:] for o in page.get("Contents", []))
            yield from sorted(keys)
            return
        root = Path(self.url)
        base = root / prefix
        # list the deepest existing directory of the prefix, then filter by the full prefix
        start = base if base.is_dir() else base.parent
        if not start.exists():
            return
        p = root
        for part in start.relative_to(root).parts:
            p = p / part
            if p.is_symlink():  # a linked directory is not part of the lake
                return
        out = []
        for dirpath, _, files in os.walk(start):  # does not descend into linked directories
            for fn in files:
                if fn.startswith(".tmp-") or os.path.islink(os.path.join(dirpath, fn)):
                    continue  # links are not part of the lake (see path)
                rel = Path(dirpath, fn).relative_to(root).as_posix()
                if rel.startswith(prefix):
                    out.append(rel)
        yield from sorted(out)


@dataclass(frozen=True)
class Lake:
    raw: Zone
    processed: Zone
    archive: Zone

    @classmethod
    def from_settings(cls, settings: Any) -> Lake:
        """The zones of a :class:`cms_dagster.settings.Settings` (``CMS_RAW_URL``, ``CMS_PROCESSED_URL``, ``CMS_ARCHIVE_URL``)."""
        s = settings
        return cls(Zone(s.raw_url), Zone(s.processed_url), Zone(s.archive_url))

    def raw_keys_for_hour(self, day: dt.date, hour: int) -> list[str]:
        keys = []
        for source in SOURCES:
            keys.extend(k for k in self.raw.list(raw_hour_prefix(source, day, hour)) if k.endswith(".jsonl.gz"))
        return keys


def _durable_temp(target: Path, data: bytes) -> Path:
    """``data`` in a new temporary file beside ``target``, flushed to disk (the caller moves it into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _fsync_dir(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable."""
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
