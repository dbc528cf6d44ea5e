"""The Exporter: splitting, template (re)announcement, sequence numbers, sysUptime, skips, sockets, config."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from flowpipe.export import (
    DEFAULT_TEMPLATE,
    DEFAULT_TEMPLATE_V6,
    ConfigError,
    Exporter,
    ExportError,
    InterfaceCounters,
    RecordError,
    TargetError,
    Template,
    TemplateError,
)
from tests.support.exportparse import REC, REC6, parse_ipfix, parse_sflow, parse_v5, parse_v9

T0 = 1_700_000_000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def exporter(protocol: str | int, **kw: object) -> Exporter:
    kw.setdefault("clock", Clock())
    kw.setdefault("boot_time", T0 - 100)
    return Exporter("127.0.0.1:9", protocol=protocol, **kw)  # type: ignore[arg-type]


def kinds_v9(datagrams: list[bytes], templates: dict | None = None) -> list[object]:
    """"T" for a template packet, else the number of data records, per datagram."""
    templates = {} if templates is None else templates
    out: list[object] = []
    for d in datagrams:
        p = parse_v9(d, templates)
        out.append("T" if p["templates"] else len(p["records"]))
    return out


def test_v9_splits_30_per_packet_templates_first() -> None:
    e = exporter(9)
    ds = e.encode(DEFAULT_TEMPLATE, [REC] * 100)
    assert kinds_v9(ds) == ["T", 30, 30, 30, 10]
    assert e.stats.flows == 100 and e.stats.packets == 1000 and e.stats.bytes == 150000
    assert e.stats.datagrams == 5 and e.stats.template_datagrams == 1


def test_records_per_packet_and_mtu_bound() -> None:
    assert kinds_v9(exporter(9, records_per_packet=7).encode(DEFAULT_TEMPLATE, [REC] * 20)) == ["T", 7, 7, 6]
    e = exporter(9, mtu=576)  # 548 bytes of payload: (548 - 27) // 45 = 11 records
    ds = e.encode(DEFAULT_TEMPLATE, [REC] * 30)
    assert kinds_v9(ds) == ["T", 11, 11, 8] and max(map(len, ds)) <= 576 - 28
    wide = Template([(27, 16), (28, 16), (62, 16), (63, 16), (1, 8), (2, 8)], 300)
    row = (bytes(16),) * 4 + (1, 2)
    assert all(len(d) <= 1500 - 48 for d in Exporter("[::1]:9", protocol=9).encode(wide, [row] * 100))
    with pytest.raises(ExportError, match="does not fit"):
        exporter(9, mtu=576).encode(Template([(82, 600)]), [("x",)])


def test_template_refresh_every_n_packets_and_t_seconds() -> None:
    clock = Clock()
    e = exporter(9, clock=clock, template_refresh_packets=3, template_refresh_seconds=60)
    assert kinds_v9(e.encode(DEFAULT_TEMPLATE, [REC] * 8 * 30)) == ["T", 30, 30, 30, "T", 30, 30, 30, "T", 30, 30]
    e = exporter(9, clock=clock, template_refresh_packets=1000, template_refresh_seconds=60)
    templates: dict = {}
    assert kinds_v9(e.encode(DEFAULT_TEMPLATE, [REC]), templates) == ["T", 1]
    clock.t += 59
    assert kinds_v9(e.encode(DEFAULT_TEMPLATE, [REC]), templates) == [1]
    clock.t += 1
    assert kinds_v9(e.encode(DEFAULT_TEMPLATE, [REC]), templates) == ["T", 1]


def test_new_and_redefined_templates_are_announced_at_once() -> None:
    e = exporter(9)
    templates: dict = {}
    e.encode(DEFAULT_TEMPLATE, [REC])
    ds = e.encode(DEFAULT_TEMPLATE_V6, [REC6])
    assert parse_v9(ds[0], templates)["templates"] == [256, 257]  # all known templates go together
    assert e.encode(DEFAULT_TEMPLATE, [REC]) != [] and len(e.encode(DEFAULT_TEMPLATE, [REC])) == 1
    redefined = Template([8, 12, 1], 256)
    ds = e.encode(redefined, [(REC[0], REC[1], 5)])
    assert parse_v9(ds[0], templates)["templates"] == [256, 257] and templates[256] == [(8, 4), (12, 4), (1, 4)]


def test_v9_sequence_counts_packets_and_uptime_is_ms_since_boot() -> None:
    clock = Clock()
    e = exporter(9, clock=clock, source_id=1234)
    templates: dict = {}
    ps = [parse_v9(d, templates) for d in e.encode(DEFAULT_TEMPLATE, [REC] * 61)]
    clock.t += 2.5
    ps += [parse_v9(d, templates) for d in e.encode(DEFAULT_TEMPLATE, [REC])]
    assert [p["sequence"] for p in ps] == [0, 1, 2, 3, 4]
    assert {p["source_id"] for p in ps} == {1234}
    assert [p["uptime"] for p in ps] == [100_000] * 4 + [102_500]
    assert ps[-1]["secs"] == int(T0 + 2.5)
    assert e.uptime_ms(T0 + 1) == 101_000


def test_ipfix_sequence_counts_data_records_and_sends_system_init() -> None:
    e = exporter(10, source_id=55)
    templates: dict = {}
    ms = [parse_ipfix(d, templates) for d in e.encode(DEFAULT_TEMPLATE, [REC] * 70)]
    assert [m["sequence"] for m in ms] == [0, 1, 31, 61]
    assert ms[0]["options"] == [(55, int((T0 - 100) * 1000))] and ms[0]["templates"] == [256, 0xFFFF]
    assert [m["data_records"] for m in ms] == [1, 30, 30, 10] and {m["domain"] for m in ms} == {55}
    no_uptime = Template([8, 12, 1, 152, 153], 300)
    e2 = exporter(10)
    first = parse_ipfix(e2.encode(no_uptime, [(REC[0], REC[1], 5, 1, 2)])[0], {})
    assert first["options"] == [] and first["templates"] == [300]  # boot time only when 21/22 are used
    with pytest.raises(TemplateError, match="65535"):
        e2.encode(Template([1], 65535), [(1,)])


def test_v5_sequence_counts_flows_engine_and_sampling() -> None:
    e = exporter(5, source_id=0x0102, sampling_rate=64)
    ps = [parse_v5(d) for d in e.encode(DEFAULT_TEMPLATE, [REC] * 70)]
    assert [(p["count"], p["sequence"]) for p in ps] == [(30, 0), (30, 30), (10, 60)]
    assert {(p["engine_type"], p["engine_id"], p["sampling"]) for p in ps} == {(1, 2, 1 << 14 | 64)}
    assert ps[0]["uptime"] == 100_000 and ps[0]["records"][0] == tuple(REC)
    capped = exporter(5, records_per_packet=100).encode(DEFAULT_TEMPLATE, [REC] * 31)
    assert [parse_v5(d)["count"] for d in capped] == [30, 1]  # v5's own limit


def test_v5_maps_other_templates_into_its_layout() -> None:
    t = Template([(7, 2), (11, 2), (12, 4), (8, 4), (1, 4), (10, 4)], 300)
    rec = parse_v5(exporter(5).encode(t, [(1000, 53, REC[1], REC[0], 99, 7)])[0])["records"][0]
    assert rec == (REC[0], REC[1], bytes(4), 7, 0, 0, 99, 0, 0, 1000, 53, 0, 0, 0, 0, 0, 0, 0)
    with pytest.raises(TemplateError, match="cannot carry"):
        exporter(5).encode(DEFAULT_TEMPLATE_V6, [REC6])
    with pytest.raises(RecordError, match="ingressInterface"):
        exporter(5).encode(t, [(1000, 53, REC[1], REC[0], 99, 70000)])  # 4-byte template field, 2-byte v5 slot


def test_sflow_datagrams_and_counters() -> None:
    e = exporter("sflow5", source_id=4, sampling_rate=10, agent="192.0.2.50")
    ds = [parse_sflow(d) for d in e.encode(DEFAULT_TEMPLATE, [REC] * 20)]
    assert [d["sequence"] for d in ds] == list(range(1, len(ds) + 1))
    assert sum(len(d["samples"]) for d in ds) == 20 and all(len(d["samples"]) <= 30 for d in ds)
    assert {d["sub_agent"] for d in ds} == {4} and ds[0]["uptime"] == 100_000
    assert e.stats.flows == 20 and e.stats.packets == 20 and e.stats.bytes == 20 * 1500
    cs = [parse_sflow(d) for d in e.encode_counters([InterfaceCounters(1), InterfaceCounters(2)])]
    assert [s["source"] for d in cs for s in d["samples"]] == [1, 2] and cs[0]["sequence"] == len(ds) + 1
    assert e.stats.counter_samples == 2
    with pytest.raises(ExportError, match="sFlow only"):
        exporter(9).encode_counters([InterfaceCounters(1)])


@pytest.mark.parametrize("protocol", [5, 9, 10, "sflow5"])
def test_drop_every_skips_datagrams_but_advances_sequences(protocol: object) -> None:
    e = exporter(protocol, drop_every=3)  # type: ignore[arg-type]
    full = exporter(protocol)  # type: ignore[arg-type]
    sent = e.encode(DEFAULT_TEMPLATE, [REC] * 300)
    every = full.encode(DEFAULT_TEMPLATE, [REC] * 300)
    data = [d for d in every if protocol in (5, "sflow5") or not _is_template(d)]
    skipped = data[2::3]
    assert [d for d in every if d not in skipped] == sent  # the same bytes, some left out
    assert e.stats.datagrams_skipped == len(skipped) and e.stats.flows + e.stats.flows_skipped == 300
    assert e.stats.datagrams == len(sent)


def _is_template(d: bytes) -> bool:
    off = 20 if d[1] == 9 else 16
    return int.from_bytes(d[off:off + 2], "big") in (0, 2, 3)


def test_send_returns_records_sent_excluding_skipped() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        with Exporter(f"127.0.0.1:{rx.getsockname()[1]}", protocol=9, drop_every=2) as e:
            assert e.send(DEFAULT_TEMPLATE, [REC] * 120) == 60


def test_a_bad_record_changes_nothing() -> None:
    e = exporter(9)
    with pytest.raises(RecordError, match="record 35"):
        e.encode(DEFAULT_TEMPLATE, [REC] * 35 + [REC._replace(protocol=300)])
    assert e.stats.datagrams == 0 and e._v9.sequence == 0
    assert kinds_v9(e.encode(DEFAULT_TEMPLATE, [REC])) == ["T", 1]  # the template is still announced first


def _receive(rx: socket.socket, n: int) -> list[bytes]:
    rx.settimeout(5)
    return [rx.recv(65535) for _ in range(n)]


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_sync_send_over_udp(family: int, host: str) -> None:
    try:
        rx = socket.socket(family, socket.SOCK_DGRAM)
        rx.bind((host, 0))
    except OSError:
        pytest.skip(f"no {host} on this machine")
    with rx:
        target = f"[{host}]:{rx.getsockname()[1]}" if family == socket.AF_INET6 else f"{host}:{rx.getsockname()[1]}"
        with Exporter(target, protocol="ipfix") as e:
            assert e.send(DEFAULT_TEMPLATE, (REC for _ in range(45))) == 45
            got = _receive(rx, 3)
        assert e._sock is None  # closed by the context manager
    templates: dict = {}
    assert [len(parse_ipfix(d, templates)["records"]) for d in got] == [0, 30, 15]


async def test_async_send_over_udp() -> None:
    rx = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await rx.bind(("127.0.0.1", 0))
    async with Exporter(f"localhost:{rx.getsockname()[1]}", protocol="netflow9", source_id=3) as e:
        assert await e.send_async(DEFAULT_TEMPLATE, [REC] * 31) == 31
        got = [await rx.recv(65535) for _ in range(3)]
        e2 = Exporter(f"127.0.0.1:{rx.getsockname()[1]}", protocol="sflow5")
        assert await e2.send_counters_async([InterfaceCounters(1)]) == 1
        assert parse_sflow(await rx.recv(65535))["samples"][0]["kind"] == "counters"
        e2.close()
    rx.close()
    templates: dict = {}
    assert [len(parse_v9(d, templates)["records"]) for d in got] == [0, 30, 1]


@pytest.mark.parametrize("target, message", [
    ("no-such-host.invalid:2055", "cannot resolve target 'no-such-host.invalid'"),
    ("127.0.0.1:99999", "port '99999'"),
    ("127.0.0.1:http", "port 'http'"),
    ("[::1:2055", "expected \\[IPv6\\]:port"),
    (":2055", "no host"),
])
def test_bad_targets(target: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        Exporter(target)


def test_default_ports_and_bare_ipv6() -> None:
    assert Exporter("127.0.0.1", protocol="ipfix").port == 4739
    assert Exporter("127.0.0.1", protocol="sflow5").port == 6343
    e = Exporter("::1", protocol=9)
    assert (e.host, e.port, e.family) == ("::1", 2055, socket.AF_INET6)


def test_config_file_and_argument_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "exporter.conf"
    conf.write_text("[doca_netflow_conf]\ntarget = 127.0.0.1:2999\nsource_id = 12\nversion = 10\n")
    e = Exporter(config=conf)
    assert (e.port, e.config.source_id, e.protocol) == (2999, 12, "ipfix")
    e = Exporter("127.0.0.1:3000", config=conf, protocol=9)
    assert (e.port, e.config.source_id, e.protocol) == (3000, 12, "netflow9")
    monkeypatch.setenv("FLOWPIPE_EXPORTER_CONF", str(conf))
    assert Exporter().port == 2999  # default path read when neither target nor file is given
    monkeypatch.setenv("FLOWPIPE_EXPORTER_CONF", str(tmp_path / "absent.conf"))
    with pytest.raises(ConfigError, match="absent.conf"):
        Exporter()


@pytest.mark.parametrize("kw, message", [
    ({"records_per_packet": 0}, "records_per_packet"),
    ({"mtu": 100}, "mtu"),
    ({"sampling_rate": 0}, "sampling_rate"),
    ({"protocol": 7}, "unknown protocol version 7"),
    ({"protocol": 5, "source_id": 70000}, "netflow5 source_id"),
    ({"drop_every": -1}, "drop_every"),
])
def test_bad_settings(kw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Exporter("127.0.0.1:9", **kw)


def test_default_boot_time_is_the_hosts() -> None:
    import time

    e = Exporter("127.0.0.1:9")
    assert abs(e.uptime_ms() - time.clock_gettime(time.CLOCK_BOOTTIME) * 1000) < 1000


def test_ipfix_boot_time_is_the_current_uptime_wrap() -> None:
    wrap = 2**32 / 1000  # seconds of sysUptime before it wraps
    e = exporter(10, boot_time=T0 - wrap - 5.0)  # booted one wrap and five seconds ago
    m = parse_ipfix(e.encode(DEFAULT_TEMPLATE, [REC])[0], {})
    (domain, init_ms), = m["options"]
    assert e.uptime_ms() == 5000 and init_ms == int((T0 - 5.0) * 1000)
