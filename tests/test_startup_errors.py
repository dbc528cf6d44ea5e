"""Start-up failures of ``flowpipe run`` (issue #19): one log line and one stderr line naming what
failed, the address, the OS reason and a fix; exit 2 for config problems, 1 for runtime ones;
never a traceback. Every test runs the real CLI against real sockets and files."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.service_helpers import free_port


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWPIPE_")}
    return subprocess.run([sys.executable, "-m", "flowpipe.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def listener() -> str:
    """An IPFIX listener on a free loopback port (``port = 0`` would mean the default 4739, which
    another collector on the machine may hold)."""
    return f'[[listeners]]\nflow_type = "ipfix"\nbind_host = "127.0.0.1"\nport = {free_port()}\n'


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "flowpipe.toml"
    p.write_text(text)
    return str(p)


def assert_one_clear_failure(r: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr and "ExceptionGroup" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "cannot_start" in ln or ln.startswith("flowpipe: cannot start")]
    assert len(lines) == 2, r.stderr  # the log line and the plain stderr line
    plain = lines[1]
    for w in words:
        assert w in plain, plain
        assert w in lines[0], lines[0]
    return plain


def test_udp_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        cfg = write(tmp_path, f'[[listeners]]\nflow_type = "ipfix"\nbind_host = "127.0.0.1"\nport = {port}\n'
                              '[metrics]\nlisten = ""\n')
        r = run_cli("run", "--config", cfg)
    assert_one_clear_failure(r, 1, "listener ipfix", f"127.0.0.1:{port}", "Address already in use",
                                     "another process holds UDP port")


def test_metrics_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = write(tmp_path, listener() +
                              f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        r = run_cli("run", "--config", cfg)
    assert_one_clear_failure(r, 1, "metrics endpoint", f"127.0.0.1:{port}", "Address already in use",
                             "TCP port")


def test_address_not_on_this_machine(tmp_path: Path) -> None:
    cfg = write(tmp_path, '[[listeners]]\nflow_type = "ipfix"\nbind_host = "192.0.2.1"\nport = 0\n'
                          '[metrics]\nlisten = ""\n')
    r = run_cli("run", "--config", cfg)
    assert_one_clear_failure(r, 2, "listener ipfix", "192.0.2.1", "not an address of this machine")


def _can_bind_low_ports() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 1023))
        return True
    except PermissionError:
        return False
    except OSError:
        return True  # bound elsewhere: we had the permission


def _low_port_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


def _drop_bind_capability() -> None:
    """In the child before exec: take CAP_NET_BIND_SERVICE out of the bounding set, so even root
    runs flowpipe without it (what an unprivileged user or a container without the capability sees)."""
    import ctypes  # noqa: PLC0415

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(24, 10, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, CAP_NET_BIND_SERVICE
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.slow
@pytest.mark.skipif(_low_port_start() <= 1023,
                    reason="net.ipv4.ip_unprivileged_port_start <= 1023: every user may bind port 1023 here")
@pytest.mark.skipif(sys.platform != "linux", reason="drops CAP_NET_BIND_SERVICE with Linux prctl")
@pytest.mark.skipif(os.geteuid() != 0 and _can_bind_low_ports(),
                    reason="this non-root user holds CAP_NET_BIND_SERVICE and cannot drop it (no CAP_SETPCAP)")
def test_privileged_port_without_capability(tmp_path: Path) -> None:
    """Run as root too: the child drops CAP_NET_BIND_SERVICE from its bounding set before exec."""
    cfg = write(tmp_path, '[[listeners]]\nflow_type = "ipfix"\nbind_host = "127.0.0.1"\nport = 1023\n'
                          '[metrics]\nlisten = ""\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWPIPE_")}
    r = subprocess.run([sys.executable, "-m", "flowpipe.cli", "run", "--config", cfg], capture_output=True,
                       text=True, timeout=60, env=env, preexec_fn=_drop_bind_capability if os.geteuid() == 0 else None)
    assert_one_clear_failure(r, 2, "listener ipfix", "127.0.0.1:1023", "Permission denied",
                             "CAP_NET_BIND_SERVICE")


@pytest.mark.slow
@pytest.mark.parametrize(("section", "where", "key", "reason"), [
    ("forwarder", 'url = "http://127.0.0.1:9/"\nspool_dir = "{plain}/spool"', "forwarder.spool_dir", "not a directory"),
    ("decoder", 'state_file = "{plain}/state/t.state"', "decoder.state_file", "not a directory"),
    ("forwarder", 'file = "{missing}/flows.json"', "forwarder.file", "no such directory"),
])
def test_unusable_paths(tmp_path: Path, section: str, where: str, key: str, reason: str) -> None:
    """A spool dir or state file dir under a plain file, an output file in a missing directory."""
    (tmp_path / "plain").write_text("x")
    setting = where.format(plain=tmp_path / "plain", missing=tmp_path / "missing")
    cfg = write(tmp_path, listener() +
                          f'[metrics]\nlisten = ""\n[{section}]\n{setting}\n')
    r = run_cli("run", "--config", cfg)
    assert_one_clear_failure(r, 2, key, reason)


def test_tls_ca_file_not_a_certificate(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    cfg = write(tmp_path, listener() +
                          '[metrics]\nlisten = ""\n'
                          f'[forwarder]\nurl = "https://127.0.0.1:9/"\ntls_ca_file = "{ca}"\n')
    r = run_cli("run", "--config", cfg)
    assert_one_clear_failure(r, 2, "forwarder.tls_ca_file", str(ca))


# ---- check-config: every error at once, each once; what run needs from the filesystem

def test_check_config_reports_every_error_once(tmp_path: Path) -> None:
    cfg = write(tmp_path, '[[listeners]]\nflow_type = "ipfix"\nallowed_exporters = ["10.0.0.0/8", "nonsense"]\n'
                          '[[listeners]]\nflow_type = "bogus"\n'
                          '[aggregator]\nflush_intervall = 10\n'
                          '[forwarder]\ntimeout = "soon"\n')
    r = run_cli("check-config", cfg)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 4, r.stderr
    assert any("listeners[0].allowed_exporters: 'nonsense' is not an address or CIDR" in ln for ln in lines)
    assert not any("allowed_exporters: allowed_exporters" in ln for ln in lines)
    assert any("listeners[1].flow_type" in ln for ln in lines)
    assert any("aggregator.flush_intervall: unknown key" in ln for ln in lines)
    assert any("forwarder.timeout" in ln for ln in lines)
    assert len(set(lines)) == len(lines)


@pytest.mark.slow
def test_check_config_checks_the_filesystem_run_needs(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    cfg = write(tmp_path, f'[decoder]\nstate_file = "{tmp_path / "plain" / "t.state"}"\n'
                          f'[forwarder]\nurl = "http://127.0.0.1:9/"\nspool_dir = "{tmp_path / "plain" / "spool"}"\n'
                          f'file = "{tmp_path / "nodir" / "flows.json"}"\n')
    r = run_cli("check-config", cfg)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 3, r.stderr
    assert any("forwarder.spool_dir" in ln and "not a directory" in ln for ln in lines)
    assert any("decoder.state_file" in ln and "not a directory" in ln for ln in lines)
    assert any("forwarder.file" in ln and "no such directory" in ln for ln in lines)
    (tmp_path / "plain").unlink()
    (tmp_path / "nodir").mkdir()
    r = run_cli("check-config", cfg)
    assert r.returncode == 0, r.stderr


# ---- metrics on [::] is dual-stack like the UDP listeners

@pytest.mark.slow
def test_metrics_on_ipv6_any_answers_ipv4(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 support")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::", 0))
            port = probe.getsockname()[1]
    except OSError as e:
        pytest.skip(f"IPv6 unavailable here: {e}")
    cfg = write(tmp_path, listener() +
                          f'[metrics]\nlisten = "[::]:{port}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWPIPE_")}
    proc = subprocess.Popen([sys.executable, "-m", "flowpipe.cli", "run", "--config", cfg],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "event=metrics_listening" in line:
                break
        answers = {}
        for host in ("127.0.0.1", "::1"):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as c:
                c.settimeout(30)
                c.connect((host, port))
                c.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                data = b""
                while chunk := c.recv(4096):
                    data += chunk
            answers[host] = data.split(b"\r\n", 1)[0]
        assert answers["127.0.0.1"].startswith(b"HTTP/1.1 "), answers  # 200, or 503 while starting
        assert answers["::1"].startswith(b"HTTP/1.1 "), answers
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


@pytest.mark.slow
def test_workers_port_in_use_stops_instead_of_restarting(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:  # no SO_REUSEPORT: the workers cannot share
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        cfg = write(tmp_path, f'[[listeners]]\nflow_type = "ipfix"\nbind_host = "127.0.0.1"\nport = {port}\n'
                              'workers = 2\n[metrics]\nlisten = ""\n')
        r = run_cli("run", "--config", cfg)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert f"listener ipfix on 127.0.0.1:{port}: Address already in use" in r.stderr
    assert "worker_died" not in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "check-config"])
def test_resolver_nameserver_that_is_not_an_address(tmp_path: Path, command: str) -> None:
    """dnspython's resolver takes server addresses, not names: a host name in reverse_dns.nameservers
    is refused at load with one line naming the key, exit 2 (it used to start and fail every lookup)."""
    cfg = write(tmp_path, listener() +
                          '[metrics]\nlisten = ""\n[reverse_dns]\nenabled = true\nnameservers = ["dns.internal:53"]\n')
    args = ("run", "--config", cfg) if command == "run" else ("check-config", cfg)
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "reverse_dns.nameservers" in ln]
    assert len(lines) == 1, r.stderr
    assert "'dns.internal:53' is not an IP address" in lines[0] and cfg in lines[0]
