"""Several worker processes on the same ports (``workers > 1``), behind one /metrics view.

Each worker is a whole pipeline (``flowpipe run --worker I/N``) with one SO_REUSEPORT socket per
listener. The kernel hashes a datagram's source address and port to a socket, so one exporter
always reaches the same worker: its templates, sequence state and flow contexts live in one
process and no cross-process merge is needed (the flow key includes the exporter). The supervisor
restarts a worker that dies, forwards SIGTERM/SIGINT (each worker then flushes and delivers what it
holds), and serves /metrics as the union of the workers' metrics with a ``worker`` label added.
"""
from __future__ import annotations

import copy
import logging
import os
import shutil
import signal
import sys
import tempfile
from typing import Any

import trio
from prometheus_client import Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flowpipe import summary
from flowpipe.config import Config, split_host_port
from flowpipe.decode.state import worker_state_file
from flowpipe.httpd import MetricsServer
from flowpipe.logs import event
from flowpipe.metrics import Metrics


def worker_count(cfg: Config) -> int:
    return max((lc.workers for lc in cfg.listeners), default=1)


def worker_config(cfg: Config, index: int) -> Config:
    """What worker ``index`` runs: the listeners with more than ``index`` workers, a private metrics
    port, its own template state file and spool directory."""
    c = copy.deepcopy(cfg)
    c.listeners = [lc for lc in c.listeners if lc.workers > index]
    c.metrics.listen = "127.0.0.1:0"
    if c.decoder.state_file:
        c.decoder.state_file = worker_state_file(c.decoder.state_file, index)
    if c.forwarder.spool_dir:
        c.forwarder.spool_dir = os.path.join(c.forwarder.spool_dir, f"w{index}")
    return c


async def _http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with trio.move_on_after(timeout):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), body
    return 0, b""


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def merge_metrics(texts: dict[int, str]) -> str:
    """Prometheus texts of several workers as one, every sample labelled with its worker."""
    families: dict[str, tuple[str, str, list[str]]] = {}
    for worker, text in sorted(texts.items()):
        for fam in text_string_to_metric_families(text):
            help_, type_, lines = families.setdefault(fam.name, (fam.documentation, fam.type, []))
            for s in fam.samples:
                labels = {**s.labels, "worker": str(worker)}
                body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                lines.append(f"{s.name}{{{body}}} {s.value!r}")
    out = []
    for name, (help_, type_, lines) in families.items():
        out += [f"# HELP {name} {help_}", f"# TYPE {name} {type_}", *lines]
    return "\n".join(out) + "\n"


class Supervisor:
    def __init__(self, cfg: Config, config_path: str | None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.n = worker_count(cfg)
        self.rundir = tempfile.mkdtemp(prefix="flowpipe-workers-")
        self.procs: list[Any] = [None] * self.n
        self.stopping = False
        self.exit_codes: dict[int, int] = {}
        self.startup_failed = 0
        self.metrics = Metrics()  # the supervisor's own, merged with the workers'
        r = self.metrics.registry
        self.restarts = Counter("flowpipe_worker_restarts", "worker processes restarted after dying", ["worker"],
                                registry=r)
        self.up = Gauge("flowpipe_workers_up", "worker processes running", registry=r)

    def port_of(self, index: int) -> int | None:
        try:
            with open(os.path.join(self.rundir, f"worker-{index}.port")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    async def metrics_text(self) -> bytes:
        texts = {}
        for i in range(self.n):
            port = self.port_of(i)
            if port is not None:
                status, body = await _http_get(port, "/metrics")
                if status == 200:
                    texts[i] = body.decode()
        own = generate_latest(self.metrics.registry).decode()
        return (merge_metrics(texts) + "\n".join(
            line for line in own.splitlines() if line.startswith(("flowpipe_worker", "# HELP flowpipe_worker",
                                                                   "# TYPE flowpipe_worker")))).encode() + b"\n"

    async def health(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "stopping"
        bad = []
        for i in range(self.n):
            port = self.port_of(i)
            if port is None or (await _http_get(port, "/healthz", 2.0))[0] != 200:
                bad.append(str(i))
        return (not bad, "ok" if not bad else "workers not healthy: " + ", ".join(bad))

    def _command(self, index: int) -> list[str]:
        cmd = [sys.executable, "-m", "flowpipe.cli", "run", "--worker", f"{index}/{self.n}", "--run-dir", self.rundir]
        if self.config_path:
            cmd += ["--config", self.config_path]
        return cmd

    async def _keep_running(self, index: int) -> None:
        delay = 1.0
        while not self.stopping:
            proc = await trio.lowlevel.open_process(self._command(index))
            self.procs[index] = proc
            self.up.inc()
            try:
                rc = await proc.wait()
            finally:
                self.up.dec()
            self.exit_codes[index] = rc
            if self.stopping:
                return
            if rc in (1, 2) and self.port_of(index) is None:
                # It never started (a busy port, a bad directory: it said which on stderr); restarting
                # would fail the same way, so stop the others and exit with its code.
                self.startup_failed = rc
                self.stop()
                return
            self.restarts.labels(str(index)).inc()
            event(logging.ERROR, "worker_died", worker=index, exit_code=rc, restart_in=delay)
            await trio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def stop(self) -> None:
        self.stopping = True
        for p in self.procs:
            if p is not None and p.returncode is None:
                p.send_signal(signal.SIGTERM)

    async def run(self) -> int:
        server = None
        if self.cfg.metrics.listen:
            server = MetricsServer(split_host_port(self.cfg.metrics.listen, None), self.metrics, self.health,
                                   self.metrics_text)
            await server.open()
        summary.started(self.cfg, server.port if server is not None else None)
        try:
            async with trio.open_nursery() as outer:
                if server is not None:
                    outer.start_soon(server.run)
                outer.start_soon(self._signals)
                async with trio.open_nursery() as workers:
                    for i in range(self.n):
                        workers.start_soon(self._keep_running, i)
                outer.cancel_scope.cancel()
        finally:
            shutil.rmtree(self.rundir, ignore_errors=True)
        bad = {i: rc for i, rc in self.exit_codes.items() if rc != 0}
        event(logging.INFO, "stopped", workers=self.n, failed=bad or "none")
        if self.startup_failed:
            return self.startup_failed
        return 0 if not bad else 1

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for sig in signals:
                event(logging.INFO, "signal", signal=signal.Signals(sig).name, forwarded_to=self.n)
                self.stop()
