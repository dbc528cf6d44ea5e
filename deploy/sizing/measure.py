"""Measure flowpipe's memory per flow context and its stop time, to size containers.

Starts ``flowpipe run`` on loopback ports, feeds it distinct flows with ``flowpipe generate
--pool 0`` in steps, and after each step prints the flow contexts held and the process's RSS.
Then it sends SIGTERM and times the final flush (everything held is rendered and written to
forwarder.file, here /dev/null). Loopback only; bounded in flows and time; Linux (/proc).

    python deploy/sizing/measure.py [--steps 6] [--flows-per-step 100000] [--rate 20000]

The figures docs/operations.md quotes came from this script; rerun it on your hardware.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of ``pid`` in MiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("flowpipe_") and " " in line:
            name, _, value = line.rpartition(" ")
            out[name] = out.get(name, 0.0) + float(value)
    return out


def total(metrics: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in metrics.items() if k.split("{")[0] == prefix)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--flows-per-step", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=20_000, help="flows per second sent")
    ap.add_argument("--flowpipe", default=os.path.join(os.path.dirname(sys.executable), "flowpipe"))
    args = ap.parse_args()

    udp, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "flowpipe.toml")
        with open(cfg, "w") as f:
            f.write(f'[[listeners]]\nflow_type = "netflow9"\nbind_host = "127.0.0.1"\nport = {udp}\n'
                    f'[forwarder]\nfile = "/dev/null"\n[metrics]\nlisten = "127.0.0.1:{http}"\n')
        proc = subprocess.Popen([args.flowpipe, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    scrape(http)
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("flowpipe did not start") from None
                    time.sleep(0.2)
            rss, _ = rss_mib(proc.pid)
            print(json.dumps({"step": 0, "contexts": 0, "rss_mib": round(rss, 1)}), flush=True)
            for step in range(1, args.steps + 1):
                subprocess.run([args.flowpipe, "generate", "--target", f"127.0.0.1:{udp}", "--protocol", "netflow9",
                                "--flows", str(args.flows_per_step), "--pool", "0", "--rate", str(args.rate),
                                "--seed", str(step)], check=True, stdout=subprocess.DEVNULL, timeout=600)
                time.sleep(2)
                m = scrape(http)
                rss, peak = rss_mib(proc.pid)
                print(json.dumps({
                    "step": step, "contexts": int(total(m, "flowpipe_aggregator_contexts")),
                    "rss_mib": round(rss, 1), "peak_rss_mib": round(peak, 1),
                    "socket_drops": int(total(m, "flowpipe_socket_drops_total")),
                    "flows_decoded": int(total(m, "flowpipe_flows_decoded_total"))}), flush=True)
            contexts = int(total(scrape(http), "flowpipe_aggregator_contexts"))
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=600)
            print(json.dumps({"stop_seconds": round(time.monotonic() - t0, 2), "contexts_flushed": contexts,
                              "exit_code": code}), flush=True)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
