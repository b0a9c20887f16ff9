"""Where snapshots live: an S3-compatible bucket or a directory (a mounted volume).

Both stores share one rule: a snapshot that is visible is complete. An S3
object only appears when its (multipart) upload completes, and its record (the
sha256, the revision, the etcd version) travels with it as object metadata, so
there is no window in which the data is there and the record is not. A
directory gets the data under a temporary name, fsynced, renamed into place,
and then the record beside it, written the same way: a snapshot without its
record is an interrupted upload and is never restored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# S3 user metadata keys (sent as x-amz-meta-<key>); lower case, as S3 returns them.
RECORD_KEYS = ("sha256", "revision", "etcd-version", "size")


class StoreError(Exception):
    """The store refused or is unreachable; the message says which store and what it answered."""


class Store(Protocol):
    def put(self, source: Path, record: Mapping[str, str]) -> str:
        """Store the file with its record; returns the location a person can read."""
        ...

    def get(self, dest: Path) -> dict[str, str]:
        """Fetch the file into dest; returns its record (empty when the snapshot has none)."""
        ...

    def delete(self) -> None: ...

    @property
    def location(self) -> str: ...


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str
    endpoint: str | None = None
    region: str = "us-east-1"
    ca_file: str | None = None
    force_path_style: bool = False


class S3Store:
    """One object in an S3-compatible bucket, through boto3.

    boto3 signs (SigV4), retries, and switches to multipart uploads above its
    threshold; credentials come from the environment (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, set from the credentials Secret), never from flags.
    """

    def __init__(self, where: S3Location) -> None:
        import boto3
        from botocore.config import Config

        self.where = where
        config = Config(
            s3={"addressing_style": "path" if where.force_path_style else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        )
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=where.endpoint or None,
            region_name=where.region,
            verify=where.ca_file or True,
            config=config,
        )

    @property
    def location(self) -> str:
        return f"s3://{self.where.bucket}/{self.where.key}"

    def _fail(self, doing: str, exc: Exception) -> StoreError:
        endpoint = self.where.endpoint or "AWS S3"
        return StoreError(f"{doing} {self.location} at {endpoint}: {exc}")

    def put(self, source: Path, record: Mapping[str, str]) -> str:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.upload_file(
                str(source), self.where.bucket, self.where.key, ExtraArgs={"Metadata": dict(record)}
            )
        # upload_file wraps the store's refusal (a ClientError) in boto3's S3UploadFailedError.
        except (Boto3Error, BotoCoreError, ClientError, OSError) as exc:
            raise self._fail("cannot upload to", exc) from exc
        return self.location

    def get(self, dest: Path) -> dict[str, str]:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self._client.head_object(Bucket=self.where.bucket, Key=self.where.key)
            self._client.download_file(self.where.bucket, self.where.key, str(dest))
        except (Boto3Error, BotoCoreError, ClientError, OSError) as exc:
            raise self._fail("cannot download", exc) from exc
        metadata: dict[str, str] = head.get("Metadata") or {}
        return {k: v for k, v in metadata.items() if k in RECORD_KEYS}

    def delete(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.delete_object(Bucket=self.where.bucket, Key=self.where.key)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("cannot delete", exc) from exc


def write_atomically(path: Path, write: Any) -> None:
    """write(fh) into path.partial, fsync, rename over path, fsync the directory."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirectoryStore:
    """A snapshot file and its record (`<file>.json`) in a directory, e.g. a mounted claim."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def record_path(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    @property
    def location(self) -> str:
        return str(self.path)

    def put(self, source: Path, record: Mapping[str, str]) -> str:
        def copy(fh: Any) -> None:
            with open(source, "rb") as src:
                while chunk := src.read(1 << 20):
                    fh.write(chunk)

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, copy)
            write_atomically(self.record_path, lambda fh: fh.write(json.dumps(dict(record), indent=1).encode()))
        except OSError as exc:
            raise StoreError(f"cannot write {self.path}: {exc}") from exc
        return self.location

    def get(self, dest: Path) -> dict[str, str]:
        try:
            record = json.loads(self.record_path.read_text())
        except FileNotFoundError as exc:
            raise StoreError(
                f"{self.path} has no record {self.record_path.name}: the snapshot is missing or its upload never "
                "finished"
            ) from exc
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {self.record_path}: {exc}") from exc
        try:
            with open(self.path, "rb") as src, open(dest, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from exc
        return {k: str(v) for k, v in record.items() if k in RECORD_KEYS}

    def delete(self) -> None:
        for path in (self.record_path, self.path):  # the record first: what is left never looks complete
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StoreError(f"cannot delete {path}: {exc}") from exc
