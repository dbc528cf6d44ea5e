"""A real process running one Forwarder, driven line by line on stdin (for restart and SIGKILL tests).

    python -m tests.support.forward_child --url URL [--spool DIR] [--stop-timeout S] [--queue-max N] [--fsync]

Prints ``ready {stats}``, then answers each command with one line ``<word> {stats}``:

    feed START N BATCH     hand over flows START..START+N-1 (tests.support.backend.sample_flows) -> fed
    feed_forever START BATCH   keep handing over batches in the background               -> feeding
    wait KEY VALUE         until stats[KEY] == VALUE                                      -> ok
    stats                                                                                 -> stats

End of stdin or SIGTERM closes the forwarder's input; the process prints ``exit {stats}`` once
run() returned and exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

import trio
import trio.testing

from flowpipe.config import ForwarderConfig
from flowpipe.forward import Forwarder
from flowpipe.metrics import Metrics
from tests.support.backend import sample_flows


def stats(m: Metrics) -> dict[str, Any]:
    def v(name: str, **labels: str) -> float:
        return m.registry.get_sample_value("flowpipe_" + name, labels) or 0.0
    dropped = {s.labels["reason"]: s.value for fam in m.registry.collect() if fam.name == "flowpipe_flows_dropped"
               for s in fam.samples if s.name.endswith("_total") and s.labels["stage"] == "forwarder"}
    return {"sent": v("forwarder_flows_sent_total"), "pending": v("forwarder_flows_pending"),
            "recovered": v("forwarder_flows_recovered_total"), "spooled": v("flows_spooled_total"),
            "corrupt": v("spool_files_corrupt_total"), "backend_up": v("forwarder_backend_up"),
            "queue": v("forwarder_queue_flows"), "dropped": dropped, "handed": 0}


def say(word: str, data: dict[str, Any]) -> None:
    sys.stdout.write(f"{word} {json.dumps(data)}\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    m = Metrics()
    cfg = ForwarderConfig(url=args.url, spool_dir=args.spool, stop_timeout=args.stop_timeout,
                          retry_initial=0.05, retry_max=0.2, retries=1, timeout=2.0,
                          queue_max_flows=args.queue_max, max_batch_flows=1000, spool_fsync=args.fsync)
    fw = Forwarder(cfg, m)
    send, recv = trio.open_memory_channel[list[dict[str, Any]]](0)
    handed = 0

    def report(word: str) -> None:
        say(word, {**stats(m), "handed": handed})

    async def feed(start: int, n: int, batch: int) -> None:
        nonlocal handed
        for i in range(start, start + n, batch):
            flows = sample_flows(i, min(batch, start + n - i))
            await send.send(flows)
            handed += len(flows)

    async def feed_forever(start: int, batch: int) -> None:
        while True:
            await feed(start, batch, batch)
            start += batch
            await trio.sleep(0.002)

    async def commands(nursery: trio.Nursery) -> None:
        stdin = trio.lowlevel.FdStream(os.dup(0))
        buf = b""
        while True:
            chunk = await stdin.receive_some()
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                word, *rest = line.decode().split()
                nums = [int(x) for x in rest if x.isdigit()]
                if word == "feed":
                    await feed(nums[0], nums[1], nums[2])
                    await trio.testing.wait_all_tasks_blocked()
                    report("fed")
                elif word == "feed_forever":
                    nursery.start_soon(feed_forever, nums[0], nums[1])
                    report("feeding")
                elif word == "wait":
                    while stats(m)[rest[0]] != float(rest[1]):
                        await trio.sleep(0.01)
                    report("ok")
                else:
                    report("stats")
        nursery.cancel_scope.cancel()

    async def signals(cancel: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as sigs:
            async for _ in sigs:
                cancel.cancel()

    async with trio.open_nursery() as outer:
        await outer.start(fw.run, recv)
        report("ready")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(commands, nursery)
            nursery.start_soon(signals, nursery.cancel_scope)
        await send.aclose()
    report("exit")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--spool", default="")
    p.add_argument("--stop-timeout", type=float, default=1.0)
    p.add_argument("--queue-max", type=int, default=1_000_000)
    p.add_argument("--fsync", action="store_true")
    trio.run(main, p.parse_args())
