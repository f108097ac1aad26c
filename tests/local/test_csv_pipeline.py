"""The CSV pipeline of ``functions/csv-etl`` end to end through ``ripple dev``, on a real PostgreSQL and a real S3
server: a file with bad rows, the same upload again, and a file that is not CSV at all."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from aiobotocore.session import get_session

from ripple._aio import free_port
from tests.postgres_server import PostgresServer, pg_bin_dir, postgres_server
from tests.processes import REPO, RippleProcess
from tests.s3_server import s3_server

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(pg_bin_dir() is None, reason="PostgreSQL is not installed")]
EXAMPLE = REPO / "functions" / "csv-etl"


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    with s3_server() as url:
        yield url


def rows(pg: PostgresServer) -> list[tuple]:
    with psycopg2.connect(pg.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name, email, score, source_file FROM scores ORDER BY id")
        found = cur.fetchall()
    conn.close()
    return found


async def test_the_csv_pipeline(tmp_path: Path, pg: PostgresServer, s3: str):
    example = tmp_path / "csv-etl"
    shutil.copytree(EXAMPLE, example)
    manifest = example / "csv-etl.yaml"
    manifest.write_text(manifest.read_text().replace("http://127.0.0.1:9090", s3)
                        .replace("port=55432", f"port={pg.port}"))
    async with get_session().create_client("s3", endpoint_url=s3, region_name="us-east-1",
                                           aws_access_key_id="demo-access",
                                           aws_secret_access_key="demo-secret") as client:
        await client.create_bucket(Bucket="uploads")
        dev = await RippleProcess("dev", str(example), "--port", str(free_port()), "--data-dir",
                                  str(tmp_path / "data")).start()
        try:
            await dev.wait_for_line("source ready: etl/uploads storage")
            await asyncio.sleep(1.5)  # the first poll takes the (empty) bucket as its starting point
            sample = (EXAMPLE / "sample.csv").read_bytes()
            await client.put_object(Bucket="uploads", Key="incoming/scores.csv", Body=sample)
            await dev.wait_for_line("incoming/scores.csv: 3 rows stored, 2 rejected", timeout=60)
            await dev.wait_for_line("notification: incoming/scores.csv: 3 of 5 rows stored")
            await dev.wait_for_line("line 4: Email 'grace-at-example.com' is not an address")
            await dev.wait_for_line("line 5: Score 'ninety' is not an integer")
            assert [r[:4] for r in rows(pg)] == [(1, "Ada Lovelace", "ada@example.com", 98),
                                                 (2, "Alan Turing", "alan@example.com", 95),
                                                 (5, "Barbara Liskov", "barbara@example.com", 93)]

            await client.put_object(Bucket="uploads", Key="incoming/scores.csv", Body=sample)  # the same again
            await client.put_object(Bucket="uploads", Key="incoming/logo.png", Body=b"\x89PNG\r\n\x1a\n\x00\xff")
            line = await dev.wait_for_line("etl/new-csv-files id=", timeout=30)
            line = await dev.wait_for_line("status=422 attempt=1", timeout=30)
            assert line.endswith("dead-letter")  # not retried: a file that is not CSV will not become one
            await asyncio.sleep(3)  # a few polls: the repeated upload must not be processed again
            output = dev.output()
            assert output.count("rows stored, ") == 1 and output.count("notification:") == 1, output
            assert len(rows(pg)) == 3
        finally:
            await dev.stop()


async def test_thumbnails(tmp_path: Path, s3: str):
    import io

    from PIL import Image

    example = tmp_path / "thumbnails"
    shutil.copytree(REPO / "functions" / "thumbnails", example)
    manifest = example / "thumbnails.yaml"
    manifest.write_text(manifest.read_text().replace("http://127.0.0.1:9090", s3))
    async with get_session().create_client("s3", endpoint_url=s3, region_name="us-east-1",
                                           aws_access_key_id="demo-access",
                                           aws_secret_access_key="demo-secret") as client:
        for bucket in ("photos", "thumbnails"):
            await client.create_bucket(Bucket=bucket)
        dev = await RippleProcess("dev", str(example), "--port", str(free_port()), "--data-dir",
                                  str(tmp_path / "data")).start()
        try:
            await dev.wait_for_line("source ready: media/photos storage")
            await asyncio.sleep(1.5)
            photo = io.BytesIO()
            Image.new("RGB", (640, 480), (200, 30, 30)).save(photo, "PNG")
            await client.put_object(Bucket="photos", Key="originals/sunset.png", Body=photo.getvalue())
            await client.put_object(Bucket="photos", Key="originals/notes.txt", Body=b"not an image")
            await dev.wait_for_line("originals/sunset.png (640x480) → thumbnails/sunset.jpg", timeout=60)
            await dev.wait_for_line("status=422 attempt=1", timeout=30)
            answer = await client.get_object(Bucket="thumbnails", Key="thumbnails/sunset.jpg")
            thumbnail = Image.open(io.BytesIO(await answer["Body"].read()))
            assert thumbnail.format == "JPEG" and thumbnail.size == (200, 200)
        finally:
            await dev.stop()
