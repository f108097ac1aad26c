"""A bounded soak: Ripple deployed as separate processes under a steady open-loop rate, minute by minute.

Run with ``python bench/soak.py`` (default 10 minutes at 1,000 events/s; ``--minutes``, ``--rate``). Everything
listens on 127.0.0.1. The processes are those of ``bench/e2e.py`` (this script imports it): a real
``nats-server -js``, ``ripple ingress`` and ``ripple dispatcher`` on one Broker and one Trigger, the receiver, and
one load generator process per minute (single-event binary POSTs, open loop, ``sentat`` = due time; see e2e.py).

Each minute is one generator run of 60 s (the first preceded by ``--warmup`` unmeasured seconds), then a drain wait
(until the receiver has every event of the minute answered 202, at most ``--drain`` seconds: a pause of the load of
a few ms when nothing lags), then: the VmRSS of the ingress and dispatcher processes (``/proc/<pid>/status``), the
minute's p99 latency (send -> receiver) and the events lost (202 but not at the receiver). At the end: the RSS
change from the first to the last minute in %, for each process. The baseline, measured in the same run, is one
direct minute (the generator POSTs straight to the receiver) before the soak, so the JSON line has
the per-minute Ripple/direct p99 ratio. The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import emit_json, load_average, machine, num, ratio, table
from e2e import P99_LIMIT_MS, run_phase, stack

MINUTE = 60.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=10, help="minutes of soak (10)")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second (1000)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before the first minute (2)")
    parser.add_argument("--baseline-seconds", type=float, default=MINUTE,
                        help="seconds of the direct baseline before the soak (60)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections of the generator (8)")
    parser.add_argument("--data-bytes", type=int, default=200, help="size of each event's JSON data (200)")
    parser.add_argument("--drain", type=float, default=30.0,
                        help="seconds to wait after each minute for the receiver to get every accepted event (30)")
    args = parser.parse_args(argv)
    if args.minutes < 1 or args.rate <= 0 or args.warmup < 0 or args.baseline_seconds <= 0 or args.drain < 0:
        parser.error("--minutes at least 1, --rate and --baseline-seconds positive, --warmup and --drain not "
                     "negative")
    return args


def rss_kib(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


async def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, int | None]]:
    minutes: list[dict[str, Any]] = []
    common = {"rate": args.rate, "connections": args.connections, "data_bytes": args.data_bytes,
              "drain": args.drain}
    with tempfile.TemporaryDirectory(prefix="ripple-soak-") as tmp:
        async with stack(Path(tmp)) as s:
            start_rss = {name: rss_kib(s.pid(name)) for name in ("ingress", "dispatcher")}
            print(f"direct baseline: {args.rate:g}/s for {args.baseline_seconds:g}s", flush=True)
            direct = await run_phase(s, url=f"{s.receiver_url}/", prefix="direct", warmup=args.warmup,
                                     duration=args.baseline_seconds, **common)
            for minute in range(1, args.minutes + 1):
                result = await run_phase(s, url=s.ingress_url, prefix=f"min{minute}",
                                         warmup=args.warmup if minute == 1 else 0.0, duration=MINUTE, **common)
                for name in ("ingress", "dispatcher"):
                    s.children[name].check_alive()
                result["minute"] = minute
                result["rss_kib"] = {name: rss_kib(s.pid(name)) for name in ("ingress", "dispatcher")}
                minutes.append(result)
                print(f"minute {minute}/{args.minutes}: p99 {result['p99_ms']} ms, lost {result['lost']}, rss "
                      f"{result['rss_kib']} KiB, ingress {result['cores']['ingress']} / dispatcher "
                      f"{result['cores']['dispatcher']} cores", flush=True)
    return direct, minutes, start_rss


def growth(first: int | None, last: int | None) -> float | None:
    return num((last - first) / first * 100, 2) if first and last is not None else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_start = load_average()
    began = time.perf_counter()
    direct, minutes, start_rss = asyncio.run(run(args))
    wall = time.perf_counter() - began

    def mib(kib: int | None) -> str:
        return "-" if kib is None else f"{kib / 1024:.1f}"

    rows = [[m["minute"], m["sent"], m["accepted"], m["delivered"], m["lost"], m["p99_ms"],
             ratio(m["p99_ms"] or 0.0, direct["p99_ms"] or 0.0), mib(m["rss_kib"]["ingress"]),
             mib(m["rss_kib"]["dispatcher"]), m["cores"]["ingress"], m["cores"]["dispatcher"]] for m in minutes]
    first, last = minutes[0]["rss_kib"], minutes[-1]["rss_kib"]
    rss_change = {name: growth(first[name], last[name]) for name in ("ingress", "dispatcher")}
    since_start = {name: growth(start_rss[name], last[name]) for name in ("ingress", "dispatcher")}
    lost_total = sum(m["lost"] for m in minutes)
    failed_total = sum(m["failed"] for m in minutes)
    p99s = [m["p99_ms"] for m in minutes if m["p99_ms"] is not None]
    print()
    print(f"Soak: {args.minutes} min at {args.rate:g} events/s (ingress and dispatcher as processes), "
          f"{args.connections} connections, load {load_start} -> {load_average()}, {wall:.0f}s in all")
    print(f"direct baseline ({args.baseline_seconds:g}s): p50 {direct['p50_ms']} ms, p99 {direct['p99_ms']} ms, "
          f"lost {direct['lost']}; RSS at start: ingress {mib(start_rss['ingress'])} MiB, dispatcher "
          f"{mib(start_rss['dispatcher'])} MiB")
    print(table(["minute", "sent", "202s", "delivered", "lost", "p99 ms", "p99/direct", "ingress RSS MiB",
                 "dispatcher RSS MiB", "ingress cores", "dispatcher cores"], rows))
    print(f"RSS change first -> last minute: ingress {rss_change['ingress']} %, dispatcher "
          f"{rss_change['dispatcher']} % (from before the baseline: ingress {since_start['ingress']} %, dispatcher "
          f"{since_start['dispatcher']} %); lost {lost_total} (must be 0), non-202 {failed_total}, worst minute p99 "
          f"{max(p99s) if p99s else None} ms (limit {P99_LIMIT_MS:g})")
    emit_json({
        "bench": "soak",
        "minutes_run": len(minutes),
        "rate": args.rate,
        "connections": args.connections,
        "direct": {k: direct[k] for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "lost", "achieved_rate")},
        "per_minute": [{"minute": m["minute"], "sent": m["sent"], "accepted": m["accepted"],
                        "delivered": m["delivered"], "lost": m["lost"], "failed": m["failed"],
                        "p50_ms": m["p50_ms"], "p99_ms": m["p99_ms"], "max_ms": m["max_ms"],
                        "p99_ratio": ratio(m["p99_ms"] or 0.0, direct["p99_ms"] or 0.0),
                        "rss_kib": m["rss_kib"], "cores": m["cores"], "drain_s": m["drain_s"]} for m in minutes],
        "rss_start_kib": start_rss,
        "rss_change_pct": rss_change,
        "rss_change_from_start_pct": since_start,
        "lost_total": lost_total,
        "failed_total": failed_total,
        "p99_ms_worst_minute": max(p99s) if p99s else None,
        "load_average": [load_start, load_average()],
        "wall_s": num(wall, 1),
        "machine": machine(),
    })
    return 0 if lost_total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
