"""UDP listeners: bind sockets, read datagrams in batches, hand them to the decoder stage.

A listener never blocks on the decoder: when the decoder's queue is full the batch is dropped
and counted (``flowpipe_datagrams_dropped_total{reason="queue_full"}``), so overload shows in
flowpipe's metrics rather than only in the kernel's counters, which are exported too
(``flowpipe_socket_drops_total``, read from /proc/net/udp).
"""
from __future__ import annotations

import errno
import logging
import os
import socket
import time

import trio

from flowpipe.cache import bounded_put
from flowpipe.listen_config import ListenerConfig
from flowpipe.logs import RateLimited, event
from flowpipe.metrics import Metrics
from flowpipe.pipeline import Datagram
from flowpipe.startup import bind_error

MAX_DATAGRAM = 65535
BATCH = 1024  # datagrams a listener hands on at most at once
# After a batch shorter than BATCH the reader waits before looking again (coalesce_wait), so datagrams
# arriving in a steady stream are handed on many at a time: each batch costs the listener, decoder
# and accumulator a fixed amount (wake-ups, numpy calls), which at a few dozen datagrams a batch was
# a fifth of the service's CPU. A full batch is handed on at once.
COALESCE_MAX = 0.050  # the longest wait
COALESCE_MIN = 0.001
QUEUED_OVERHEAD = 1024  # what the kernel counts against the socket buffer per queued datagram, beyond its bytes
BURST_RATE = 20_000  # datagrams a second the socket buffer is sized against while waiting (a burst may start)
MAX_HOSTS = 65536  # exporter addresses whose text is shared before the cache starts over
RECV_CALL = 64  # datagrams read per system call where recvmmsg is at hand (flowpipe/_udp.c)

try:
    from flowpipe._udp import Receiver  # type: ignore[import-not-found]
except ImportError:  # not built (no C compiler, or no recvmmsg): one recvfrom_into per datagram
    Receiver = None
RECV_MANY = Receiver is not None  # which reader runs (the tests read it)


def coalesce_wait(rate: float, size: float, buffer: int) -> float:
    """How long to wait after a short batch, at ``rate`` datagrams a second of ``size`` bytes with a
    socket buffer of ``buffer`` bytes: about as long as a full batch takes to queue, never longer
    than :data:`COALESCE_MAX` nor than arrivals at ``rate`` or a burst of :data:`BURST_RATE` take to
    fill half the buffer (a small buffer: short waits, no kernel drops from waiting)."""
    fits = buffer / (size + QUEUED_OVERHEAD)
    full = 0.9 * BATCH / rate if rate > 0 else COALESCE_MAX
    return max(COALESCE_MIN, min(COALESCE_MAX, full, 0.5 * fits / max(rate, BURST_RATE)))


