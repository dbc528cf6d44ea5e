"""Per-exporter policies applied around decoding: who may send, and which sampling rate applies.

Both are decided once per exporter address and cached (bounded), so the cost per datagram is a
dict lookup.
"""
from __future__ import annotations

from typing import Any

from flowpipe.cache import bounded_put
from flowpipe.cidr import Allowlist, address, networks
from flowpipe.decode.config import SamplingRule
from flowpipe.flow import BYTES, EXTRAS, PACKETS, SAMPLING_RATE

MAX_CACHED = 100_000
__all__ = ["Allowlist", "SamplingPolicy", "settled", "settled_rate", "tagged", "with_tags"]


def settled_rate(own: int, default: int, override: int) -> int:
    """The sampling rate a ``[[sampling]]`` rule leaves a flow: its override, else the flow's own,
    else its default (0: still unknown)."""
    return override or own or default


def settled(f: tuple, default: int, override: int, scale: bool) -> tuple:
    """The flow ``f`` with the rate a ``[[sampling]]`` rule leaves it (:func:`settled_rate`); with
    ``scale``, its bytes and packets multiplied by that rate, which is then 1. ``f`` itself when
    nothing changes."""
    rate = settled_rate(f[SAMPLING_RATE], default, override)
    scaled = scale and rate > 1
    if rate == f[SAMPLING_RATE] and not scaled:
        return f
    lf = list(f)
    lf[SAMPLING_RATE] = rate
    if scaled:
        lf[BYTES] *= rate
        lf[PACKETS] *= rate
        lf[SAMPLING_RATE] = 1
    return tuple(lf)


def tagged(tags: dict[str, str], own: dict[str, Any] | None) -> dict[str, Any]:
    """A flow's additional fields with ``tags`` added (its own values win)."""
    return {**tags, **own} if own else dict(tags)


class SamplingPolicy:
    """Applies ``[[sampling]]`` rules (default / override) and optional scaling to decoded flows."""

    def __init__(self, rules: list[SamplingRule], scale: bool = False) -> None:
        # rules for one sampler id are applied by the template decoder (see SamplerRules)
        self.rules = [(networks(r.exporters), r.default, r.override) for r in rules if r.sampler_id < 0]
        self.scale = scale
        self._cache: dict[str, tuple[int, int]] = {}  # bounded: MAX_CACHED

    @property
    def active(self) -> bool:
        return bool(self.rules) or self.scale

    def rule_for(self, exporter: str) -> tuple[int, int]:
        """(default, override) for this exporter; (0, 0) when no rule matches."""
        hit = self._cache.get(exporter)
        if hit is None:
            hit = (0, 0)
            a = address(exporter)
            if a is not None:
                for nets, default, override in self.rules:
                    if any(a.version == n.version and a in n for n in nets):
                        hit = (default, override)
                        break
            bounded_put(self._cache, MAX_CACHED, exporter, hit)
        return hit

    def apply(self, flows: list[tuple], exporter: str) -> tuple[list[tuple], int]:
        """The flows with their sampling rate settled (and scaled when asked); also how many have no rate."""
        default, override = self.rule_for(exporter)
        out: list[tuple] = []
        unknown = 0
        for f in flows:
            g = settled(f, default, override, self.scale)
            if not g[SAMPLING_RATE]:  # (0 stays 0 when scaled)
                unknown += 1
            out.append(g)
        return out, unknown


def with_tags(flows: list[tuple], tags: dict[str, str]) -> list[tuple]:
    """The flows with ``tags`` added to their additional fields (a flow's own values win)."""
    out = []
    for f in flows:
        lf = list(f)
        lf[EXTRAS] = tagged(tags, f[EXTRAS])
        out.append(tuple(lf))
    return out


class SamplerRules:
    """``[[sampling]]`` rules naming a sampler id, applied to an exporter domain's known samplers."""

    def __init__(self, rules: list[SamplingRule]) -> None:
        self.rules = [(networks(r.exporters), r.sampler_id, r.default, r.override) for r in rules if r.sampler_id >= 0]
        self._cache: dict[str, list[tuple[int, int, int]]] = {}  # bounded: MAX_CACHED

    def __bool__(self) -> bool:
        return bool(self.rules)

    def for_exporter(self, exporter: str) -> list[tuple[int, int, int]]:
        """(sampler id, default, override) of the rules matching ``exporter``."""
        hit = self._cache.get(exporter)
        if hit is None:
            a = address(exporter)
            hit = [(sid, d, o) for nets, sid, d, o in self.rules
                   if a is not None and any(a.version == n.version and a in n for n in nets)]
            bounded_put(self._cache, MAX_CACHED, exporter, hit)
        return hit

    def apply(self, samplers: dict[int, int], exporter: str) -> dict[int, int]:
        """``samplers`` (sampler id -> rate) with the rates the rules for ``exporter`` set: the same
        dict when they change nothing, else a new one (``samplers`` is never changed in place)."""
        out = samplers
        for sid, default, override in self.for_exporter(exporter):
            rate = override or (default if not out.get(sid) else 0)
            if rate and out.get(sid) != rate:
                out = {**out, sid: rate}
        return out
