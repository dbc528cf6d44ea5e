"""The forwarder: delivers batches of payload flows to the HTTP backend without losing them.

Batches taken off the input channel get a sequence number and wait in memory; one sender posts
the oldest (merging small batches up to ``max_batch_flows``), retrying per :mod:`.retry`. When a
batch fails past the retry budget the backend counts as down: with a spool dir, everything in
memory and everything that arrives goes to disk until a probe succeeds, then the spool is sent
oldest first. Memory past ``queue_max_flows`` spills to the spool (without one: the oldest batches
are dropped). The input is always drained at once, so the stage before never blocks on us.

Batches may come packed (:mod:`.packed`: the renderer makes each request body as soon as it has a
batch, so what waits here is ~15 times smaller than JSON text); they are posted as they are, never
merged, and unpacked only for the spool and the file copy.

Each request carries an ``Idempotency-Key`` header that stays the same for a batch across retries,
restarts and the spool, so a backend can discard the duplicate that follows an answer lost in transit.

Accounting, at every moment: flows handed to ``run`` + flows recovered from the spool at start =
``forwarder_flows_sent`` + ``forwarder_flows_pending`` + ``flows_dropped{stage="forwarder"}``.
"""
from __future__ import annotations

import logging
import math
import sys
import zlib
from collections import deque

import httpx
import trio

from flowpipe import __version__
from flowpipe.forward.config import ForwarderConfig
from flowpipe.forward.encode import Flow, content_headers, encode_body, json_lines
from flowpipe.forward.filesink import FileSink
from flowpipe.forward.packed import Packed
from flowpipe.forward.request import post, tls_context
from flowpipe.forward.retry import Backoff, Outcome, classify, parse_retry_after
from flowpipe.forward.spool import Batch, CorruptFile, Spool
from flowpipe.logs import RateLimited
from flowpipe.metrics import Metrics
from flowpipe.startup import SettingError

Flows = list[Flow]  # payload objects or their JSON text
STAGE = "forwarder"
FILE_STAGE = "forwarder_file"
FILE_QUEUE_BATCHES = 256
BODY_LOG_CHARS = 200


class _Memory:
    """Batches waiting in memory, in seq order."""

    def __init__(self) -> None:
        self._q: deque[Batch] = deque()
        self.flows = 0

    def __bool__(self) -> bool:
        return bool(self._q)

    @property
    def head_seq(self) -> int | None:
        return self._q[0].seq if self._q else None

    def append(self, batch: Batch) -> None:
        self._q.append(batch)
        self.flows += len(batch.flows)

    def put_back(self, batch: Batch) -> None:
        """Return a batch taken with :meth:`take` (it is older than everything still here)."""
        self._q.appendleft(batch)
        self.flows += len(batch.flows)

    def take(self, max_flows: int) -> Batch:
        """The oldest batch, merged with the following ones while the total stays within ``max_flows``."""
        first = self._q.popleft()
        flows = first.flows
        if not first.tried and type(flows) is list and self._mergeable(len(flows), max_flows):
            flows = list(flows)
            while self._mergeable(len(flows), max_flows):
                flows.extend(self._q.popleft().flows)
            first = Batch(first.seq, flows)
        self.flows -= len(flows)
        return first

    def _mergeable(self, n: int, max_flows: int) -> bool:
        """The next batch joins one of ``n`` flows (a packed one stays whole)."""
        return bool(self._q) and type(self._q[0].flows) is list and n + len(self._q[0].flows) <= max_flows

    def pop_oldest(self) -> Batch:
        batch = self._q.popleft()
        self.flows -= len(batch.flows)
        return batch

    def clear(self) -> int:
        """Forget every batch; how many flows they held."""
        n, self.flows = self.flows, 0
        self._q.clear()
        return n