def _rmem_max() -> int | None:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class UdpListener:
    """One ``[[listeners]]`` entry: ``workers`` sockets on one address and port."""

    def __init__(self, cfg: ListenerConfig, metrics: Metrics, *, worker_process: bool = False) -> None:
        """``worker_process``: this process is one of ``workers`` (flowpipe.supervisor): it opens one
        SO_REUSEPORT socket, its share of the port; otherwise ``workers`` sockets, with SO_REUSEPORT when
        there are several."""
        self.cfg = cfg
        self.n_sockets = 1 if worker_process else cfg.workers
        self.reuseport = worker_process or cfg.workers > 1
        self.metrics = metrics
        self.name = f"{cfg.flow_type}:{cfg.port}"
        self.sockets: list[socket.socket] = []
        self._log = RateLimited(metrics.log_suppressed)
        self._received = metrics.datagrams_received.labels(cfg.flow_type)
        self._bytes = metrics.bytes_received.labels(cfg.flow_type)
        self._dropped = metrics.datagrams_dropped.labels("queue_full")
        # A zero-length datagram is received and invalid at once (it never reaches a decoder), so
        # received = decoded + invalid + held + dropped holds with them too.
        self._empty = metrics.datagrams_invalid.labels(cfg.flow_type, "empty")
        self._last_drops: dict[int, int] = {}
        self._hosts: dict[str, str] = {}  # bounded: MAX_HOSTS
        self._buffer = 0  # the sockets' receive buffer, bytes (set by open)

    def open(self) -> None:
        """Bind the sockets now, so a bad address or busy port fails at start-up."""
        family = socket.AF_INET6 if ":" in self.cfg.bind_host else socket.AF_INET
        for _ in range(self.n_sockets):
            s = socket.socket(family, socket.SOCK_DGRAM)
            try:
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                if self.reuseport:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.cfg.receive_buffer)
                s.bind((self.cfg.bind_host, self.cfg.port))
            except OSError as e:
                s.close()
                self.close()
                raise bind_error(f"listener {self.cfg.flow_type}", self.cfg.bind_host, self.cfg.port, e,
                                 "udp") from None
            s.setblocking(False)
            self.sockets.append(s)
        if self.cfg.port == 0:  # tests: an ephemeral port, then every worker shares it
            self.cfg.port = self.sockets[0].getsockname()[1]
            self.name = f"{self.cfg.flow_type}:{self.cfg.port}"
        self._kernel_drops = self.metrics.socket_drops.labels(self.name)
        self._buffer = self.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # what queued datagrams take
        granted = self._buffer // 2
        self.metrics.socket_buffer.labels(self.name).set(granted)
        if granted < self.cfg.receive_buffer:
            cap = _rmem_max()
            event(logging.WARNING, "receive_buffer_capped", listener=self.name,
                  requested=self.cfg.receive_buffer, granted=granted, rmem_max=cap,
                  fix=f"sysctl -w net.core.rmem_max={self.cfg.receive_buffer}")
        event(logging.INFO, "listening", listener=self.name, bind=self.cfg.bind_host, port=self.cfg.port,
              sockets=len(self.sockets))

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        self.sockets = []

    async def run(self, send: trio.MemorySendChannel[list[Datagram]]) -> None:
        """Read every socket until cancelled; closes ``send`` when done."""
        async with send, trio.open_nursery() as nursery:
            for s in self.sockets:
                nursery.start_soon(self._read, s, send.clone())
            nursery.start_soon(self._watch_kernel_drops)

    def _host(self, addr: str) -> str:
        """The exporter's address as text (IPv4-mapped IPv6 as IPv4), one str object per exporter:
        its hash is computed once and later stages compare it by identity."""
        host = addr[7:] if addr.startswith("::ffff:") and "." in addr else addr
        return bounded_put(self._hosts, MAX_HOSTS, addr, host)

    async def _read(self, sock: socket.socket, send: trio.MemorySendChannel[list[Datagram]]) -> None:
        # Into one reused buffer, then copied at its size: recvfrom(65535) allocates 64 KiB per datagram
        # and shrinks it, and the datagrams queued while the pipeline is busy (a flush) then leave the
        # heap fragmented for good (+60 MiB on a 1M-context flush at 150k flows/s).
        recv_into = sock.recvfrom_into
        buf = bytearray(MAX_DATAGRAM)
        view = memoryview(buf)
        many = Receiver(RECV_CALL) if Receiver is not None else None
        hosts = self._hosts
        rate, last = 0.0, time.monotonic()  # datagrams a second arriving (a running mean), last read
        async with send:
            while True:
                await trio.lowlevel.wait_readable(sock)
                batch: list[Datagram] = []
                nbytes = 0
                empty = 0
                now = time.time()
                while len(batch) < BATCH:
                    try:
                        if many is not None:  # up to RECV_CALL datagrams a system call
                            got = many.recv(sock, BATCH - len(batch))
                        else:
                            size, source = recv_into(buf)
                            got = [(bytes(view[:size]), source[0], source[1])]
                    except BlockingIOError:
                        break
                    except OSError as e:  # e.g. ICMP errors surfacing on UDP sockets
                        if e.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH):
                            self._log(logging.WARNING, "receive_error", listener=self.name, error=str(e))
                        break
                    for data, addr, port in got:
                        if not data:
                            empty += 1
                            continue
                        host = hosts.get(addr)
                        if host is None:
                            host = self._host(addr)
                        batch.append((data, host, port, now))
                        nbytes += len(data)
                    if not got or (many is not None and len(got) < RECV_CALL):
                        break  # (drained: what recvmmsg found is all there was)
                if empty:
                    self._received.inc(empty)
                    self._empty.inc(empty)
                if not batch:
                    continue
                self._received.inc(len(batch))
                self._bytes.inc(nbytes)
                try:
                    send.send_nowait(batch)
                except trio.WouldBlock:
                    self._dropped.inc(len(batch))
                    self._log(logging.WARNING, "decoder_queue_full", listener=self.name, dropped=len(batch))
                t = time.monotonic()
                if t > last:
                    rate += (len(batch) / (t - last) - rate) * 0.25
                last = t
                if len(batch) < BATCH:
                    await trio.sleep(coalesce_wait(rate, nbytes / len(batch), self._buffer))
                else:
                    await trio.lowlevel.checkpoint()

    async def _watch_kernel_drops(self) -> None:
        """Export the kernel's per-socket drop count (last column of /proc/net/udp{,6})."""
        inodes = {os.fstat(s.fileno()).st_ino for s in self.sockets}
        while True:
            drops = kernel_drops(inodes)
            for ino, n in drops.items():
                prev = self._last_drops.get(ino, 0)
                if n > prev:
                    self._kernel_drops.inc(n - prev)
                self._last_drops[ino] = n
            await trio.sleep(2.0)


def kernel_drops(inodes: set[int]) -> dict[int, int]:
    """inode -> drops, for the given sockets, from /proc/net/udp and /proc/net/udp6."""
    out: dict[int, int] = {}
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    cols = line.split()
                    if len(cols) >= 13 and int(cols[9]) in inodes:
                        out[int(cols[9])] = int(cols[-1])
        except (OSError, ValueError):
            continue
    return out
