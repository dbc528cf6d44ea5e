"""The exporter inventory served as ``GET /exporters`` on the metrics port: every (namespace, exporter,
flow type) the sequence tracker has seen, with its traffic counts and sequence state, the last sampling
rate it announced and its live NetFlow v9 / IPFIX templates.

It is built from what the stages report, read-only: the accumulator stage's exporter domains
(``AccumulatorStage.exporter_domains``: the sequence tracker's state) and the decoders' sampling
rates and template domains (:mod:`flowpipe.decode.facts`). One entry per (namespace, exporter, flow
type); an exporter with several observation domains has one ``domains`` entry per domain, and one
``templates`` entry per template domain (UDP source port and source id / observation domain).
Template id lists are cut at ``MAX_IDS`` and domains at ``MAX_DOMAINS`` (``truncated`` says so).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from flowpipe.decode.facts import DomainView, ExporterKey, TemplateDomains

MAX_IDS = 64      # template ids listed per kind and domain
MAX_DOMAINS = 64  # template domains listed per exporter


def _iso(t: float) -> str:
    import datetime  # noqa: PLC0415 - only when /exporters is asked for

    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="milliseconds")


def _ids(ids: Any) -> tuple[list[int], bool]:
    ids = list(ids)
    return ids[:MAX_IDS], len(ids) > MAX_IDS


def templates_entry(domains: list[tuple[DomainView, list[int]]]) -> tuple[list[dict[str, Any]], bool]:
    """One exporter's template domains as JSON objects (sorted by source port and domain), and
    whether anything was cut."""
    out: list[dict[str, Any]] = []
    cut = len(domains) > MAX_DOMAINS
    for v, waiting in sorted(domains, key=lambda d: (d[0].source_port, d[0].domain))[:MAX_DOMAINS]:
        data, c1 = _ids(v.data_ids)
        options, c2 = _ids(v.option_ids)
        wait, c3 = _ids(waiting)
        cut = cut or c1 or c2 or c3
        out.append({"domain": v.domain, "source_port": v.source_port,
                    "count": len(v.data_ids) + len(v.option_ids), "data": data, "options": options,
                    "waiting_for": wait, "sampling_rate": v.sampling_rate,
                    "last_template": _iso(v.refreshed) if v.refreshed else None})
    return out, cut


def exporters(states: dict[tuple, Any], rates: Callable[[ExporterKey], int] | None = None,
              domains: TemplateDomains | None = None) -> list[dict[str, Any]]:
    """The inventory as a list of JSON objects, sorted by namespace, address and flow type.

    ``states``: the sequence state by (namespace, exporter, flow type, domain)
    (``AccumulatorStage.exporter_domains()``); ``rates``: the last sampling rate an exporter
    announced (0 when none); ``domains``: the live template domains by exporter key
    (:func:`flowpipe.decode.facts.template_domains`)."""
    by: dict[tuple[str, str, str], dict[str, Any]] = {}
    for (ns, exporter, flow_type, domain), st in sorted(states.items(), key=lambda kv: kv[0]):
        e = by.get((ns, exporter, flow_type))
        if e is None:
            e = by[(ns, exporter, flow_type)] = {
                "namespace": ns, "address": exporter, "flow_type": flow_type,
                "id": f"{ns}:{exporter}:{flow_type}", "first_seen": st.first_seen, "last_seen": st.last_seen,
                "datagrams": 0, "flows": 0, "domains": []}
        e["first_seen"] = min(e["first_seen"], st.first_seen)
        e["last_seen"] = max(e["last_seen"], st.last_seen)
        e["datagrams"] += st.datagrams
        e["flows"] += st.flows
        e["domains"].append({"domain": domain, "sequence_last": st.last_seq, "sequence_expected": st.expected,
                             "resets": st.resets})
    out = list(by.values())
    for key, e in by.items():
        e["first_seen"], e["last_seen"] = _iso(e["first_seen"]), _iso(e["last_seen"])
        e["sampling_rate"] = rates(key) if rates is not None else 0
        e["templates"], e["templates_truncated"] = templates_entry((domains or {}).get(key, []))
    return out


def render(states: dict[tuple, Any], rates: Callable[[ExporterKey], int] | None = None,
           domains: TemplateDomains | None = None) -> bytes:
    return orjson.dumps(exporters(states, rates, domains), option=orjson.OPT_INDENT_2) + b"\n"