class Forwarder:
    """Delivers flow batches to ``cfg.url`` (or stdout / ``cfg.file`` when the url is empty)."""

    def __init__(self, cfg: ForwarderConfig, metrics: Metrics) -> None:
        self.cfg, self.m = cfg, metrics
        self._log = RateLimited(metrics.log_suppressed)
        httpx_log = logging.getLogger("httpx")
        if httpx_log.level == logging.NOTSET:  # it logs every request at INFO: far too much at our rates
            httpx_log.setLevel(logging.WARNING)
        self._tls = tls_context(cfg)
        self._file = _open_file(cfg)
        self._spool = _open_spool(cfg) if cfg.url and cfg.spool_dir else None
        self._memory = _Memory()
        self._backoff = Backoff(cfg.retry_initial, cfg.retry_max, cfg.retry_after_max)
        self._headers = {"User-Agent": f"flowpipe/{__version__}", **content_headers(cfg.format, cfg.compression),
                         **cfg.headers}
        self._pending = 0
        self._in_flight = 0           # flows of a memory batch being posted or being written to the spool
        self._down = False
        self._closing = trio.Event()
        self._deadline = math.inf
        self._gave_up = False         # the sender stopped trying during shutdown
        self._version = 0             # bumped on every change the tasks wait for
        self._lot = trio.lowlevel.ParkingLot()
        self._spool_lock = trio.Lock()
        self._next_seq = 0
        metrics.forwarder_backend_up.set(1)
        if self._spool is not None:
            self._recover(self._spool)
        self._changed()

    def _recover(self, spool: Spool) -> None:
        self._next_seq = spool.last_seq + 1
        if spool.corrupt_at_open:
            self.m.spool_files_corrupt.inc(len(spool.corrupt_at_open))
            self._log(logging.WARNING, "spool_corrupt_files_removed", dir=spool.dir,
                      files=len(spool.corrupt_at_open), first=spool.corrupt_at_open[0])
        if spool.flows:
            self.m.forwarder_recovered.inc(spool.flows)
            self._pending += spool.flows
            self._log(logging.INFO, "spool_recovered", dir=spool.dir, batches=len(spool), flows=spool.flows,
                      bytes=spool.bytes)

    # ---- bookkeeping -------------------------------------------------------------------------
    def _changed(self) -> None:
        self._version += 1
        self._lot.unpark_all()
        self.m.forwarder_pending.set(self._pending)
        self.m.forwarder_queue.set(self._memory.flows + self._in_flight)
        self.m.spool_bytes.set(self._spool.bytes if self._spool is not None else 0)

    async def _wait_change(self, version: int) -> None:
        if version == self._version:
            await self._lot.park()

    def _sent(self, n: int) -> None:
        self._pending -= n
        self.m.forwarder_flows_sent.inc(n)
        self._changed()

    def _drop(self, n: int, reason: str) -> None:
        self._pending -= n
        self.m.flows_dropped.labels(stage=STAGE, reason=reason).inc(n)
        self._changed()

    def _set_down(self, down: bool) -> None:
        if down == self._down:
            return
        self._down = down
        self.m.forwarder_backend_up.set(0 if down else 1)
        if down:
            self._log(logging.WARNING, "backend_down", url=self.cfg.url, pending=self._pending,
                      spool=bool(self._spool))
        else:
            self._log(logging.INFO, "backend_up", url=self.cfg.url, pending=self._pending)
        self._changed()

    # ---- run ---------------------------------------------------------------------------------
    async def run(self, receive: trio.MemoryReceiveChannel[Flows], *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume batches until ``receive`` is closed, then deliver what is left (see module doc)."""
        try:
            if not self.cfg.url:
                await self._run_local(receive, task_status)
                return
            async with trio.open_nursery() as outer:
                file_send = None
                if self._file is not None:
                    file_send, file_recv = trio.open_memory_channel[Flows](FILE_QUEUE_BATCHES)
                    outer.start_soon(self._file_writer, file_recv)
                # Requests run in a worker thread (httpx's blocking client): on the event loop a POST
                # needs several scheduler turns, and while the aggregator keeps the loop busy those
                # come ~50 ms apart: measured at 150,000 new flows/s, ~0.3 s a request, delivery
                # fell behind and ~600,000 flows waited in memory.
                with httpx.Client(verify=self._tls, timeout=self.cfg.timeout,
                                  limits=httpx.Limits(max_connections=2)) as client:
                    async with trio.open_nursery() as inner:
                        inner.start_soon(self._sender, client)
                        if self._spool is not None:
                            inner.start_soon(self._spiller)
                        task_status.started()
                        await self._intake(receive, file_send)
                        await self._drain()
                        inner.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self._final_spill()
            if self._spool is not None:
                self._spool.close()
            if self._file is not None:
                self._file.close()

    async def _intake(self, receive: trio.MemoryReceiveChannel[Flows],
                      file_send: trio.MemorySendChannel[Flows] | None) -> None:
        step = self.cfg.max_batch_flows
        try:
            async for flows in receive:
                if not flows:
                    continue
                self._pending += len(flows)
                # a packed batch is one request already (the renderer's); a longer list is split
                whole = len(flows) <= step or type(flows) is Packed
                for part in [flows] if whole else [flows[i:i + step] for i in range(0, len(flows), step)]:
                    self._memory.append(Batch(self._next_seq, part))
                    self._next_seq += 1
                if file_send is not None:
                    try:
                        file_send.send_nowait(flows)
                    except trio.WouldBlock:
                        self.m.flows_dropped.labels(stage=FILE_STAGE, reason="queue_full").inc(len(flows))
                self._limit_memory()
                self._changed()
        finally:
            if file_send is not None:
                file_send.close()
        self._deadline = trio.current_time() + self.cfg.stop_timeout
        self._closing.set()
        self._changed()

    def _limit_memory(self) -> None:
        """Past the cap, drop the oldest batches (with a spool the cap is doubled: spilling should keep up)."""
        cap = self.cfg.queue_max_flows * (2 if self._spool is not None else 1)
        while self._memory.flows > cap:
            batch = self._memory.pop_oldest()
            self._drop(len(batch.flows), "queue_full")
            self._log(logging.WARNING, "queue_full", dropped_flows=len(batch.flows), cap=cap)

    async def _drain(self) -> None:
        with trio.move_on_at(self._deadline):
            while self._pending > 0 and not self._gave_up:
                await self._wait_change(self._version)

    async def _final_spill(self) -> None:
        """Memory (and an interrupted batch) to the spool, or counted dropped when there is none."""
        if not self._memory:
            return
        if self._spool is None:
            n = self._memory.clear()
            self._drop(n, "shutdown")
            self._log(logging.WARNING, "shutdown_dropped", flows=n, reason="no spool_dir")
            return
        async with self._spool_lock:
            while self._memory:
                batch = self._memory.take(self.cfg.max_batch_flows)
                if not await self._spool_write(batch):
                    self._drop(len(batch.flows), "spool_error")

    # ---- spool -------------------------------------------------------------------------------
    async def _spool_write(self, batch: Batch) -> bool:
        """Write under the spool lock; False (batch not stored) on a disk error."""
        assert self._spool is not None
        self._in_flight += len(batch.flows)
        try:
            dropped = await trio.to_thread.run_sync(self._spool.write, _unpacked(batch))
        except OSError as e:
            self._log(logging.ERROR, "spool_write_failed", dir=self.cfg.spool_dir, error=str(e))
            return False
        finally:
            self._in_flight -= len(batch.flows)
        self.m.flows_spooled.inc(len(batch.flows))
        for entry in dropped:
            self._drop(entry.flows, "spool_full")
        if dropped:
            self._log(logging.WARNING, "spool_full", dropped_batches=len(dropped),
                      max_bytes=self.cfg.spool_max_bytes)
        self._changed()
        return True

    async def _spiller(self) -> None:
        """Moves memory to the spool while the backend is down or memory is past queue_max_flows."""
        while True:
            version = self._version
            if self._memory and (self._down or self._memory.flows > self.cfg.queue_max_flows):
                async with self._spool_lock:
                    batch = self._memory.take(self.cfg.max_batch_flows)
                    ok = await self._spool_write(batch)
                    if not ok:
                        self._memory.put_back(batch)
                        self._changed()
                if not ok:
                    await trio.sleep(1.0)
                continue
            await self._wait_change(version)

    # ---- delivery ----------------------------------------------------------------------------
    async def _take(self) -> tuple[Batch, bool]:
        """The oldest batch (and whether it is a spool file), waiting until there is one."""
        while True:
            version = self._version
            if self._spool is not None:
                async with self._spool_lock:
                    picked = await self._pick_locked(self._spool)
                if picked is not None:
                    return picked
            elif self._memory:
                return self._take_memory(), False
            await self._wait_change(version)

    async def _pick_locked(self, spool: Spool) -> tuple[Batch, bool] | None:
        while True:
            s, m = spool.head_seq, self._memory.head_seq
            if s is None or (m is not None and m < s):
                return (self._take_memory(), False) if self._memory else None
            try:
                batch = await trio.to_thread.run_sync(spool.read, s)
            except CorruptFile as e:
                self.m.spool_files_corrupt.inc()
                self._drop(e.entry.flows, "spool_corrupt")
                self._log(logging.WARNING, "spool_file_corrupt", error=str(e), flows=e.entry.flows)
                continue
            spool.in_flight = s
            return batch, True

    def _take_memory(self) -> Batch:
        batch = self._memory.take(self.cfg.max_batch_flows)
        self._in_flight += len(batch.flows)
        return batch

    def _put_back(self, batch: Batch, from_spool: bool) -> None:
        if from_spool:
            assert self._spool is not None
            self._spool.in_flight = None
        else:
            self._in_flight -= len(batch.flows)
            self._memory.put_back(batch)
        self._changed()

    async def _settle(self, batch: Batch, from_spool: bool, reason: str | None) -> None:
        """The batch is done: sent (reason None) or dropped for ``reason``."""
        if from_spool:
            assert self._spool is not None
            with trio.CancelScope(shield=True):
                async with self._spool_lock:
                    self._spool.remove(batch.seq)
        else:
            self._in_flight -= len(batch.flows)
        if reason is None:
            self._sent(len(batch.flows))
        else:
            self._drop(len(batch.flows), reason)

    async def _sender(self, client: httpx.Client) -> None:
        failures = 0
        while True:
            batch, from_spool = await self._take()
            settled, delay = False, 0.0
            try:
                try:
                    flows = batch.flows
                    body = flows.body if type(flows) is Packed else await trio.to_thread.run_sync(
                        encode_body, flows, self.cfg.format, self.cfg.compression)
                except (TypeError, ValueError, OverflowError) as e:
                    self._log(logging.ERROR, "encode_failed", error=str(e), flows=len(batch.flows))
                    await self._settle(batch, from_spool, "encode_error")
                    settled = True
                    continue
                while True:
                    outcome, retry_after = await self._post(client, batch, body)
                    if outcome is not Outcome.RETRY:
                        await self._settle(batch, from_spool, None if outcome is Outcome.SENT else "rejected")
                        settled, failures = True, 0   # an answer other than "retry": the backend is there
                        self._set_down(False)
                        break
                    failures += 1
                    delay = self._backoff.delay(failures, retry_after)
                    if failures > self.cfg.retries:
                        self._set_down(True)
                        break
                    if self._closing.is_set() and trio.current_time() + delay >= self._deadline:
                        break
                    await trio.sleep(delay)
            finally:
                if not settled:
                    self._put_back(batch, from_spool)
            if not settled:
                await self._pause(delay)

    async def _pause(self, delay: float) -> None:
        """Wait ``delay`` before the next probe; during shutdown give up when it would pass the deadline."""
        if not self._closing.is_set():
            with trio.move_on_after(delay):  # a shutdown starting meanwhile gets a prompt last attempt
                await self._closing.wait()
        elif trio.current_time() + delay < self._deadline:
            await trio.sleep(delay)
        else:
            self._gave_up = True
            self._changed()
            await trio.sleep_forever()

    async def _post(self, client: httpx.Client, batch: Batch, body: bytes) -> tuple[Outcome, float | None]:
        """One request; the outcome and the Retry-After seconds if the backend sent one."""
        headers = {**self._headers, "Idempotency-Key": batch.id.hex()}
        batch.tried = True
        start = trio.current_time()
        outcome, retry_after = Outcome.RETRY, None
        try:
            status, resp, error = await post(client, self.cfg.url, body, headers, self.cfg.timeout)
        finally:
            self.m.forwarder_latency.observe(trio.current_time() - start)
        if status == "connect_error":
            self._log(logging.WARNING, "backend_unreachable", url=self.cfg.url, error=str(error))
        elif status == "error":
            self._log(logging.WARNING, "request_failed", url=self.cfg.url, error=f"{type(error).__name__}: {error}")
        elif resp is not None:
            outcome = classify(resp.status_code)
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if outcome is Outcome.PERMANENT:
                self._log(logging.ERROR, "batch_rejected", status=resp.status_code, flows=len(batch.flows),
                          body=resp.content[:BODY_LOG_CHARS].decode("utf-8", "replace"))
            elif outcome is Outcome.RETRY:
                self._log(logging.WARNING, "backend_refused", status=resp.status_code, retry_after=retry_after)
        self.m.forwarder_requests.labels(status=status).inc()
        return outcome, retry_after

    # ---- local sinks -------------------------------------------------------------------------
    async def _run_local(self, receive: trio.MemoryReceiveChannel[Flows],
                         task_status: trio.TaskStatus[None]) -> None:
        """url == "": every flow as a JSON line to ``cfg.file`` if set, else to stdout."""
        write = self._file.write if self._file is not None else _write_stdout
        task_status.started()
        async for flows in receive:
            if not flows:
                continue
            self._pending += len(flows)
            try:
                await trio.to_thread.run_sync(write, flows)
            except (OSError, TypeError, ValueError) as e:
                self._log(logging.ERROR, "local_write_failed", error=str(e))
                self._drop(len(flows), "write_error")
            else:
                if self._file is not None:
                    self.m.forwarder_file_flows.inc(len(flows))
                self._sent(len(flows))

    def _write_file(self, flows: Flows | Packed) -> None:
        assert self._file is not None
        self._file.write(_flows_of(flows))

    async def _file_writer(self, receive: trio.MemoryReceiveChannel[Flows]) -> None:
        """The optional file copy next to HTTP delivery (its own drop counters, stage forwarder_file)."""
        assert self._file is not None
        async with receive:
            async for flows in receive:
                try:
                    await trio.to_thread.run_sync(self._write_file, flows)
                except (OSError, TypeError, ValueError, zlib.error) as e:
                    self._log(logging.ERROR, "file_write_failed", path=self.cfg.file, error=str(e))
                    self.m.flows_dropped.labels(stage=FILE_STAGE, reason="write_error").inc(len(flows))
                else:
                    self.m.forwarder_file_flows.inc(len(flows))


def _flows_of(flows: Flows | Packed) -> Flows:
    """Flows one by one (a packed batch unpacked)."""
    return flows.unpack() if type(flows) is Packed else flows  # type: ignore[return-value]


def _unpacked(batch: Batch) -> Batch:
    """The batch with its flows one by one (a packed one unpacked; same seq and id)."""
    flows = batch.flows
    if type(flows) is not Packed:
        return batch
    return Batch(batch.seq, flows.unpack(), batch.id, batch.tried)


def _write_stdout(flows: Flows) -> None:
    out = sys.stdout
    out.write(json_lines(flows))
    out.flush()


def _open_spool(cfg: ForwarderConfig) -> Spool:
    try:
        return Spool(cfg.spool_dir, cfg.spool_max_bytes, fsync=cfg.spool_fsync)
    except BlockingIOError:
        raise SettingError("forwarder.spool_dir", f"{cfg.spool_dir!r} is in use by another flowpipe process") from None
    except OSError as e:
        raise SettingError("forwarder.spool_dir", f"cannot use {cfg.spool_dir!r}: {e.strerror or e}") from None


def _open_file(cfg: ForwarderConfig) -> FileSink | None:
    if not cfg.file:
        return None
    try:
        return FileSink(cfg.file, cfg.file_max_bytes, cfg.file_backups)
    except OSError as e:
        raise SettingError("forwarder.file", f"cannot open {cfg.file!r}: {e.strerror or e}") from None
