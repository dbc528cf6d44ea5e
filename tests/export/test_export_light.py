"""Exporting stays light: a fresh interpreter that imports ``flowpipe.export``, reads a conf file,
encodes and sends every protocol to a local UDP socket loads none of the collector's heavy
dependencies (nor trio, which only ``send_async`` imports) and no other part of flowpipe but the
stdlib-only memo bound (``flowpipe.cache``)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = ["numpy", "httpx", "dns", "isal", "msgpack", "prometheus_client", "trio", "orjson", "yaml"]

SCRIPT = """
import json, socket, sys, sysconfig

from flowpipe.export import DEFAULT_TEMPLATE, DefaultRecord, Exporter, InterfaceCounters, encode_v5

rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 0))
rx.settimeout(10)
port = rx.getsockname()[1]
with open(sys.argv[1], "w") as f:
    f.write(f"[doca_netflow_conf]\\ntarget = 127.0.0.1:{port}\\nversion = 9\\nsource_id = 5\\n")

rec = DefaultRecord(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), bytes(4), 1, 2, 3, 1500, 100, 200,
                    40000, 443, 0x1B, 6, 0, 0, 0, 24, 24)
versions = []
for protocol in (5, 9, 10, "sflow5"):
    config = sys.argv[1] if protocol == 9 else None
    target = None if protocol == 9 else f"127.0.0.1:{port}"
    with Exporter(target, protocol=protocol, config=config) as exp:
        assert exp.encode(DEFAULT_TEMPLATE, [rec])  # bytes only: counted in stats, not sent
        encoded = exp.stats.datagrams
        sent = exp.send(DEFAULT_TEMPLATE, [rec, rec])
        if protocol == "sflow5":
            exp.send_counters([InterfaceCounters(1)])
    assert sent == 2, (protocol, sent)
    for _ in range(exp.stats.datagrams - encoded):
        versions.append(int.from_bytes(rx.recv(65535)[:4], "big") >> (0 if protocol == "sflow5" else 16))
assert encode_v5([rec], 1000, 0, 0)[:2] == bytes([0, 5])

site = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
third_party = sorted({name.split(".")[0] for name, mod in list(sys.modules.items())
                      if any((getattr(mod, "__file__", None) or "").startswith(p) for p in site)})
print(json.dumps({"versions": versions, "modules": sorted(sys.modules), "third_party": third_party}))
"""


def test_exporting_imports_nothing_heavy(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "exporter.conf")], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert sorted(set(seen["versions"])) == [5, 9, 10]  # v5, v9, IPFIX, sFlow (version 5 too)
    modules = set(seen["modules"])
    loaded = [m for m in HEAVY if m in modules or any(n.startswith(m + ".") for n in modules)]
    assert not loaded, f"importing/using flowpipe.export loaded {loaded}"
    flowpipe = {m for m in modules if m == "flowpipe" or m.startswith("flowpipe.")}
    # besides the package itself, only flowpipe.cache: the memo bound every part of flowpipe shares (stdlib only)
    assert all(m in ("flowpipe", "flowpipe.cache") or m.startswith("flowpipe.export") for m in flowpipe), \
        sorted(flowpipe)
    # Third-party code: attrs only (underscored names are install machinery: editable finders, setuptools' hook).
    third_party = {m for m in seen["third_party"] if not m.startswith("_") and m != "flowpipe"}
    assert third_party <= {"attr", "attrs"}, sorted(third_party)


def test_flowpipe_generate_loads_only_what_exporting_needs() -> None:
    """The CLI imports only the module of the command it runs: ``flowpipe generate`` sends its flows
    without loading the collector's dependencies."""
    code = textwrap.dedent('''
        import json, socket, sys
        from flowpipe import cli
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        rc = cli.main(["generate", "--target", "127.0.0.1:%d" % sock.getsockname()[1], "--flows", "50",
                       "--protocol", "ipfix"])
        sock.settimeout(5)
        got = sock.recv(65535)
        heavy = ("numpy", "httpx", "dns", "isal", "msgpack", "prometheus_client", "trio", "orjson")
        print(json.dumps({"rc": rc, "first": got[:2].hex(), "heavy": [m for m in heavy if m in sys.modules]}))
    ''')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"rc": 0, "first": "000a", "heavy": []}
