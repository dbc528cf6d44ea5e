"""Address membership in CIDR lists: which exporters may send, which exporters a rule or a
de-duplication group covers. Shared by the decoder stage and the aggregator's flush filters."""
from __future__ import annotations

import ipaddress

from flowpipe.cache import bounded_put

MAX_CACHED = 100_000  # hosts remembered per list

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def network(text: str) -> Network:
    """The network of a CIDR text or an address (host bits allowed); ValueError when it is neither."""
    return ipaddress.ip_network(text, strict=False)


def networks(cidrs: list[str]) -> list[Network]:
    """The networks of CIDR texts (see :func:`network`)."""
    return [network(c) for c in cidrs]


def address(text: str) -> Address | None:
    """The address of a host text (a zone index dropped), None when it is not one."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


class Allowlist:
    """``allowed(host)`` is true when ``host`` is in one of the CIDRs (always, when there are none);
    decided once per host (bounded)."""

    def __init__(self, cidrs: list[str]) -> None:
        self.nets = networks(cidrs)
        self._cache: dict[str, bool] = {}  # bounded: MAX_CACHED

    def allowed(self, host: str) -> bool:
        if not self.nets:
            return True
        hit = self._cache.get(host)
        if hit is None:
            a = address(host)
            hit = a is not None and any(a.version == n.version and a in n for n in self.nets)
            bounded_put(self._cache, MAX_CACHED, host, hit)
        return hit
