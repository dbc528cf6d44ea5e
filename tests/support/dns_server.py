"""A real DNS server on 127.0.0.1 (UDP) for tests, serving PTR records from a dict.

Usage::

    from tests.support.dns_server import DnsTestServer

    with DnsTestServer() as dns_srv:
        dns_srv.add_ptr("10.0.0.1", "db-1.example.internal", ttl=300)
        dns_srv.set_rcode("10.0.0.2", "SERVFAIL")
        dns_srv.set_delay("10.0.0.3", 0.5)      # answered (PTR or NXDOMAIN) after 0.5 s
        dns_srv.set_silent("10.0.0.4")          # never answered
        ...  # point a resolver at dns_srv.nameserver ("127.0.0.1:PORT")
        assert dns_srv.query_count("10.0.0.1") == 1

Addresses without a record get NXDOMAIN with an SOA (TTL ``negative_ttl``) in the authority
section. Queries are counted per address (canonical text; other names by their text). Delayed
answers do not hold up others: one thread serves all, sending each answer when it is due.
``drop_all`` makes the server answer nothing (a dead server that still counts queries).
"""
from __future__ import annotations

import heapq
import ipaddress
import select
import socket
import threading
import time
from collections import Counter
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset


def _canon(address: str) -> str:
    return ipaddress.ip_address(address).compressed


class DnsTestServer:
    """A threaded UDP DNS server with PTR answers, chosen rcodes, delays and query counts."""

    def __init__(self, *, negative_ttl: int = 60, host: str = "127.0.0.1") -> None:
        self.negative_ttl = negative_ttl
        self.drop_all = False
        self._ptr: dict[str, tuple[list[str], int]] = {}
        self._rcode: dict[str, dns.rcode.Rcode] = {}
        self._delay: dict[str, float] = {}
        self._silent: set[str] = set()
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._due: list[tuple[float, int, bytes, Any]] = []
        self._seq = 0
        self.max_outstanding = 0  # most delayed answers waiting at once (a concurrency probe)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self._sock.setblocking(False)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-test-server", daemon=True)

    # ---- setup -------------------------------------------------------------------------
    @property
    def nameserver(self) -> str:
        """"host:port", as ``reverse_dns.nameservers`` takes it."""
        return f"{self.host}:{self.port}"

    def add_ptr(self, address: str, hostname: str | list[str], ttl: int = 3600) -> None:
        """Answer PTR queries for ``address`` with ``hostname`` (or several) and this TTL."""
        names = [hostname] if isinstance(hostname, str) else list(hostname)
        with self._lock:
            self._ptr[_canon(address)] = (names, ttl)

    def set_rcode(self, address: str, rcode: str | int) -> None:
        """Answer queries for ``address`` with this rcode ("NXDOMAIN", "SERVFAIL", "REFUSED", ...)."""
        code = dns.rcode.from_text(rcode) if isinstance(rcode, str) else dns.rcode.Rcode(rcode)
        with self._lock:
            self._rcode[_canon(address)] = code

    def set_delay(self, address: str, seconds: float) -> None:
        """Send the answer for ``address`` ``seconds`` after the query arrives."""
        with self._lock:
            self._delay[_canon(address)] = seconds

    def set_silent(self, address: str) -> None:
        """Never answer queries for ``address``."""
        with self._lock:
            self._silent.add(_canon(address))

    # ---- observation -------------------------------------------------------------------
    def query_count(self, address: str) -> int:
        """Queries received for ``address`` so far."""
        with self._lock:
            return self._counts[_canon(address)]

    @property
    def total_queries(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self.max_outstanding = 0

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> DnsTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> DnsTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- serving -----------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                while self._due and self._due[0][0] <= now:
                    _, _, wire, peer = heapq.heappop(self._due)
                    self._send(wire, peer)
                wait = min(0.05, self._due[0][0] - now) if self._due else 0.05
            readable, _, _ = select.select([self._sock], [], [], max(wait, 0.0))
            if not readable:
                continue
            while True:
                try:
                    data, peer = self._sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    return
                self._handle(data, peer)

    def _send(self, wire: bytes, peer: Any) -> None:
        try:
            self._sock.sendto(wire, peer)
        except OSError:
            pass

    def _handle(self, data: bytes, peer: Any) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        if not query.question:
            return
        qname = query.question[0].name
        try:
            key = _canon(dns.reversename.to_address(qname))
        except (dns.exception.DNSException, ValueError):
            key = qname.to_text()
        with self._lock:
            self._counts[key] += 1
            if self.drop_all or key in self._silent:
                return
            wire = self._answer(query, key).to_wire()
            delay = self._delay.get(key, 0.0)
            if delay <= 0:
                self._send(wire, peer)
                return
            self._seq += 1
            heapq.heappush(self._due, (time.monotonic() + delay, self._seq, wire, peer))
            self.max_outstanding = max(self.max_outstanding, len(self._due))

    def _answer(self, query: dns.message.Message, key: str) -> dns.message.Message:
        resp = dns.message.make_response(query)
        resp.flags |= dns.flags.AA | dns.flags.RA
        question = query.question[0]
        rcode = self._rcode.get(key)
        if rcode is not None:
            resp.set_rcode(rcode)
            if rcode == dns.rcode.NXDOMAIN:
                self._add_soa(resp, question.name)
            return resp
        record = self._ptr.get(key)
        if record is None or question.rdtype != dns.rdatatype.PTR:
            resp.set_rcode(dns.rcode.NXDOMAIN if record is None else dns.rcode.NOERROR)
            self._add_soa(resp, question.name)
            return resp
        names, ttl = record
        targets = [n if n.endswith(".") else n + "." for n in names]
        resp.answer.append(dns.rrset.from_text_list(question.name, ttl, dns.rdataclass.IN,
                                                    dns.rdatatype.PTR, targets))
        return resp

    def _add_soa(self, resp: dns.message.Message, qname: dns.name.Name) -> None:
        zone = qname.parent() if len(qname.labels) > 2 else qname
        soa = f"ns.{zone.to_text()} hostmaster.{zone.to_text()} 1 3600 600 86400 {self.negative_ttl}"
        resp.authority.append(dns.rrset.from_text(zone, self.negative_ttl, dns.rdataclass.IN,
                                                  dns.rdatatype.SOA, soa))
