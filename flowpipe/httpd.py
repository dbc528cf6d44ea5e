"""The metrics endpoint: ``GET /metrics`` (Prometheus text) and ``GET /healthz``, served by trio."""
from __future__ import annotations

import inspect
import logging
import socket
from collections.abc import Awaitable, Callable

import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flowpipe.logs import event
from flowpipe.metrics import Metrics
from flowpipe.startup import bind_error

MAX_REQUEST = 8192


async def _respond(stream: trio.SocketStream, status: str, ctype: str, body: bytes) -> None:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    await stream.send_all(head + body)


async def _dual_stack_listener(port: int) -> trio.SocketListener:
    """A TCP listener on [::]:port that accepts IPv4 too (IPV6_V6ONLY off; trio's sets it on)."""
    sock = trio.socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        await sock.bind(("::", port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return trio.SocketListener(sock)


class MetricsServer:
    """Serves the registry of ``metrics``; /healthz is 200 while ``healthy()`` is true."""

    def __init__(self, listen: tuple[str, int], metrics: Metrics,
                 healthy: Callable[[], tuple[bool, str] | Awaitable[tuple[bool, str]]],
                 text: Callable[[], Awaitable[bytes]] | None = None,
                 exporters: Callable[[], bytes] | None = None) -> None:
        self.host, self.port = listen
        self.exporters = exporters  # GET /exporters: the exporter inventory (flowpipe/inventory.py)
        self.metrics = metrics
        self.healthy = healthy
        self.text = text
        self.listeners: list[trio.SocketListener] = []

    async def open(self) -> None:
        """Bind now, so a busy port fails at start-up."""
        try:
            if self.host in ("::", "[::]"):  # all addresses, IPv4 too (as the UDP listeners)
                self.listeners = [await _dual_stack_listener(self.port)]
            else:
                self.listeners = await trio.open_tcp_listeners(self.port, host=self.host or None)
        except OSError as e:
            raise bind_error("metrics endpoint (metrics.listen)", self.host, self.port, e, "tcp") from None
        self.port = self.listeners[0].socket.getsockname()[1]
        event(logging.INFO, "metrics_listening", host=self.host, port=self.port)

    async def run(self) -> None:
        await trio.serve_listeners(self._handle, self.listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(10):
                data = b""
                while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    data += chunk
                parts = data.split(b"\r\n", 1)[0].split()
                if len(parts) < 2 or parts[0] not in (b"GET", b"HEAD"):
                    await _respond(stream, "405 Method Not Allowed", "text/plain", b"GET only\n")
                    return
                path = parts[1].split(b"?", 1)[0]
                if path == b"/metrics":
                    body = await self.text() if self.text else generate_latest(self.metrics.registry)
                    await _respond(stream, "200 OK", CONTENT_TYPE_LATEST, body)
                elif path == b"/healthz":
                    verdict = self.healthy()
                    ok, why = await verdict if inspect.isawaitable(verdict) else verdict
                    await _respond(stream, "200 OK" if ok else "503 Service Unavailable", "text/plain",
                                   (why + "\n").encode())
                elif path == b"/exporters" and self.exporters is not None:
                    await _respond(stream, "200 OK", "application/json", self.exporters())
                else:
                    await _respond(stream, "404 Not Found", "text/plain", b"try /metrics or /healthz\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            await stream.aclose()
