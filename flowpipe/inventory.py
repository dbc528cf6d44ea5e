"""The exporter inventory served as ``GET /exporters`` on the metrics port: every (namespace, exporter,
flow type) the sequence tracker has seen, with its traffic counts and sequence state.

It is built from :class:`flowpipe.aggregate.sequence.SequenceTracker`'s state (kept in the aggregator
process, so exporters decoded by any worker are in it). One entry per (namespace, exporter, flow type);
an exporter with several observation domains has one ``domains`` entry per domain.
"""
from __future__ import annotations

from typing import Any

import orjson


def _iso(t: float) -> str:
    import datetime  # noqa: PLC0415 - only when /exporters is asked for

    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="milliseconds")


def exporters(states: dict[tuple, Any]) -> list[dict[str, Any]]:
    """The inventory as a list of JSON objects, sorted by namespace, address and flow type."""
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
    for e in out:
        e["first_seen"], e["last_seen"] = _iso(e["first_seen"]), _iso(e["last_seen"])
    return out


def render(states: dict[tuple, Any]) -> bytes:
    return orjson.dumps(exporters(states), option=orjson.OPT_INDENT_2) + b"\n"
