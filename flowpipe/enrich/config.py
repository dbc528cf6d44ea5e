"""The ``[reverse_dns]`` section: PTR lookups for flow endpoints."""
from __future__ import annotations

import ipaddress

import attrs

from flowpipe.sections import doc, non_negative, positive, split_host_port


@attrs.define(slots=True, kw_only=True)
class ReverseDnsConfig:
    """Reverse-DNS enrichment of source/destination addresses."""

    enabled: bool = attrs.field(default=False, metadata=doc("look up PTR names for flow endpoints"))
    nameservers: list[str] = attrs.field(factory=list, metadata=doc(
        "[\"host:port\", ...]; [] = the system resolver"))
    timeout: float = attrs.field(default=1.0, validator=positive, metadata=doc("seconds per query"))
    private_only: bool = attrs.field(default=True, metadata=doc(
        "only look up private, shared (RFC 6598), unique-local and link-local addresses"))
    cache_ttl: float = attrs.field(default=3600.0, validator=positive, metadata=doc(
        "seconds a name is cached (shorter when the record's TTL is)"))
    cache_size: int = attrs.field(default=100000, validator=positive, metadata=doc("cache entries at most"))
    negative_cache_ttl: float = attrs.field(default=300.0, validator=positive, metadata=doc(
        "seconds an address without a name is cached (shorter when the zone's negative TTL is)"))
    failure_cache_ttl: float = attrs.field(default=30.0, validator=positive, metadata=doc(
        "seconds an address whose lookup failed (timeout, SERVFAIL, REFUSED, error) is not retried"))
    max_wait: float = attrs.field(default=1.0, validator=non_negative, metadata=doc(
        "seconds a flush waits at most for lookups; later answers fill the cache for the next flush"))
    concurrency: int = attrs.field(default=32, validator=positive, metadata=doc("queries in flight at most"))
    rate_limit: float = attrs.field(default=1000.0, validator=positive, metadata=doc("queries per second at most"))
    max_pending: int = attrs.field(default=10000, validator=positive, metadata=doc(
        "addresses waiting to be looked up at most; more are skipped and counted"))

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
