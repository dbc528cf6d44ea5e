"""sFlow interface counters as Prometheus metrics, one series per (agent, ifIndex).

``InterfaceCounterMetrics(registry).update(agent, counters)`` keeps the latest generic interface
counters (:class:`flowpipe.decode.sflow.InterfaceCounters`; other records are ignored) and a
collector on ``registry`` exposes them at scrape time:

- counters ``flowpipe_sflow_interface_{in,out}_{octets,packets,errors,discards}_total`` (the
  device's own values, so a device reset or 32-bit wrap shows as a counter reset; packets are
  unicast + multicast + broadcast);
- gauges ``flowpipe_sflow_interface_speed_bps``, ``..._oper_status`` and ``..._admin_status``
  (1 up, 0 down), ``flowpipe_sflow_interface_series`` (series held).

At most ``max_series`` (agent, ifIndex) pairs are held: records for a new pair past the cap are
refused and counted in ``flowpipe_sflow_interface_series_refused_total``, while pairs already held
keep updating. A pair not updated for ``expire_after`` seconds is dropped (checked at most once a minute, before
an update; 0 keeps pairs forever).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from flowpipe.decode.sflow import InterfaceCounters

P = "flowpipe_sflow_interface_"
LABELS = ["agent", "ifindex"]
_COUNTERS = (  # (name, help, position in a series' values)
    ("in_octets", "octets received (ifInOctets)", 0),
    ("out_octets", "octets sent (ifOutOctets)", 1),
    ("in_packets", "packets received (unicast + multicast + broadcast)", 2),
    ("out_packets", "packets sent (unicast + multicast + broadcast)", 3),
    ("in_errors", "inbound packets with errors (ifInErrors)", 4),
    ("out_errors", "outbound packets with errors (ifOutErrors)", 5),
    ("in_discards", "inbound packets discarded (ifInDiscards)", 6),
    ("out_discards", "outbound packets discarded (ifOutDiscards)", 7),
)
_GAUGES = (
    ("speed_bps", "interface speed in bits per second (ifSpeed)", 8),
    ("oper_status", "1 when the interface is operationally up", 9),
    ("admin_status", "1 when the interface is administratively up", 10),
)
_SWEEP_EVERY = 60.0


class InterfaceCounterMetrics:
    """Latest sFlow interface counters per (agent, ifIndex), exposed on a Prometheus registry."""

    def __init__(self, registry: CollectorRegistry, max_series: int = 10000, expire_after: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_series = max_series
        self.expire_after = expire_after
        self._clock = clock
        # (agent, ifindex) -> (values tuple, last update time); tuples are replaced, never mutated,
        # so a scrape from another thread sees each series whole.
        self._series: dict[tuple[str, str], tuple[tuple[int, ...], float]] = {}
        self._next_sweep = clock() + _SWEEP_EVERY
        self.refused = Counter(P + "series_refused", "sFlow interface counter records not exposed because"
                               " max_series (agent, ifindex) pairs are already held", registry=registry)
        registry.register(self)

    def update(self, agent: str, counters: Iterable[object]) -> None:
        """Record the interface counters one datagram from ``agent`` carried."""
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_EVERY
            self.expire(now)
        series = self._series
        for c in counters:
            if not isinstance(c, InterfaceCounters):
                continue
            key = (agent, str(c.if_index))
            if key not in series and len(series) >= self.max_series:
                self.refused.inc()
                continue
            series[key] = ((c.in_octets, c.out_octets, c.in_packets, c.out_packets, c.in_errors, c.out_errors,
                            c.in_discards, c.out_discards, c.speed, int(c.oper_up), int(c.admin_up)), now)

    def expire(self, now: float | None = None) -> int:
        """Drop series not updated for ``expire_after`` seconds; returns how many were dropped."""
        if self.expire_after <= 0:
            return 0
        limit = (self._clock() if now is None else now) - self.expire_after
        stale = [k for k, (_, seen) in list(self._series.items()) if seen < limit]
        for k in stale:
            self._series.pop(k, None)
        return len(stale)

    def __len__(self) -> int:
        return len(self._series)

    def describe(self) -> list[Metric]:
        return [*self._families(), GaugeMetricFamily(P + "series", "")]

    def collect(self) -> Iterator[Metric]:
        snapshot = list(self._series.items())
        families = self._families()
        for (agent, ifindex), (values, _) in snapshot:
            for fam, (_, _, i) in zip(families, _COUNTERS + _GAUGES, strict=True):
                fam.add_metric([agent, ifindex], values[i])
        yield from families
        yield GaugeMetricFamily(P + "series", "(agent, ifindex) pairs whose interface counters are held",
                                value=len(snapshot))

    @staticmethod
    def _families() -> list[CounterMetricFamily | GaugeMetricFamily]:
        fams: list[CounterMetricFamily | GaugeMetricFamily] = [
            CounterMetricFamily(P + name, doc, labels=LABELS) for name, doc, _ in _COUNTERS]
        fams += [GaugeMetricFamily(P + name, doc, labels=LABELS) for name, doc, _ in _GAUGES]
        return fams
