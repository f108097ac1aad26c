"""Object-storage sources against a real S3 server (moto): polling with its checkpoint across restarts, deletes,
prefixes and 1,000 objects; notifications in the AWS, SNS and MinIO formats."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiobotocore.session import get_session

from ripple.sources.storage import EVENT_TYPES
from tests.s3_server import CREDENTIALS, s3_server
from tests.support import eventually

ACCESS, SECRET = CREDENTIALS.split(":")


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    with s3_server() as url:
        yield url


@pytest.fixture
async def bucket(s3: str) -> AsyncIterator[tuple[object, str]]:
    import secrets

    name = f"b-{secrets.token_hex(4)}"
    async with get_session().create_client("s3", endpoint_url=s3, region_name="us-east-1",
                                           aws_access_key_id=ACCESS, aws_secret_access_key=SECRET) as client:
        await client.create_bucket(Bucket=name)
        yield client, name


def manifest(endpoint: str, bucket: str, extra: str = "") -> str:
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s3}}\nstringData: {{keys: '{CREDENTIALS}'}}\n---\n"
        "apiVersion: ripple.dev/v1alpha1\nkind: EventSource\nmetadata: {name: uploads}\nspec:\n"
        "  sink: {ref: {kind: Broker, name: default}}\n"
        f"  storage: {{endpoint: '{endpoint}', bucket: {bucket}, prefix: incoming/, pollInterval: PT0.3S, "
        f"credentialsSecretRef: {{name: s3, key: keys}}{extra}}}\n"
    )


async def _events(served, count: int):  # type: ignore[no-untyped-def]
    events = await served.events()
    return events if len(events) >= count else None


async def _polled(served) -> bool:  # type: ignore[no-untyped-def]
    return served.sources.status()["default/uploads"]["lastCheckpoint"] is not None


async def test_poll_sends_new_and_deleted_objects_and_skips_what_was_there(serve_sources, s3, bucket):
    client, name = bucket
    await client.put_object(Bucket=name, Key="incoming/old.csv", Body=b"old")
    async with serve_sources(manifest(s3, name, ", events: [created, deleted]")) as served:
        await eventually(lambda: served.sources.status()["default/uploads"]["objects"] == 1, timeout=10)
        await client.put_object(Bucket=name, Key="incoming/new.csv", Body=b"a,b\n1,2\n")
        await client.put_object(Bucket=name, Key="elsewhere/ignored.csv", Body=b"x")
        (created,) = await eventually(lambda: _events(served, 1), timeout=10)
        await client.delete_object(Bucket=name, Key="incoming/old.csv")
        events = await eventually(lambda: _events(served, 2), timeout=10)
    assert created.type == EVENT_TYPES["created"] and created["subject"] == "incoming/new.csv"
    body = json.loads(created.data)
    assert body["bucket"] == name and body["key"] == "incoming/new.csv" and body["size"] == 8 and body["etag"]
    deleted = events[1]
    assert deleted.type == EVENT_TYPES["deleted"] and deleted["subject"] == "incoming/old.csv"
    assert len(events) == 2  # nothing for the object that was there first, nor outside the prefix


async def test_a_restart_neither_misses_nor_repeats(serve_sources, s3, bucket):
    client, name = bucket
    async with serve_sources(manifest(s3, name)) as served:
        await eventually(lambda: _polled(served), timeout=10)
        await client.put_object(Bucket=name, Key="incoming/1.csv", Body=b"1")
        await eventually(lambda: _events(served, 1), timeout=10)
    await client.put_object(Bucket=name, Key="incoming/2.csv", Body=b"2")  # while the source is down
    async with serve_sources(manifest(s3, name)) as served:
        events = await eventually(lambda: _events(served, 2), timeout=10)
        await asyncio.sleep(1.0)  # a few more polls: nothing may come again
        again = await served.events()
    assert [e["subject"] for e in events] == ["incoming/1.csv", "incoming/2.csv"] and len(again) == 2


async def test_initial_listing_emit_and_a_thousand_objects(serve_sources, s3, bucket):
    client, name = bucket
    slots = asyncio.Semaphore(32)

    async def put(n: int) -> None:
        async with slots:
            await client.put_object(Bucket=name, Key=f"incoming/{n:04}.csv", Body=str(n).encode())

    await asyncio.gather(*(put(n) for n in range(1000)))
    async with serve_sources(manifest(s3, name, ", initialListing: emit")) as served:
        events = await eventually(lambda: _events(served, 1000), timeout=60)
    assert len({e.id for e in events}) == 1000
    assert {e["subject"] for e in events} == {f"incoming/{n:04}.csv" for n in range(1000)}


async def test_an_object_no_event_can_carry_is_dead_lettered_and_the_poll_goes_on(serve_sources, s3, bucket):
    client, name = bucket
    async with serve_sources(manifest(s3, name)) as served:
        await eventually(lambda: _polled(served), timeout=10)
        await client.put_object(Bucket=name, Key="incoming/bad\x01name.csv", Body=b"x")  # S3 allows it
        await client.put_object(Bucket=name, Key="incoming/good.csv", Body=b"y")
        (good,) = await eventually(lambda: _events(served, 1), timeout=10)
        letters = await eventually(served.dead_letters, timeout=10)
        await asyncio.sleep(1.0)  # later polls neither retry it nor repeat the good one
        assert await served.dead_letters() == letters == 1 and len(await served.events()) == 1
    assert good["subject"] == "incoming/good.csv"


# --- notifications ----------------------------------------------------------------------------------------------

AWS = {"Records": [{
    "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2024-06-13T12:00:00.000Z",
    "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
    "s3": {"s3SchemaVersion": "1.0", "configurationId": "ripple",
           "bucket": {"name": "uploads", "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                      "arn": "arn:aws:s3:::uploads"},
           "object": {"key": "incoming/report+2024.csv", "size": 1024, "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                      "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko", "sequencer": "0055AED6DCD90281E5"}},
}]}
MINIO = {"EventName": "s3:ObjectRemoved:Delete", "Key": "uploads/incoming/old.csv", "Records": [{
    "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "", "eventTime": "2024-06-13T12:00:01.000Z",
    "eventName": "s3:ObjectRemoved:Delete", "userIdentity": {"principalId": "minioadmin"},
    "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config",
           "bucket": {"name": "uploads", "arn": "arn:aws:s3:::uploads"},
           "object": {"key": "incoming%2Fold.csv", "sequencer": "17D8B1E3C5A0B0F0"}},
}]}
SNS = {"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
       "TopicArn": "arn:aws:sns:us-east-1:1:s3", "Message": json.dumps(AWS),
       "Timestamp": "2024-06-13T12:00:00.100Z", "SignatureVersion": "1"}


NOTIFICATIONS = ("apiVersion: v1\nkind: Secret\nmetadata: {name: hook}\nstringData: {token: n0tify}\n---\n"
                 "apiVersion: ripple.dev/v1alpha1\nkind: EventSource\nmetadata: {name: uploads}\nspec:\n"
                 "  sink: {ref: {kind: Broker, name: default}}\n"
                 "  storage: {endpoint: 'http://unused.example', bucket: uploads, prefix: incoming/, "
                 "mode: notifications, events: [created, deleted], "
                 "signature: {scheme: token, secretRef: {name: hook, key: token}}}\n")


async def test_a_malformed_notification_is_answered_400_naming_the_record(serve_sources):
    broken = {"eventName": "ObjectCreated:Put", "s3": {"bucket": "uploads", "object": []}}
    body = {"Records": [AWS["Records"][0], broken]}
    async with serve_sources(NOTIFICATIONS) as served:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{served.url}/sources/default/uploads", json=body,
                                    headers={"Authorization": "Bearer n0tify"}) as answer:
                assert answer.status == 400
                assert "Records[1]" in (await answer.json())["error"]
        assert await served.events() == []


@pytest.mark.parametrize(("body", "expected"), [
    (AWS, [("created", "incoming/report 2024.csv")]),
    (SNS, [("created", "incoming/report 2024.csv")]),
    (MINIO, [("deleted", "incoming/old.csv")]),
    ({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "uploads"}, []),
], ids=["aws", "sns", "minio", "test-event"])
async def test_notifications_in_each_format(serve_sources, body, expected):
    async with serve_sources(NOTIFICATIONS) as served:
        url = f"{served.url}/sources/default/uploads"
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=body) as unsigned:
                assert unsigned.status == 401
            async with session.post(url, json=body, headers={"Authorization": "Bearer n0tify"}) as answer:
                assert answer.status == 202, await answer.text()
            async with session.post(url, json=body, headers={"Authorization": "Bearer n0tify"}) as again:
                assert again.status == 202  # a redelivered notification: the same id, stored once
        events = await served.events()
    assert [(e.type.rsplit(".", 1)[-1], e["subject"]) for e in events] == expected
