"""The ``[reverse_dns]`` section: PTR lookups for flow endpoints."""
from __future__ import annotations

import ipaddress

import attrs

from flowpipe.sections import key, non_negative, positive, split_host_port


@attrs.define(slots=True, kw_only=True)
class ReverseDnsConfig:
    """Reverse-DNS enrichment of source/destination addresses."""

    # One sections.key a line: a declaration table, alike in shape to every section's on purpose (not logic).
    enabled: bool = key(False, None, "look up PTR names for flow endpoints")
    nameservers: list[str] = key([], None, "[\"host:port\", ...]; [] = the system resolver")
    timeout: float = key(1.0, positive, "seconds per query")
    private_only: bool = key(True, None,
        "only look up private, shared (RFC 6598), unique-local and link-local addresses")
    cache_ttl: float = key(3600.0, positive, "seconds a name is cached (shorter when the record's TTL is)")
    cache_size: int = key(100000, positive, "cache entries at most")
    negative_cache_ttl: float = key(300.0, positive,
        "seconds an address without a name is cached (shorter when the zone's negative TTL is)")
    failure_cache_ttl: float = key(30.0, positive,
        "seconds an address whose lookup failed (timeout, SERVFAIL, REFUSED, error) is not retried")
    max_wait: float = key(1.0, non_negative,
        "seconds a flush waits at most for lookups; later answers fill the cache for the next flush")
    concurrency: int = key(32, positive, "queries in flight at most")
    rate_limit: float = key(1000.0, positive, "queries per second at most")
    max_pending: int = key(10000, positive, "addresses waiting to be looked up at most; more are skipped and counted")

    def __attrs_post_init__(self) -> None:
        for ns in self.nameservers:
            try:
                host, _ = split_host_port(ns, 53)
            except ValueError as e:
                raise ValueError(f"nameservers {e}") from None
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"nameservers: {ns!r} is not an IP address (the resolver needs the DNS "
                                 f"server's address, e.g. \"10.0.0.2:53\" or \"[fd00::53]:53\")") from None
