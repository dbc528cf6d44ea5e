"""A listener's per-flow settings applied to a batch's columns, not flow by flow.

``[[sampling]]`` rules (an exporter's default and override rate) and a listener's ``tags`` change
every flow the same way: the rate kept is ``override or the flow's own or default``, and the tags
go under each flow's additional fields (its own values win), as
:class:`flowpipe.decode.exporters.SamplingPolicy` and :func:`flowpipe.decode.exporters.with_tags`
do to flow tuples. A chunk carries its exporter's :class:`Policy`; :class:`Policed` gives the
chunks' columns (:mod:`flowpipe.decode.columns`, sFlow's, flow tuples') with it applied, where the
accumulator reads them: the kept fields and additional fields of the windows they open, the flow
tuples of the records taken one by one, and, with ``scale_by_sampling``, the counters multiplied
by each record's rate (the rate kept is then 1), as ``SamplingPolicy.apply`` scales them.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from flowpipe.decode.columns import COUNTER_MAX, Intern, objects
from flowpipe.decode.exporters import settled, settled_rate, tagged
from flowpipe.flow import EXTRAS, KEPT, SAMPLING_RATE

_RATE = KEPT.index(SAMPLING_RATE)  # the rate's place in a kept tuple
_MISSING: Any = object()


class Policy(NamedTuple):
    """What a listener does to each flow of one exporter: its ``[[sampling]]`` default and override
    rates (0: none), its tags (None: none), and whether counters are scaled by the rate."""

    default: int
    override: int
    tags: dict[str, str] | None
    scale: bool = False

    def rate(self, own: int) -> int:
        """The rate a flow keeps: the settled one, or 1 once its counters were scaled by it."""
        rate = settled_rate(own, self.default, self.override)
        return 1 if self.scale and rate > 1 else rate

    def rates(self, own: Any) -> Any:
        """The settled rate of each of ``own`` (a uint64 array of the records' own rates)."""
        if self.override:
            return np.full(len(own), self.override, dtype=np.uint64)
        return np.where(own != 0, own, np.uint64(self.default)) if self.default else own

    def extras(self, own: dict[str, Any] | None) -> dict[str, Any] | None:
        return own if self.tags is None else tagged(self.tags, own)

    def flow(self, f: tuple | None) -> tuple | None:
        """A flow tuple with the policy applied (None stays None: an undecodable record)."""
        if f is None:
            return None
        g = settled(f, self.default, self.override, self.scale)
        return g if self.tags is None else (*g[:EXTRAS], self.extras(g[EXTRAS]), *g[EXTRAS + 1:])


class Policed:
    """Columns of chunks (any kind) that share a :class:`Policy`, with it applied to what they give
    the accumulator; the rest is the columns' own."""

    def __init__(self, cols: Any, policy: Policy) -> None:
        self._cols, self._policy = cols, policy
        if policy.scale:  # counters times the settled rate; a product past COUNTER_MAX: that flow tuple
            f = np.maximum(policy.rates(cols.rates()), np.uint64(1))
            ok = cols.ok & (f < COUNTER_MAX)
            most = np.uint64(COUNTER_MAX - 1) // f
            ok &= (cols.bytes.astype(np.uint64) <= most) & (cols.packets.astype(np.uint64) <= most)
            f = np.where(ok, f, np.uint64(1)).astype(np.int64)
            self.ok, self.bytes, self.packets = ok, cols.bytes * f, cols.packets * f

    def __getattr__(self, name: str) -> Any:  # n, parts, bytes, packets, start, end, flags, ok, owner_ids...
        return getattr(self._cols, name)

    def row(self, p: int) -> tuple | None:
        return self._policy.flow(self._cols.row(p))

    def rows(self) -> list[tuple | None]:
        return list(map(self._policy.flow, self._cols.rows()))

    def rows_at(self, positions: Any) -> list[tuple | None]:
        return list(map(self._policy.flow, self._cols.rows_at(positions)))

    def kept_at(self, positions: Any, intern: Intern | None = None) -> tuple[Any, Any]:
        """The columns' kept fields with the policy's rate and additional fields with its tags (equal
        ones shared: one new tuple or dict per distinct one the columns gave)."""
        kept, more = self._cols.kept_at(positions, intern)  # (interned as the columns see fit)
        pol = self._policy
        if pol.default or pol.override or pol.scale:
            made: dict[int, Any] = {}

            def rated(k: Any) -> Any:
                if k is None:
                    return None
                got = made.get(id(k))
                if got is None:
                    rate = pol.rate(k[_RATE])
                    if rate == k[_RATE]:
                        got = k
                    else:
                        got = (*k[:_RATE], rate, *k[_RATE + 1:])
                        if intern is not None:
                            got = intern(got, got)
                    made[id(k)] = got
                return got

            kept = objects(list(map(rated, kept.tolist())))
        if pol.tags is not None:
            more = objects(self._tagged(more.tolist() if more is not None else [None] * len(kept)))
        return kept, more

    def _tagged(self, extras: list[dict[str, Any] | None]) -> list[dict[str, Any] | None]:
        """Each flow's additional fields with the tags (one new dict per distinct one)."""
        made: dict[int, dict[str, Any] | None] = {}
        out = []
        for e in extras:
            got = made.get(id(e), _MISSING)
            if got is _MISSING:
                got = made[id(e)] = self._policy.extras(e)
            out.append(got)
        return out

    def extra_bits(self) -> tuple[Any, tuple[tuple[str, ...], ...]] | None:
        """The columns' bits (see SampleColumns.extra_bits), with every record having the tags."""
        got = self._cols.extra_bits()
        tags = self._policy.tags
        if tags is None:
            return got  # type: ignore[no-any-return]
        if got is None:
            return np.ones(self._cols.n, dtype=np.int64), (tuple(tags),)
        bits, groups = got
        k = len(groups)  # the tags' bit, where "other" was; "other" one further
        low = bits & ((1 << k) - 1)
        return low | (1 << k) | ((bits >> k) & 1) << (k + 1), (*groups, tuple(tags))

    def extras_at(self, positions: Any) -> list[dict[str, Any] | None]:
        got: list[dict[str, Any] | None] = self._cols.extras_at(positions)
        return self._tagged(got) if self._policy.tags is not None else got

