"""What ``flowpipe run`` says when it has started (where flows go, how to stop) and when it stops
(the run's totals), one log line each."""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flowpipe.config import Config
from flowpipe.forward.config import SECRET_HEADER_WORDS
from flowpipe.logs import event
from flowpipe.metrics import Metrics
from flowpipe.startup import address_text


def masked_url(url: str) -> str:
    """``url`` with a password and secret-looking query values replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"***@{hostport}"
    query = urlencode([(k, "***" if any(w in k.lower() for w in SECRET_HEADER_WORDS) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def destinations(cfg: Config) -> str:
    fw = cfg.forwarder
    out = []
    if fw.url:
        out.append(masked_url(fw.url))
        out.append(f"spool {fw.spool_dir}" if fw.spool_dir else "no spool (undelivered flows kept in memory)")
    elif not fw.file:
        out.append("stdout")
    if fw.file:
        out.append(f"file {fw.file}")
    return ", ".join(out)


def started(cfg: Config, metrics_port: int | None) -> None:
    """One line once every port is bound (``cfg`` holds the bound ports by then)."""
    listeners = ", ".join(f"{lc.flow_type} udp {address_text(lc.bind_host, lc.port)} workers={lc.workers}"
                          for lc in cfg.listeners)
    event(logging.INFO, "started", listeners=listeners or "none", flows_to=destinations(cfg),
          flush_interval=f"{cfg.aggregator.flush_interval:g}s",
          metrics=(f"{cfg.metrics.listen.rsplit(':', 1)[0]}:{metrics_port}" if metrics_port is not None
                   else "off"),
          stop="SIGTERM or Ctrl-C stops after a final flush")


def _sum(metrics: Metrics, name: str) -> int:
    total = 0.0
    for fam in metrics.registry.collect():
        for s in fam.samples:
            if s.name == name:
                total += s.value
    return int(total)


def totals(metrics: Metrics) -> dict[str, Any]:
    return {
        "datagrams": _sum(metrics, "flowpipe_datagrams_received_total"),
        "flows_decoded": _sum(metrics, "flowpipe_flows_decoded_total"),
        "flows_delivered": _sum(metrics, "flowpipe_forwarder_flows_sent_total"),
        "flows_to_file": _sum(metrics, "flowpipe_forwarder_file_flows_total"),
        "flows_spooled": _sum(metrics, "flowpipe_flows_spooled_total"),
        "flows_dropped": _sum(metrics, "flowpipe_flows_dropped_total"),
    }

