"""Flow export: send flow records as NetFlow v5, NetFlow v9, IPFIX or sFlow v5.

The library (``flowpipe generate`` and the project's end-to-end tests use it too)::

    from flowpipe.export import Exporter, DEFAULT_TEMPLATE, DefaultRecord

    with Exporter("collector.example:2055", protocol=9, source_id=7) as exp:
        exp.send(DEFAULT_TEMPLATE, [DefaultRecord(b"\\n\\0\\0\\1", b"\\n\\0\\0\\2", bytes(4), 1, 2, 3, 1500,
                                                  exp.uptime_ms() - 900, exp.uptime_ms(), 40000, 443,
                                                  0x1B, 6, 0, 0, 0, 24, 24)])

- :class:`Exporter` (exporter.py): target ``host:port``, protocol (5, 9, 10 = IPFIX, ``"sflow5"``),
  source id; or a conf file (conf.py: ``[doca_netflow_conf]`` files are read as is; the default
  ``/etc/flowpipe/exporter.conf`` or ``$FLOWPIPE_EXPORTER_CONF`` when neither is given).
  ``send``/``send_async``/``encode`` (bytes out, no socket), ``send_counters`` (sFlow), ``stats``.
- :class:`Template`: ``(field type, length)`` pairs; :data:`DEFAULT_TEMPLATE` (IPv4) and
  :data:`DEFAULT_TEMPLATE_V6` carry NetFlow v5's record fields, laid out as :class:`DefaultRecord`.
- Errors: :class:`ExportError` and its kinds :class:`TemplateError` (unknown field type, bad
  length), :class:`RecordError` (a record that does not fit), :class:`TargetError`,
  :class:`ConfigError`.

Encoders usable without sockets (bytes out), for tests and benchmarks of other stages:

- ``netflow5.encode_v5(records, sys_uptime_ms, unix_secs, sequence, *, unix_nsecs, engine_type,
  engine_id, sampling_interval, sampling_mode) -> bytes`` (records as :class:`DefaultRecord`).
- ``netflow9.Netflow9Encoder(source_id)``: ``.template_packet(templates, sys_uptime_ms, unix_secs)``,
  ``.data_packet(template, records, sys_uptime_ms, unix_secs)``; ``.sequence`` counts packets.
- ``ipfix.IpfixEncoder(observation_domain_id)``: ``.template_message(templates, export_time,
  system_init_ms=None)``, ``.data_message(template, records, export_time)``; ``.sequence`` counts
  data records.
- ``sflow.encode_sflow(agent_address, sub_agent_id, sequence, uptime_ms, samples) -> bytes`` with
  ``sflow.flow_sample``, ``raw_header_record``, ``packet_header``, ``extended_router``,
  ``extended_gateway``, ``counter_sample``, ``interface_counters_record``; or
  ``sflow.SflowEncoder(agent, sub_agent_id, sampling_rate)`` with ``.flow_samples(template,
  records)``, ``.counter_samples(counters)``, ``.datagram(samples, uptime_ms)``.
- ``traffic.TrafficModel(seed, ipv6_share=, pool=)``: synthetic flows (``.flows(n, uptime_ms)``)
  and sampled packets (``.samples(n, uptime_ms)``), tuples laid out as DefaultRecord, split by
  address family (``.ipv4`` for DEFAULT_TEMPLATE, ``.ipv6`` for DEFAULT_TEMPLATE_V6).
"""
from __future__ import annotations

from flowpipe.export.conf import ConfigError, ExporterConfig, TargetError, load_config
from flowpipe.export.exporter import DEFAULT_TEMPLATE, DEFAULT_TEMPLATE_V6, Exporter, ExportStats
from flowpipe.export.netflow5 import DefaultRecord
from flowpipe.export.netflow9 import FIELDS, ExportError, RecordError, Template, TemplateError
from flowpipe.export.sflow import InterfaceCounters

__all__ = [
    "DEFAULT_TEMPLATE", "DEFAULT_TEMPLATE_V6", "FIELDS", "ConfigError", "DefaultRecord", "ExportError",
    "ExportStats", "Exporter", "ExporterConfig", "InterfaceCounters", "RecordError", "TargetError", "Template",
    "TemplateError", "load_config",
]
