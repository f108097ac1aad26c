"""``ripple replay`` as a person runs it: the trigger from its manifest, a dry run that stores nothing, then the
replay, whose events wait on the trigger's own subject, marked."""

from __future__ import annotations

from pathlib import Path

import pytest

from ripple.events.extensions import REPLAY, stamp_arrival
from ripple.events.model import CloudEvent
from ripple.store import subjects
from tests.processes import RippleProcess
from tests.support import event

pytestmark = pytest.mark.e2e

MANIFEST = """
apiVersion: ripple.dev/v1alpha1
kind: Trigger
metadata: {name: placed}
spec:
  filter: {attributes: {type: order.placed}}
  subscriber: {uri: "http://127.0.0.1:9/"}
"""


async def test_ripple_replay_dry_runs_then_replays_to_the_trigger(tmp_path: Path, nats_server, store):
    (tmp_path / "trigger.yaml").write_text(MANIFEST)
    for n in range(6):
        kind = "order.placed" if n % 2 == 0 else "order.shipped"
        await store.publish_event("default", "default", stamp_arrival(event(f"e{n}", type=kind)))
    common = ["--trigger", "placed", "-f", str(tmp_path / "trigger.yaml"), "--nats", nats_server.url]
    dry = await RippleProcess("replay", "--from-seq", "2", "--dry-run", *common).start()
    assert await dry.finished() == 0
    assert "dry run: 2 of 5 events (sequences 2..6) would go to default/placed: order.placed 2" in dry.output()
    assert (await store.js.stream_info(subjects.stream_name("default", "default"))).state.messages == 6
    real = await RippleProcess("replay", "--from", "PT1H", "--name", "fix-1", *common).start()
    assert await real.finished() == 0
    assert "replayed 3 of 6 events (sequences 1..6) to default/placed as fix-1" in real.output()
    redriven = subjects.redrive_subject("default", "default", "placed")
    stream = subjects.stream_name("default", "default")
    replayed = []
    for seq in range(7, 10):
        raw = await store.js.get_msg(stream, seq)
        assert raw.subject == redriven
        replayed.append(CloudEvent.from_json_bytes(raw.data))
    assert [(e.id, e[REPLAY]) for e in replayed] == [("e0", "fix-1"), ("e2", "fix-1"), ("e4", "fix-1")]


async def test_ripple_replay_refuses_what_it_cannot_do(tmp_path: Path, nats_server):
    (tmp_path / "trigger.yaml").write_text(MANIFEST)
    missing = await RippleProcess("replay", "--trigger", "nope", "--from-seq", "1", "-f", str(tmp_path),
                                  "--nats", nats_server.url).start()
    assert await missing.finished() != 0 and "no trigger default/nope" in missing.output()
    fast = await RippleProcess("replay", "--trigger", "placed", "--from-seq", "1", "--rate", "0", "-f",
                               str(tmp_path), "--nats", nats_server.url).start()
    assert await fast.finished() != 0 and "--rate must be above 0" in fast.output()
    when = await RippleProcess("replay", "--trigger", "placed", "--from", "yesterday", "-f", str(tmp_path),
                               "--nats", nats_server.url).start()
    assert await when.finished() != 0 and "times are RFC 3339" in when.output()
