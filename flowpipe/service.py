"""The service: every stage as a trio task in one nursery, joined by memory channels.

listeners -> decoders -> accumulator -> [reverse DNS] -> renderer -> forwarder, with the metrics
endpoint on the side. Stopping closes the listeners first; each stage then drains what it holds
and closes its output, so everything received is aggregated, emitted and delivered (or spooled)
before :meth:`Service.run` returns.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from flowpipe.aggregate.stage import AccumulatorStage
from flowpipe.config import Config, split_host_port
from flowpipe.decode.dispatch import DatagramDecoder
from flowpipe.decode.exporters import SamplerRules, SamplingPolicy
from flowpipe.decode.facts import SamplingSeen, template_domains
from flowpipe.decode.stage import DecoderStage
from flowpipe.decode.upkeep import DecoderUpkeep
from flowpipe.flow import FlushBatch
from flowpipe.httpd import MetricsServer
from flowpipe.listen import UdpListener
from flowpipe.logs import event
from flowpipe.metrics import Metrics
from flowpipe.pipeline import Datagram, FlowQueue
from flowpipe.render.stage import RenderStage
from flowpipe.summary import totals

DATAGRAM_QUEUE = 64  # datagram batches (up to listen.BATCH = 1,024 datagrams each) waiting per listener


class Service:
    """One flowpipe instance. ``await run()`` until :meth:`stop`; ports are bound before ``started``."""

    def __init__(self, cfg: Config, metrics: Metrics | None = None, worker_process: bool = False) -> None:
        """``worker_process``: one of several processes sharing the ports (see flowpipe.supervisor):
        one SO_REUSEPORT socket per listener here; the supervisor spreads exporters over processes."""
        self.cfg = cfg
        self.metrics = metrics or Metrics()
        self.listeners = [UdpListener(lc, self.metrics, worker_process=worker_process) for lc in cfg.listeners]
        sampler_rules = SamplerRules(cfg.sampling)
        self.decoders = [DatagramDecoder(lc.flow_type, cfg.decoder, lc.mapping, listener=lc,
                                         sampler_rules=sampler_rules, columnar=True) for lc in cfg.listeners]
        self.upkeep = DecoderUpkeep(cfg.decoder, self.metrics, listeners=cfg.listeners, decoders=self.decoders)
        self.queue = FlowQueue(cfg.aggregator.buffer_size)
        self.sampling = SamplingPolicy(cfg.sampling, cfg.aggregator.scale_by_sampling)
        self.accumulator = AccumulatorStage(cfg.aggregator, self.metrics, queue=self.queue,
                                            max_sequence_keys=cfg.decoder.max_exporters * 4)
        self.rates_seen = SamplingSeen(cfg.decoder.max_exporters * 4,
                                       self.metrics.limits_hit.labels("exporter_sampling_rates"))
        self.metrics_server: MetricsServer | None = None
        if cfg.metrics.listen:
            self.metrics_server = MetricsServer(split_host_port(cfg.metrics.listen, None), self.metrics,
                                                self.healthy, exporters=self.exporter_inventory)
        from flowpipe.forward import Forwarder  # noqa: PLC0415 - heavy import (httpx) kept off check-config
        self.forwarder = Forwarder(cfg.forwarder, self.metrics)
        self.rdns: Any = None
        if cfg.reverse_dns.enabled:
            from flowpipe.enrich import ReverseDnsEnricher  # noqa: PLC0415
            self.rdns = ReverseDnsEnricher(cfg.reverse_dns, self.metrics)
        self.metadata: Any = None
        if cfg.metadata.url:
            from flowpipe.forward.metadata import MetadataSender  # noqa: PLC0415
            self.metadata = MetadataSender(cfg.metadata, self.metrics, forwarder=cfg.forwarder,
                                           seen=self.accumulator.exporters_seen)
        self._listen_scopes: list[trio.CancelScope] = []
        self._expected: set[str] = set()
        self._running: set[str] = set()
        self._stopping = False

    def exporter_inventory(self) -> bytes:
        """``GET /exporters``: the exporters seen, with their sampling rates and live templates."""
        from flowpipe import inventory  # noqa: PLC0415

        return inventory.render(self.accumulator.exporter_domains(), self.rates_seen.get,
                                template_domains(self.decoders))

    # ---- control

    def stop(self) -> None:
        """Begin a graceful stop: stop receiving, then flush and deliver everything held."""
        if not self._stopping:
            event(logging.INFO, "stopping")
        self._stopping = True
        for scope in self._listen_scopes:
            scope.cancel()

    def healthy(self) -> tuple[bool, str]:
        missing = sorted(self._expected - self._running)
        if self._stopping:
            return False, "stopping"
        return (not missing, "ok" if not missing else "not running: " + ", ".join(missing))

    @property
    def ports(self) -> dict[str, int]:
        """Listener name ("netflow9", or "netflow9#1" for a second one) -> bound UDP port."""
        out: dict[str, int] = {}
        for lst in self.listeners:
            name = lst.cfg.flow_type
            while name in out:
                name += "#"
            out[name] = lst.cfg.port
        return out

    # ---- running

    async def _stage(self, name: str, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        self._running.add(name)
        up = self.metrics.stage_up.labels(name)
        up.set(1)
        try:
            await fn(*args)
        finally:
            self._running.discard(name)
            up.set(0)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        for lst in self.listeners:
            lst.open()
        self.upkeep.load()
        try:
            if self.metrics_server is not None:
                await self.metrics_server.open()
            async with trio.open_nursery() as outer:
                if self.metrics_server is not None:
                    outer.start_soon(self.metrics_server.run)
                outer.start_soon(self.upkeep.run)
                if self.metadata is not None:
                    outer.start_soon(self.metadata.run)
                async with trio.open_nursery() as pipe:
                    self._start_pipeline(pipe)
                    task_status.started(self)
                outer.cancel_scope.cancel()
        finally:
            for lst in self.listeners:
                lst.close()
            self.upkeep.save()
        event(logging.INFO, "stopped", **totals(self.metrics))

    def _start_pipeline(self, pipe: trio.Nursery) -> None:
        m = self.metrics
        flow_send = self.queue.send_channel
        for i, (lst, dec) in enumerate(zip(self.listeners, self.decoders, strict=True)):
            send, receive = trio.open_memory_channel[list[Datagram]](DATAGRAM_QUEUE)
            stage = DecoderStage(lst.cfg, m, decoder=dec, queue=self.queue, sampling=self.sampling,
                                 rates_seen=self.rates_seen)
            pipe.start_soon(self._listen, f"listener:{lst.name}", lst, send)
            self._expected |= {f"listener:{lst.name}", f"decoder:{i}"}
            pipe.start_soon(self._stage, f"decoder:{i}", stage.run, receive, flow_send.clone())
        flow_send.close()
        flush_send, flush_receive = trio.open_memory_channel[FlushBatch](4)
        pipe.start_soon(self._stage, "accumulator", self.accumulator.run, self.queue.receive_channel, flush_send)
        if self.rdns is not None:
            named_send, named_receive = trio.open_memory_channel[FlushBatch](16)
            pipe.start_soon(self._stage, "reverse_dns", self.rdns.run, flush_receive, named_send)
            flush_receive = named_receive
            self._expected.add("reverse_dns")
        out_send, out_receive = trio.open_memory_channel[list[Any]](64)
        renderer = RenderStage(self.cfg.forwarder, m, host=self.cfg.host, tags=self.cfg.tags)
        pipe.start_soon(self._stage, "renderer", renderer.run, flush_receive, out_send)
        pipe.start_soon(self._stage, "forwarder", self.forwarder.run, out_receive)
        self._expected |= {"accumulator", "renderer", "forwarder"}

    async def _listen(self, name: str, lst: UdpListener, send: trio.MemorySendChannel[list[Datagram]]) -> None:
        scope = trio.CancelScope()
        self._listen_scopes.append(scope)
        if self._stopping:
            scope.cancel()
        with scope:
            await self._stage(name, lst.run, send)
        await send.aclose()
