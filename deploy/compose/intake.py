"""A small HTTP intake for the compose demo: prints what flowpipe POSTs to it.

Each request's flows (a JSON or msgpack array, gzip or not) are counted, and the first flow of
each batch is printed as one JSON line, so `docker compose logs -f intake` shows deliveries as
they arrive. Answers 202 to a well-formed batch and 400 otherwise. Standard library only (msgpack
bodies are counted as bytes, not decoded).

    python intake.py [--host 0.0.0.0] [--port 8080]
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Intake(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "flowpipe-demo-intake"

    def _answer(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(200, "POST flows here")

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            if "msgpack" in self.headers.get("Content-Type", ""):
                self._report(None, len(body))
                self._answer(202, "accepted")
                return
            flows: Any = json.loads(body)
            if not isinstance(flows, list) or not all(isinstance(f, dict) for f in flows):
                raise ValueError("not an array of flow objects")
        except (OSError, ValueError, EOFError) as e:
            print(json.dumps({"time": round(time.time(), 3), "error": str(e)}), flush=True)
            self._answer(400, f"bad request: {e}")
            return
        self._report(flows, len(body))
        self._answer(202, "accepted")

    def _report(self, flows: list[dict[str, Any]] | None, size: int) -> None:
        line: dict[str, Any] = {"time": round(time.time(), 3), "path": self.path, "bytes": size}
        if flows is not None:
            line["flows"] = len(flows)
            line["exporters"] = sorted({str(f.get("exporter", {}).get("ip")) for f in flows})
            if flows:
                line["first"] = flows[0]
        print(json.dumps(line), flush=True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet access log
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description="Print the flow batches flowpipe delivers.")
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Intake)
    print(json.dumps({"listening": f"{args.host}:{server.server_address[1]}"}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
