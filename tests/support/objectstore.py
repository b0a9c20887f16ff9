"""A real S3-compatible object store for the backup tests: versitygw over a directory, on loopback.

versitygw (Apache-2.0) is built pinned from the Go module proxy by
hack/build-versitygw.sh. It serves the S3 API over a plain directory (objects
are files, metadata lives in extended attributes), so what a test uploads can
also be checked, and damaged on purpose, on disk.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.netlab import wait_until
from tests.support.binaries import bin_dir, versions
from tests.support.loopback import free_ports
from tests.support.pki import make_ca, make_cert

ACCESS_KEY = "backup-test-access"
SECRET_KEY = "backup-test-secret-0123456789"


def versitygw_bin() -> Path:
    version = versions()["VERSITYGW_VERSION"]
    path = bin_dir() / f"versitygw-{version}" / "versitygw"
    if not path.exists():
        reason = f"versitygw {version} not built at {path}: run `bash hack/build-versitygw.sh` (or set ETCD_BIN)"
        if os.environ.get("ETCD_REQUIRED") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


@dataclass
class S3Server:
    workdir: Path
    tls: bool = False
    proc: subprocess.Popen[bytes] | None = None
    ca_file: Path | None = None
    port: int = field(default_factory=lambda: free_ports(1)[0])

    @property
    def root(self) -> Path:
        return self.workdir / "data"

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What an S3 client (etcd-node backup) needs beside its flags."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    def flags(self, bucket: str, key: str) -> list[str]:
        out = [f"--s3-endpoint={self.endpoint}", f"--s3-bucket={bucket}", f"--s3-key={key}", "--s3-force-path-style"]
        return out + ([f"--s3-ca-file={self.ca_file}"] if self.ca_file else [])

    def start(self) -> S3Server:
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [str(versitygw_bin()), "--port", f"127.0.0.1:{self.port}", "--access", ACCESS_KEY, "--secret", SECRET_KEY]
        if self.tls:
            now = datetime.now(UTC)
            ca = make_ca(now, "object store test CA")
            self.ca_file, _ = ca.write(self.workdir / "pki", "ca")
            cert, key = make_cert(ca, "objectstore", ["127.0.0.1", "localhost"], now).write(self.workdir / "pki", "s3")
            argv += ["--cert", str(cert), "--key", str(key)]
        argv += ["posix", str(self.root)]
        log = (self.workdir / "versitygw.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answers, 30, interval=0.2, message=f"versitygw never answered at {self.endpoint}")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"versitygw exited: {(self.workdir / 'versitygw.log').read_text()[-2000:]}")
        try:
            self.client().list_buckets()
            return True
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, verify=str(self.ca_file) if self.ca_file else True,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )  # fmt: skip

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(20)
            self.proc = None
