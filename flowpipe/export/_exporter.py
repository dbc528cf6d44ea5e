"""The :class:`Exporter`: sends flow records to a collector as NetFlow v5, NetFlow v9, IPFIX or sFlow v5."""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import attrs

from flowpipe.export import _ipfix as ipfix
from flowpipe.export import _netflow5 as netflow5
from flowpipe.export import _netflow9 as netflow9
from flowpipe.export._conf import (
    DEFAULT_PORTS,
    ExporterConfig,
    default_path,
    load_config,
    parse_protocol,
    parse_target,
)
from flowpipe.export._errors import ConfigError, ExportError, RecordError, TargetError, TemplateError
from flowpipe.export._sflow import InterfaceCounters, SflowEncoder
from flowpipe.export._template import Template

if TYPE_CHECKING:
    import trio

_V5_IDS = [f.id for f in netflow5.V5_TEMPLATE.fields]
_IP_OVERHEAD: dict[int, int] = {socket.AF_INET: 28, socket.AF_INET6: 48}  # IP + UDP headers


@attrs.define
class ExportStats:
    """What an exporter has sent so far. ``flows``/``packets``/``bytes`` count the records in
    datagrams sent (for sFlow a record is one sampled packet); skipped ones are counted apart."""

    flows: int = 0
    packets: int = 0
    bytes: int = 0
    datagrams: int = 0           # every datagram sent: data, templates, counters
    template_datagrams: int = 0
    counter_samples: int = 0
    datagrams_skipped: int = 0   # data datagrams deliberately not sent (drop_every)
    flows_skipped: int = 0
    payload_bytes: int = 0       # UDP payload bytes sent

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


@attrs.define
class _TemplateInfo:
    per_packet: int
    packets_at: Callable[[Sequence[Any]], int] | None
    bytes_at: Callable[[Sequence[Any]], int] | None


def _summer(index: int) -> Callable[[Sequence[Any]], int] | None:
    if index < 0:
        return None
    get = itemgetter(index)
    return lambda rows: sum(map(get, rows))


