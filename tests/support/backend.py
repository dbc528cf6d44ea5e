"""A real HTTP backend for tests: stdlib ``http.server`` in a thread, HTTP/1.1 with keep-alive.

It records every POST (decoded flows, headers, status, connection number) and can misbehave on
request::

    with Backend() as be:                        # 127.0.0.1, a free port; be.url to POST to
        be.fail(3, status=503, retry_after="1")  # the next 3 POSTs get 503 + Retry-After: 1
        be.fail(1, status=400)                   # the next POST is refused as a bad request
        be.hang(2, seconds=5)                    # the next 2 POSTs: body read, no answer for 5 s, closed
        be.stop()                                # connection refused; open connections are cut
        be.start()                               # serving again on the same port
        be.wait_flows(1000, timeout=10)          # True once 1000 flows were accepted
        Backend(certfile="srv.pem")              # HTTPS with that certificate + key
        await be.wait_flows_async(1000, 10)      # the same from a trio test
        be.flows, be.requests                    # accepted flows; every POST (Request)

Bodies are decoded like a real intake: gzip (Content-Encoding), then msgpack (Content-Type
application/msgpack) or JSON; a body that is not an array of objects is answered 400. Only flows
of requests answered 2xx are in ``flows``; refused ones are kept in ``Request.rejected``.
"""
from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = -1  # Request.status of a request that got no answer


def sample_flows(start: int, n: int) -> list[dict[str, Any]]:
    """``n`` payload-shaped flows numbered from ``start`` (``additional_fields.seq``), bytes = 1000 + seq."""
    return [{"flush_timestamp": 1700000000000 + i, "type": "netflow9", "sampling_rate": 0,
             "direction": "ingress", "start": 1700000000, "end": 1700000010, "bytes": 1000 + i, "packets": 1,
             "ether_type": "IPv4", "ip_protocol": "TCP", "device": {"namespace": "default"},
             "exporter": {"ip": "192.0.2.1"},
             "source": {"ip": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "port": "443",
                        "mac": "00:00:00:00:00:00", "mask": "10.0.0.0/8"},
             "destination": {"ip": "10.255.0.1", "port": "*", "mac": "00:00:00:00:00:00", "mask": "0.0.0.0/0"},
             "ingress": {"interface": {"index": 1}}, "egress": {"interface": {"index": 2}}, "host": "test",
             "tcp_flags": ["SYN", "ACK"], "next_hop": {"ip": "0.0.0.0"}, "additional_fields": {"seq": i}}
            for i in range(start, start + n)]


def seqs(flows: list[dict[str, Any]]) -> list[int]:
    """The ``additional_fields.seq`` numbers of flows made by :func:`sample_flows`."""
    return [f["additional_fields"]["seq"] for f in flows]


@dataclass
class Request:
    time: float
    path: str
    headers: dict[str, str]
    body_bytes: int
    connection: int                    # 1, 2, ... per TCP connection: equal numbers = a reused connection
    status: int = 0
    flows: int = 0
    error: str | None = None
    rejected: list[dict[str, Any]] | None = None


@dataclass
class _Action:
    status: int = 200
    retry_after: str | None = None
    hang: float = 0.0


@dataclass
class Backend:
    host: str = "127.0.0.1"
    port: int = 0
    path: str = "/api/v2/flows"
    certfile: str = ""                 # serve HTTPS with this PEM (certificate + key) when set
    flows: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._script: deque[_Action] = deque()
        self._server: _Server | None = None
        self._conns: set[socket.socket] = set()
        self._conn_seq = 0
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"{'https' if self.certfile else 'http'}://{self.host}:{self.port}{self.path}"

    # ---- life cycle
    def start(self) -> Backend:
        """Serve (again); after the first start the port stays the same."""
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _handler(self))
        if self.certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.certfile)
            # The handshake happens in the connection's own thread (on first read), never in the
            # accept loop: a client that stalls or aborts it mid-way must not block stop().
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections: clients get errors until :meth:`start`."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        with self.lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> Backend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- misbehaviour
    def fail(self, n: int, status: int = 503, retry_after: str | None = None) -> None:
        """Answer the next ``n`` POSTs with ``status`` (and a Retry-After header when given)."""
        with self.lock:
            self._script.extend(_Action(status, retry_after) for _ in range(n))

    def hang(self, n: int, seconds: float) -> None:
        """Read the next ``n`` POSTs, then answer nothing for ``seconds`` and close (flows not kept)."""
        with self.lock:
            self._script.extend(_Action(hang=seconds) for _ in range(n))

    def _next_action(self) -> _Action:
        with self.lock:
            return self._script.popleft() if self._script else _Action()

    # ---- what arrived
    def count(self) -> int:
        with self.lock:
            return len(self.flows)

    def snapshot(self) -> tuple[list[dict[str, Any]], list[Request]]:
        """Copies of (flows, requests)."""
        with self.lock:
            return list(self.flows), list(self.requests)

    def wait_flows(self, n: int, timeout: float) -> bool:
        """Block until at least ``n`` flows were accepted; False on timeout."""
        end = time.monotonic() + timeout
        while self.count() < n:
            if time.monotonic() > end:
                return False
            time.sleep(0.02)
        return True

    async def wait_flows_async(self, n: int, timeout: float) -> bool:
        """:meth:`wait_flows` for trio tests (does not block the event loop)."""
        import trio
        with trio.move_on_after(timeout):
            while self.count() < n:
                await trio.sleep(0.02)
            return True
        return False


def decode_body(body: bytes, headers: Any) -> list[dict[str, Any]]:
    """The array of flow objects in a request body (gzip, then JSON or msgpack)."""
    if "gzip" in (headers.get("Content-Encoding") or "").lower():
        body = gzip.decompress(body)
    if "msgpack" in (headers.get("Content-Type") or "").lower():
        import msgpack
        data = msgpack.unpackb(body, raw=False)
    else:
        data = json.loads(body)
    if not isinstance(data, list) or not all(isinstance(f, dict) for f in data):
        raise ValueError(f"body is not an array of objects but {type(data).__name__}")
    return data


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out or are cut off by stop() are expected here


def _handler(be: Backend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30

        def setup(self) -> None:
            super().setup()
            with be.lock:
                be._conn_seq += 1
                self.conn_no = be._conn_seq
                be._conns.add(self.connection)

        def finish(self) -> None:
            with be.lock:
                be._conns.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                parts = []
                while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(parts)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self) -> None:
            body = self._body()
            req = Request(time.time(), self.path, dict(self.headers.items()), len(body), self.conn_no)
            action = be._next_action()
            try:
                flows = decode_body(body, self.headers)
            except Exception as e:  # noqa: BLE001 - a bad body is the client's fault
                flows, req.error, action = [], f"{type(e).__name__}: {e}", _Action(400)
            req.flows = len(flows)
            if action.hang:
                req.status, req.rejected = HANG, flows
                with be.lock:
                    be.requests.append(req)
                be._stopping.wait(action.hang)
                self.close_connection = True
                return
            req.status = action.status
            with be.lock:
                if 200 <= action.status < 300:
                    be.flows.extend(flows)
                else:
                    req.rejected = flows
                be.requests.append(req)
            reply = json.dumps({"status": req.status, "error": req.error}).encode()
            self.send_response(req.status)
            if action.retry_after is not None:
                self.send_header("Retry-After", action.retry_after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler
