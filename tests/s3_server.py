"""An S3-compatible server for tests: moto's standalone server (``moto[server]`` from PyPI), on a free loopback
port. Chosen over versitygw because it installs with pip in seconds and implements ListObjectsV2, ETags and
versioning faithfully; notifications are tested with real notification bodies (AWS, SNS, MinIO) instead, since
the source's notification endpoint only has to read what such servers send."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ripple._aio import free_port

__all__ = ["CREDENTIALS", "s3_server"]

CREDENTIALS = "testing-access:testing-secret"


@contextmanager
def s3_server() -> Iterator[str]:
    """Yield the endpoint URL of a running moto S3 server."""
    port = free_port()
    executable = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    process = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
