"""A real AWS-compatible server for tests: `moto_server` on a free loopback port.

`MotoServer.running()` runs it as a subprocess and waits until it answers; `new_bucket()`
creates an empty bucket and returns the `S3Settings` that reach it (dummy credentials);
`client(service)` is a boto3 client of any service moto serves (S3, SES, ...).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from owlat.runtime.storage.blobstores import S3Settings

_buckets = itertools.count()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass
class MotoServer:
    endpoint_url: str
    process: subprocess.Popen[bytes]

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[MotoServer]:
        # the virtualenv's own (the pinned moto), not whatever moto_server is on PATH
        beside = Path(sys.executable).with_name("moto_server")
        executable = str(beside) if beside.exists() else shutil.which("moto_server")
        if executable is None:
            raise RuntimeError("moto_server is not installed (requirements.lock pins moto)")
        port = free_port()
        process = subprocess.Popen(
            [executable, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = cls(f"http://127.0.0.1:{port}", process)
        try:
            server._wait_ready()
            yield server
        finally:
            process.terminate()
            process.wait(10)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)

    def settings(self, bucket: str, prefix: str = "") -> S3Settings:
        return S3Settings(
            bucket=bucket,
            endpoint_url=self.endpoint_url,
            region="us-east-1",
            access_key_id="test",
            secret_access_key="test",
            prefix=prefix,
        )

    @contextlib.contextmanager
    def client(self, service: str = "s3") -> Iterator[Any]:
        """A boto3 client of this server (closed after the block)."""
        import boto3

        client = boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        try:
            yield client
        finally:
            client.close()

    def new_bucket(self, prefix: str = "") -> S3Settings:
        bucket = f"owlat-test-{next(_buckets)}"
        with self.client() as client:
            client.create_bucket(Bucket=bucket)
        return self.settings(bucket, prefix)
