"""Exporter metadata: the exporters seen, POSTed periodically in the Datadog Agent's NDM batch shape.

The Agent sends, per namespace, ``NetworkDevicesMetadata`` payloads ``{"namespace", "integration":
"netflow", "netflow_exporters": [{"id": "<namespace>:<ip>:<flow_type>", "ip_address", "flow_type"}],
"collect_timestamp"}`` (``subnet`` left out when empty, as the Agent's ``omitempty`` does), at most
100 exporters a payload (``PayloadMetadataBatchSize``), as events its event-platform forwarder batches
into JSON arrays. flowpipe POSTs those arrays (at most ``PAYLOADS_PER_REQUEST`` payloads each) to
``[metadata] url`` every ``interval`` seconds, with the exporters seen since the last round that was
delivered in full (a failed round is sent again, with what came since, next time). Nothing is retried
within a round: metadata is a periodic snapshot. An exporter whose address is not an IP address
(an in-band name) is left out and counted, where the Agent logs an error.
"""
from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import orjson
import trio

from flowpipe import __version__
from flowpipe.cache import bounded_put
from flowpipe.forward.config import ForwarderConfig, MetadataConfig
from flowpipe.forward.encode import content_headers, gzip_bytes
from flowpipe.forward.request import post, tls_context
from flowpipe.logs import RateLimited
from flowpipe.metrics import Metrics
from flowpipe.pipeline import ExporterSeen

BATCH_EXPORTERS = 100        # exporters per payload (the Agent's PayloadMetadataBatchSize)
PAYLOADS_PER_REQUEST = 250   # payloads per POST (the Agent's event-platform batch max size)
MAX_SKIPPED_REMEMBERED = 10_000  # non-IP exporters remembered as already counted


def payloads(exporters: Iterable[tuple[str, str, str]], collect_timestamp: int) -> list[dict[str, Any]]:
    """NDM metadata payloads for (namespace, ip, flow type) triples: one or more per namespace, in the
    order namespaces and exporters first appear, each exporter once."""
    by_ns: dict[str, dict[str, dict[str, str]]] = {}
    for ns, ip, flow_type in exporters:
        eid = f"{ns}:{ip}:{flow_type}"
        by_ns.setdefault(ns, {}).setdefault(eid, {"id": eid, "ip_address": ip, "flow_type": flow_type})
    out: list[dict[str, Any]] = []
    for ns, entries in by_ns.items():
        items = list(entries.values())
        for i in range(0, len(items), BATCH_EXPORTERS):
            out.append({"namespace": ns, "integration": "netflow", "netflow_exporters": items[i:i + BATCH_EXPORTERS],
                        "collect_timestamp": collect_timestamp})
    return out


def _ip(text: str) -> str | None:
    """The address in its compressed form, or None when ``text`` is not an IP address."""
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return None


class MetadataSender:
    """Every ``cfg.interval`` seconds, POSTs the exporters ``seen()`` reports as active since the last
    delivered round."""

    def __init__(self, cfg: MetadataConfig, metrics: Metrics, *, forwarder: ForwarderConfig,
                 seen: Callable[[], Iterable[ExporterSeen]]) -> None:
        """``forwarder``: whose headers, TLS settings, timeout and compression apply; ``seen``: the
        exporters seen so far."""
        self.cfg, self.fwd, self.m, self.seen = cfg, forwarder, metrics, seen
        self._tls = tls_context(forwarder)  # the forwarder's TLS settings
        self._headers = {"User-Agent": f"flowpipe/{__version__}", **content_headers("json", forwarder.compression),
                         **forwarder.headers}
        self._log = RateLimited(metrics.log_suppressed)
        self._since = 0.0  # exporters last seen after this (wall clock) go in the next round
        self._skipped: dict[str, bool] = {}  # non-IP exporters already counted (bounded)

    def due(self) -> list[tuple[str, str, str]]:
        """(namespace, ip, flow type) of the exporters seen since the last delivered round."""
        out = []
        for ns, exporter, flow_type, last_seen in self.seen():
            if last_seen < self._since:
                continue
            ip = _ip(exporter)
            if ip is None:
                if exporter not in self._skipped:
                    bounded_put(self._skipped, MAX_SKIPPED_REMEMBERED, exporter, True)  # counted again at worst
                    self.m.metadata_exporters_skipped.inc()
                    self._log(logging.WARNING, "metadata_exporter_skipped", exporter=exporter,
                              reason="not an IP address")
                continue
            out.append((ns, ip, flow_type))
        return out

    async def run(self) -> None:
        with httpx.Client(verify=self._tls, timeout=self.fwd.timeout) as client:
            while True:
                await trio.sleep(self.cfg.interval)
                await self.round(client)

    async def round(self, client: httpx.Client) -> bool:
        """One round: True when every request of it was accepted (or there was nothing to send)."""
        now = time.time()
        entries = self.due()
        batch = payloads(entries, int(now))
        ok = True
        for i in range(0, len(batch), PAYLOADS_PER_REQUEST):
            part = batch[i:i + PAYLOADS_PER_REQUEST]
            if await self._post(client, part):
                self.m.metadata_exporters_sent.inc(sum(len(p["netflow_exporters"]) for p in part))
            else:
                ok = False
        if ok:
            self._since = now
        return ok

    async def _post(self, client: httpx.Client, part: list[dict[str, Any]]) -> bool:
        body = orjson.dumps(part)
        if self.fwd.compression == "gzip":
            body = gzip_bytes(body)
        status, _, _ = await post(client, self.cfg.url, body, self._headers, self.fwd.timeout)
        self.m.metadata_requests.labels(status=status).inc()
        if not status.startswith("2"):
            self._log(logging.WARNING, "metadata_not_sent", url=self.cfg.url, status=status,
                      payloads=len(part))
            return False
        return True
