"""``"${env:NAME}"`` and ``"${file:/path}"`` in config strings (issue #19): resolved at load, masked
by check-config, a clear error when missing. The real CLI; the resolved key reaches a real HTTP
backend."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flowpipe.export import DefaultRecord, encode_v5
from tests.support.backend import Backend
from tests.support.service_helpers import free_port, start_run


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWPIPE_", "TEST_DD_"))}
    return subprocess.run([sys.executable, "-m", "flowpipe.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**base, **(env or {})})


def test_check_config_resolves_and_masks(tmp_path: Path) -> None:
    keyfile = tmp_path / "api-key"
    keyfile.write_text("from-a-file-0123\n")
    cfg = tmp_path / "flowpipe.toml"
    cfg.write_text('host = "${env:TEST_DD_HOST}"\n[forwarder]\nurl = "http://127.0.0.1:9/"\n'
                   f'headers = {{ "DD-API-KEY" = "${{file:{keyfile}}}", "X-Team" = "${{env:TEST_DD_TEAM}}" }}\n')
    r = cli("check-config", str(cfg), env={"TEST_DD_HOST": "collector-7", "TEST_DD_TEAM": "netops-secret-team"})
    assert r.returncode == 0, r.stderr
    assert "from-a-file-0123" not in r.stdout
    assert "netops-secret-team" not in r.stdout and "collector-7" not in r.stdout
    assert "${env:TEST_DD_TEAM}" in r.stdout


@pytest.mark.slow
def test_missing_env_and_file_are_clear_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "flowpipe.toml"
    cfg.write_text('[forwarder]\nurl = "http://127.0.0.1:9/"\n'
                   f'headers = {{ "DD-API-KEY" = "${{env:TEST_DD_MISSING}}", '
                   f'"X-Other" = "${{file:{tmp_path / "nope"}}}" }}\n')
    for cmd in (["check-config", str(cfg)], ["run", "--config", str(cfg)]):
        r = cli(*cmd)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr
        assert "forwarder.headers.DD-API-KEY: environment variable TEST_DD_MISSING is not set" in r.stderr
        assert f"forwarder.headers.X-Other: cannot read secret file {tmp_path / 'nope'}: No such file" in r.stderr


@pytest.mark.slow
def test_run_sends_the_resolved_key(tmp_path: Path) -> None:
    keyfile = tmp_path / "api-key"
    keyfile.write_text("k8s-secret-key\n")
    port = free_port()
    with Backend() as be:
        cfg = tmp_path / "flowpipe.toml"
        cfg.write_text(f'[[listeners]]\nflow_type = "netflow5"\nbind_host = "127.0.0.1"\nport = {port}\n'
                       f'[metrics]\nlisten = "127.0.0.1:0"\n[forwarder]\nurl = "{be.url}"\n'
                       f'headers = {{ "DD-API-KEY" = "${{file:{keyfile}}}" }}\n')
        proc = start_run(cfg)
        assert proc.stderr is not None
        for line in proc.stderr:
            if "event=started" in line:
                break
        mport = int(line.split("metrics=127.0.0.1:")[1].split()[0])
        up = 1_000_000
        rec = DefaultRecord(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), bytes(4), 1, 2, 1, 100, up - 2000,
                            up - 1000, 40000, 443, 0x10, 6, 0, 0, 0, 24, 24)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(encode_v5([rec], up, int(time.time()), 0), ("127.0.0.1", port))
        for _ in range(600):  # until it was read, so the stop does not race it
            with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=30) as r:
                if b'flowpipe_datagrams_received_total{flow_type="netflow5"} 1.0' in r.read():
                    break
            time.sleep(0.1)
        proc.terminate()
        proc.communicate(timeout=120)
        assert be.requests, "nothing delivered"
        assert all(r.headers.get("DD-API-KEY") == "k8s-secret-key" for r in be.requests)


@pytest.mark.slow
def test_kubernetes_manifests_take_the_api_key_from_a_secret(tmp_path: Path) -> None:
    import yaml  # noqa: PLC0415

    root = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes" / "overlays"
    for overlay in ("daemonset", "sidecar", "standalone"):
        docs = [d for f in sorted((root / overlay).glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
        envs = [e for d in docs if d.get("kind") in ("Deployment", "DaemonSet")
                for c in [*d["spec"]["template"]["spec"].get("containers", []),
                          *d["spec"]["template"]["spec"].get("initContainers", [])] if c["name"] == "flowpipe"
                for e in c.get("env", [])]
        key = [e for e in envs if e["name"] == "DD_API_KEY"]
        assert key and key[0]["valueFrom"]["secretKeyRef"]["name"] == "flowpipe-api-key", overlay
        toml = next(d for d in docs if d.get("kind") == "ConfigMap")["data"]["flowpipe.toml"]
        assert '# headers = { "DD-API-KEY" = "${env:DD_API_KEY}" }' in toml, overlay
        enabled = toml.replace('# headers = {', 'headers = {').replace('url = ""', 'url = "https://example.com/x"', 1)
        enabled = "\n".join(ln for ln in enabled.splitlines() if "state_file" not in ln and "spool_dir" not in ln)
        cfg = tmp_path / f"{overlay}.toml"
        cfg.write_text(enabled)
        r = cli("check-config", str(cfg), env={"DD_API_KEY": "the-key-from-the-secret"})
        assert r.returncode == 0, (overlay, r.stderr)
        assert "the-key-from-the-secret" not in r.stdout