class Exporter:
    """Sends flow records to one collector over UDP.

    Configure with arguments, a conf file (``config=``, see :func:`~flowpipe.export.load_config`), or both
    (arguments win); with neither a target nor a file, the default conf file is read. The target
    is resolved once, here (hostname, IPv4 or IPv6); :class:`TargetError` when it cannot be.

    ``send(template, records)`` (or ``await send_async(...)`` under trio) splits records over
    datagrams (``records_per_packet``, bounded by the MTU), announces templates first and again
    every ``template_refresh_packets`` data packets and ``template_refresh_seconds`` seconds, and
    keeps sequence numbers as each protocol counts them. ``encode`` does all of that without a
    socket and returns the datagrams. sysUptime counts from ``boot_time`` (default: when the host
    booted, so flows that began before the exporter was made have a sysUptime too).

    ``drop_every=N`` (a test aid) builds every Nth data datagram but does not send it, so its
    sequence numbers are skipped as real loss would; template and counter datagrams always go.

    Thread/task safety: an Exporter is neither thread-safe nor task-safe. It holds sequence
    numbers, template timers and a socket; use one exporter per thread or trio task (with its own
    ``source_id`` so a collector tells their streams apart). Templates and the encoder functions
    are safe to share.
    """

    def __init__(self, target: str | None = None, *, protocol: str | int | None = None,
                 source_id: int | None = None, config: str | os.PathLike[str] | None = None,
                 records_per_packet: int | None = None, template_refresh_packets: int | None = None,
                 template_refresh_seconds: float | None = None, mtu: int | None = None,
                 sampling_rate: int | None = None, agent: str | None = None, drop_every: int = 0,
                 boot_time: float | None = None, clock: Callable[[], float] = time.time) -> None:
        if config is not None:
            cfg = load_config(config)
        elif target is None:
            path = default_path()
            if not os.path.exists(path):
                raise ConfigError(f"no target given and no exporter config at {path}")
            cfg = load_config(path)
        else:
            cfg = ExporterConfig()
        given: dict[str, Any] = {
            "target": target, "source_id": source_id, "records_per_packet": records_per_packet,
            "template_refresh_packets": template_refresh_packets, "mtu": mtu, "agent": agent,
            "template_refresh_seconds": template_refresh_seconds, "sampling_rate": sampling_rate,
            "version": parse_protocol(protocol) if protocol is not None else None}
        self.config = cfg = attrs.evolve(cfg, **{k: v for k, v in given.items() if v is not None})
        self.protocol = cfg.version
        _validate(cfg, drop_every)
        if cfg.target is None:
            raise ConfigError("no target: give target= or 'target = host:port' in the config")
        self.host, self.port = parse_target(cfg.target, DEFAULT_PORTS[self.protocol])
        self.family, self.address = _resolve(self.host, self.port)
        self.max_payload = cfg.mtu - _IP_OVERHEAD[self.family]
        self.drop_every = drop_every
        self.stats = ExportStats()
        self._clock = clock
        self.boot_time = _host_boot_time(clock()) if boot_time is None else boot_time
        self._sock: socket.socket | None = None
        self._async_sock: trio.socket.SocketType | None = None
        self._announced: dict[int, Template] = {}
        self._since_templates = 0
        self._templates_at = 0.0
        self._data_count = 0
        self._info: dict[Template, _TemplateInfo] = {}
        self._v5_sequence = 0
        self._v9 = netflow9.Netflow9Encoder(cfg.source_id)
        self._ipfix = ipfix.IpfixEncoder(cfg.source_id)
        self._sflow: SflowEncoder | None = None
        if self.protocol == "sflow5":
            self._sflow = SflowEncoder(cfg.agent or _local_address(self.family, self.address),
                                             cfg.source_id, cfg.sampling_rate)

    # --- time -------------------------------------------------------------------------------------

    def uptime_ms(self, unix_time: float | None = None) -> int:
        """The exporter's sysUptime (ms since ``boot_time``, mod 2**32) at ``unix_time`` (default: now)."""
        t = self._clock() if unix_time is None else unix_time
        return int((t - self.boot_time) * 1000) & 0xFFFFFFFF

    # --- encoding ---------------------------------------------------------------------------------

    def encode(self, template: Template, records: Iterable[Any]) -> list[bytes]:
        """The datagrams ``send`` would send for ``records`` (deliberately skipped ones left out),
        advancing sequence numbers, template timers and :attr:`stats` as sending does."""
        if not isinstance(records, Sequence):
            records = list(records)
        if not records:
            return []
        info = self._template_info(template)
        if not template.canonical(records):
            records = template.rows(records)
        elif self.protocol == "sflow5":
            template.pack(records)  # checks every value (sFlow takes them as they are)
        if self.protocol == "netflow5":
            records = self._v5_rows(template, records)
        out: list[bytes] = []
        if self.protocol == "sflow5":
            self._encode_sflow(template, records, info, out)
            return out
        per = info.per_packet
        chunks = [records[i:i + per] for i in range(0, len(records), per)]
        # Pack everything before touching any state: a bad record raises with nothing half-sent.
        pack = netflow5.pack_records if self.protocol == "netflow5" else template.pack
        packed = []
        for i, chunk in enumerate(chunks):
            try:
                packed.append(pack(chunk))
            except RecordError as e:
                raise e.shifted(i * per) from None
        for chunk, body in zip(chunks, packed, strict=True):
            now = self._clock()
            if self.protocol == "netflow5":
                payload = self._v5_packet(body, len(chunk), now)
            else:
                self._templates_if_due(template, now, out)
                if self.protocol == "netflow9":
                    payload = self._v9.packet([netflow9.v9_data_flowset(template, body)], len(chunk),
                                              self.uptime_ms(now), int(now))
                else:
                    payload = self._ipfix.message([ipfix.data_set(template, body)], len(chunk), int(now))
            self._emit_data(payload, chunk, info, out)
        return out

    def encode_counters(self, counters: Sequence[InterfaceCounters]) -> list[bytes]:
        """sFlow only: datagrams of counter samples, one sample per interface (never skipped)."""
        if self._sflow is None:
            raise ExportError(f"counter samples are sFlow only; this exporter sends {self.protocol}")
        samples = self._sflow.counter_samples(counters)
        out: list[bytes] = []
        for group in self._fill(samples, self._sflow.header_length):
            self._emit(self._sflow.datagram(group, self.uptime_ms()), out)
        self.stats.counter_samples += len(samples)
        return out

    def _template_info(self, template: Template) -> _TemplateInfo:
        info = self._info.get(template)
        if info is None:
            info = self._info[template] = self._new_info(template)
        return info

    def _new_info(self, template: Template) -> _TemplateInfo:
        cfg = self.config
        if self.protocol == "netflow5":
            self._v5_layout(template)  # raises for what v5 cannot carry
            room = (self.max_payload - netflow5.V5_HEADER.size) // netflow5.RECORD_LENGTH
            per = min(cfg.records_per_packet, netflow5.MAX_RECORDS, room)
        elif self.protocol == "sflow5":
            per = cfg.records_per_packet
        else:
            if self.protocol == "netflow9":
                netflow9.v9_template_record(template)  # raises for enterprise fields
            if template.template_id == ipfix.SYSTEM_INIT_TEMPLATE.template_id and self.protocol == "ipfix":
                raise TemplateError("template id 65535 is reserved for the exporter's system-init options")
            if template.variable:
                raise TemplateError(f"template {template.template_id} has variable-length fields: the exporter "
                                    "sizes datagrams by record length; build them with Netflow9Encoder/IpfixEncoder")
            room = (self.max_payload - 20 - 4 - 3) // template.record_length
            per = min(cfg.records_per_packet, room)
        if per < 1:
            raise ExportError(f"a record of template {template.template_id} does not fit in one datagram "
                              f"of {self.max_payload} bytes (mtu {cfg.mtu})")
        counted = netflow5.V5_TEMPLATE if self.protocol == "netflow5" else template  # v5 rows are rearranged
        packets_at = counted.index(2) if counted.index(2) >= 0 else counted.index(86)
        bytes_at = counted.index(1) if counted.index(1) >= 0 else counted.index(85)
        return _TemplateInfo(per, _summer(packets_at) if self.protocol != "sflow5" else len, _summer(bytes_at))

    def _emit(self, payload: bytes, out: list[bytes]) -> None:
        out.append(payload)
        self.stats.datagrams += 1
        self.stats.payload_bytes += len(payload)

    def _emit_data(self, payload: bytes, rows: Sequence[Any], info: _TemplateInfo, out: list[bytes]) -> None:
        self._since_templates += 1
        self._data_count += 1
        st = self.stats
        if self.drop_every and self._data_count % self.drop_every == 0:
            st.datagrams_skipped += 1
            st.flows_skipped += len(rows)
            return
        self._emit(payload, out)
        st.flows += len(rows)
        if info.packets_at is not None:
            st.packets += info.packets_at(rows)
        if info.bytes_at is not None:
            st.bytes += info.bytes_at(rows)

    # --- templates (v9, IPFIX) ------------------------------------------------------------------------

    def _templates_if_due(self, template: Template, now: float, out: list[bytes]) -> None:
        cfg = self.config
        known = self._announced.get(template.template_id)
        if (known is not None and known == template
                and self._since_templates < cfg.template_refresh_packets
                and now - self._templates_at < cfg.template_refresh_seconds):
            return
        self._announced[template.template_id] = template
        self._send_templates(now, out)

    def _send_templates(self, now: float, out: list[bytes]) -> None:
        templates = list(self._announced.values())
        init_ms = None
        if self.protocol == "ipfix" and any(ipfix.uses_uptime(t) for t in templates):
            # Uptimes wrap every 2**32 ms: announce the start of the current wrap, so init + uptime is right.
            boot_ms = int(self.boot_time * 1000)
            init_ms = boot_ms + ((int(now * 1000) - boot_ms) >> 32 << 32)
        room = self.max_payload - 20 - 4 - (40 if init_ms is not None else 0)
        group: list[Template] = []
        size = 0
        for t in templates:
            length = 4 + 4 * len(t.fields) + 4 * sum(1 for f in t.fields if f.enterprise)
            if group and size + length > room:
                self._template_datagram(group, now, None, out)
                group, size = [], 0
            group.append(t)
            size += length
        self._template_datagram(group, now, init_ms, out)
        self._since_templates = 0
        self._templates_at = now

    def _template_datagram(self, group: list[Template], now: float, init_ms: int | None, out: list[bytes]) -> None:
        if self.protocol == "netflow9":
            payload = self._v9.template_packet(group, self.uptime_ms(now), int(now))
        else:
            payload = self._ipfix.template_message(group, int(now), init_ms)
        self._emit(payload, out)
        self.stats.template_datagrams += 1

    # --- NetFlow v5 -----------------------------------------------------------------------------------

    def _v5_layout(self, template: Template) -> list[int] | None:
        """None when the template is v5's own layout, else the template position of each v5 field."""
        ids = [f.id for f in template.fields]
        if ids == _V5_IDS:
            return None
        extra = [f.name for f in template.fields if f.id not in _V5_IDS or f.enterprise]
        if extra:
            raise TemplateError(f"NetFlow v5 cannot carry {extra} (template {template.template_id})")
        return [template.index(i) for i in _V5_IDS]

    def _v5_rows(self, template: Template, rows: Sequence[Any]) -> Sequence[Any]:
        """Rows rearranged into v5's record order (missing fields zero)."""
        layout = self._v5_layout(template)
        if layout is None:
            return rows
        zero = bytes(4)
        return [tuple(r[i] if i >= 0 else (zero if k < 3 else 0) for k, i in enumerate(layout)) for r in rows]

    def _v5_packet(self, body: bytes, count: int, now: float) -> bytes:
        sid, rate = self.config.source_id, self.config.sampling_rate
        payload = netflow5.v5_header(count, self.uptime_ms(now), int(now), self._v5_sequence,
                                     unix_nsecs=int(now % 1 * 1e9), engine_type=sid >> 8 & 0xFF,
                                     engine_id=sid & 0xFF, sampling_interval=rate if rate > 1 else 0,
                                     sampling_mode=1 if rate > 1 else 0) + body
        self._v5_sequence = (self._v5_sequence + count) & 0xFFFFFFFF
        return payload

    # --- sFlow ----------------------------------------------------------------------------------------

    def _encode_sflow(self, template: Template, rows: Sequence[Any], info: _TemplateInfo, out: list[bytes]) -> None:
        assert self._sflow is not None
        samples = self._sflow.flow_samples(template, rows, checked=True)
        start = 0
        for group in self._fill(samples, self._sflow.header_length, info.per_packet):
            payload = self._sflow.datagram(group, self.uptime_ms())
            self._emit_data(payload, rows[start:start + len(group)], info, out)
            start += len(group)

    def _fill(self, samples: list[bytes], header: int, limit: int = 1 << 30) -> list[list[bytes]]:
        """Samples grouped into datagrams: at most ``limit`` each, within the payload size."""
        groups: list[list[bytes]] = []
        group: list[bytes] = []
        size = header
        for s in samples:
            if header + len(s) > self.max_payload:
                raise ExportError(f"an sFlow sample of {len(s)} bytes does not fit in {self.max_payload}")
            if group and (len(group) >= limit or size + len(s) > self.max_payload):
                groups.append(group)
                group, size = [], header
            group.append(s)
            size += len(s)
        if group:
            groups.append(group)
        return groups

    # --- sending --------------------------------------------------------------------------------------

    def send(self, template: Template, records: Iterable[Any]) -> int:
        """Send ``records`` (tuples, dicts or attrs objects fitting ``template``); returns how many
        records went out (those in deliberately skipped datagrams excluded)."""
        before = self.stats.flows
        self._send_all(self.encode(template, records))
        return self.stats.flows - before

    async def send_async(self, template: Template, records: Iterable[Any]) -> int:
        """``send`` for trio tasks: the same datagrams, sent without blocking the event loop."""
        before = self.stats.flows
        datagrams = self.encode(template, records)
        await self._send_all_async(datagrams)
        return self.stats.flows - before

    def send_counters(self, counters: Sequence[InterfaceCounters]) -> int:
        """sFlow only: send counter samples for the given interfaces; returns the samples sent."""
        self._send_all(self.encode_counters(counters))
        return len(counters)

    async def send_counters_async(self, counters: Sequence[InterfaceCounters]) -> int:
        """``send_counters`` for trio tasks."""
        await self._send_all_async(self.encode_counters(counters))
        return len(counters)

    def _send_all(self, datagrams: list[bytes]) -> None:
        if self._sock is None:
            self._sock = socket.socket(self.family, socket.SOCK_DGRAM)
        for d in datagrams:
            try:
                self._sock.sendto(d, self.address)
            except OSError as e:
                raise ExportError(f"sending to {self.host}:{self.port} failed: {e}") from e

    async def _send_all_async(self, datagrams: list[bytes]) -> None:
        # Imported here: only the async methods need trio, so importing the exporter stays light.
        import trio  # noqa: PLC0415

        if self._async_sock is None:
            self._async_sock = trio.socket.socket(self.family, socket.SOCK_DGRAM)
        for d in datagrams:
            try:
                await self._async_sock.sendto(d, self.address)
            except OSError as e:
                raise ExportError(f"sending to {self.host}:{self.port} failed: {e}") from e

    def close(self) -> None:
        """Close the sockets (the exporter can still ``encode``)."""
        for s in (self._sock, self._async_sock):
            if s is not None:
                s.close()
        self._sock = self._async_sock = None

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Exporter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def _validate(cfg: ExporterConfig, drop_every: int) -> None:
    checks = [
        (cfg.records_per_packet >= 1, "records_per_packet must be at least 1"),
        (cfg.template_refresh_packets >= 1, "template_refresh_packets must be at least 1"),
        (cfg.template_refresh_seconds > 0, "template_refresh_seconds must be positive"),
        (576 <= cfg.mtu <= 65535, "mtu must be 576..65535"),
        (cfg.sampling_rate >= 1, "sampling_rate must be at least 1"),
        (0 <= cfg.source_id < 1 << 32, "source_id must be 0..2**32-1"),
        (cfg.version != "netflow5" or cfg.source_id < 1 << 16, "netflow5 source_id (engine type<<8|id) is 0..65535"),
        (cfg.version != "netflow5" or cfg.sampling_rate < 1 << 14, "netflow5 sampling_rate must be below 16384"),
        (drop_every >= 0, "drop_every must be 0 (off) or positive"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def _host_boot_time(now: float) -> float:
    """Unix time the host booted (``now`` where the platform cannot tell)."""
    try:
        return now - time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return now


def _resolve(host: str, port: int) -> tuple[int, Any]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as e:
        raise TargetError(f"cannot resolve target {host!r}: {e}") from None
    family, _, _, _, address = infos[0]
    return family, address


def _local_address(family: int, address: Any) -> str:
    """The local address the kernel would send from toward ``address`` (no packet is sent)."""
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect(address)
            return str(s.getsockname()[0])
        except OSError:
            return "0.0.0.0" if family == socket.AF_INET else "::"
