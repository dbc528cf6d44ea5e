"""Flow export: send flow records as NetFlow v5, NetFlow v9, IPFIX or sFlow v5.

This package is the exporter library's one public API: import every name from ``flowpipe.export``
(the ``_``-prefixed modules inside are its implementation and may change). ``flowpipe generate``,
the benchmarks, the fuzz seeds and the project's end-to-end tests use it the same way::

    from flowpipe.export import Exporter, DEFAULT_TEMPLATE, DefaultRecord

    with Exporter("collector.example:2055", protocol=9, source_id=7) as exp:
        exp.send(DEFAULT_TEMPLATE, [DefaultRecord(b"\\n\\0\\0\\1", b"\\n\\0\\0\\2", bytes(4), 1, 2, 3, 1500,
                                                  exp.uptime_ms() - 900, exp.uptime_ms(), 40000, 443,
                                                  0x1B, 6, 0, 0, 0, 24, 24)])

Weight: ``pip install flowpipe`` installs the exporter with the collector. Importing and using
this package (building an Exporter, encoding, sending over UDP, reading a conf file) loads only
the standard library and ``attrs``: none of the collector's numpy, httpx, dnspython, isal,
msgpack, prometheus_client, orjson or PyYAML. trio is imported by ``send_async`` and
``send_counters_async`` only, when first called.

Sending:

- :class:`Exporter`: target ``host:port``, protocol (5, 9, 10 = IPFIX, ``"sflow5"``), source id;
  or a conf file (``[doca_netflow_conf]`` files are read as is; the default
  ``/etc/flowpipe/exporter.conf`` or ``$FLOWPIPE_EXPORTER_CONF`` when neither is given).
  ``send``/``send_async``/``encode`` (bytes out, no socket), ``send_counters`` (sFlow), ``stats``
  (an :class:`ExportStats`).
- :func:`load_config` (a file) / :func:`parse_config` (its text) give an :class:`ExporterConfig`;
  :data:`PROTOCOLS` names the protocols.

Records and templates:

- :class:`Template`: ``(field type, length)`` pairs; :data:`FIELDS` maps the known field ids to
  :class:`FieldSpec`. :data:`DEFAULT_TEMPLATE` (IPv4) and :data:`DEFAULT_TEMPLATE_V6` carry
  NetFlow v5's record fields, laid out as :class:`DefaultRecord`.

Errors, one hierarchy: :class:`ExportError` is the base of everything the library raises on
purpose; its kinds are :class:`TemplateError` (unknown field type, bad length), :class:`RecordError`
(a record that does not fit), :class:`TargetError` (a target that cannot be parsed or resolved) and
:class:`ConfigError` (an exporter conf file or setting). That ``ConfigError`` is the exporter's;
the collector's TOML configuration raises a different class, ``flowpipe.config.ConfigError``,
which is not an ExportError.

Encoders usable without sockets (bytes out), for tests and benchmarks of other stages:

- ``encode_v5(records, sys_uptime_ms, unix_secs, sequence, *, unix_nsecs, engine_type, engine_id,
  sampling_interval, sampling_mode) -> bytes`` (records as :class:`DefaultRecord`).
- ``Netflow9Encoder(source_id)``: ``.template_packet(templates, sys_uptime_ms, unix_secs)``,
  ``.data_packet(template, records, sys_uptime_ms, unix_secs)``; ``.sequence`` counts packets;
  ``.packet(flowsets, count, sys_uptime_ms, unix_secs)`` around FlowSets built by hand, with
  ``v9_template_flowset(templates)`` and ``v9_data_flowset(template, template.pack(records))``.
- ``IpfixEncoder(observation_domain_id)``: ``.template_message(templates, export_time,
  system_init_ms=None)``, ``.data_message(template, records, export_time)``; ``.sequence`` counts
  data records.
- ``encode_sflow(agent_address, sub_agent_id, sequence, uptime_ms, samples) -> bytes`` with
  ``flow_sample``, ``raw_header_record``, ``packet_header``, ``extended_switch``,
  ``extended_router``, ``extended_gateway``, ``counter_sample``, ``interface_counters_record``
  (:class:`InterfaceCounters`); or ``SflowEncoder(agent, sub_agent_id, sampling_rate)`` with
  ``.flow_samples(template, records)``, ``.counter_samples(counters)``, ``.datagram(samples,
  uptime_ms)``.
- ``TrafficModel(seed, ipv6_share=, pool=)``: synthetic flows (``.flows(n, uptime_ms)``) and
  sampled packets (``.samples(n, uptime_ms)``) as a :class:`Batch`, tuples laid out as
  DefaultRecord, split by address family (``.ipv4`` for DEFAULT_TEMPLATE, ``.ipv6`` for
  DEFAULT_TEMPLATE_V6).
"""
from __future__ import annotations

import types as _types

from flowpipe.export._conf import PROTOCOLS, ExporterConfig, load_config, parse_config
from flowpipe.export._default import DEFAULT_TEMPLATE, DEFAULT_TEMPLATE_V6, DefaultRecord
from flowpipe.export._errors import ConfigError, ExportError, RecordError, TargetError, TemplateError
from flowpipe.export._exporter import Exporter, ExportStats
from flowpipe.export._fields import FIELDS, FieldSpec
from flowpipe.export._ipfix import IpfixEncoder
from flowpipe.export._netflow5 import encode_v5
from flowpipe.export._netflow9 import Netflow9Encoder, v9_data_flowset, v9_template_flowset
from flowpipe.export._sflow import (
    InterfaceCounters,
    SflowEncoder,
    counter_sample,
    encode_sflow,
    extended_gateway,
    extended_router,
    extended_switch,
    flow_sample,
    interface_counters_record,
    packet_header,
    raw_header_record,
)
from flowpipe.export._template import Template
from flowpipe.export._traffic import Batch, TrafficModel

__all__ = [
    # sending
    "Exporter", "ExportStats", "ExporterConfig", "load_config", "parse_config", "PROTOCOLS",
    # records and templates
    "Template", "FIELDS", "FieldSpec", "DefaultRecord", "DEFAULT_TEMPLATE", "DEFAULT_TEMPLATE_V6",
    # errors
    "ExportError", "ConfigError", "TargetError", "TemplateError", "RecordError",
    # socket-free encoders
    "encode_v5", "Netflow9Encoder", "v9_template_flowset", "v9_data_flowset", "IpfixEncoder",
    "SflowEncoder", "InterfaceCounters", "encode_sflow", "flow_sample", "raw_header_record", "packet_header",
    "extended_switch", "extended_router", "extended_gateway", "counter_sample", "interface_counters_record",
    # synthetic traffic
    "TrafficModel", "Batch",
]

# Classes and functions read as the package's (in reprs, tracebacks, pickles), not as their private module's.
for _obj in [globals()[name] for name in __all__]:
    if isinstance(_obj, (type, _types.FunctionType)) and _obj.__module__.startswith(__name__ + "._"):
        _obj.__module__ = __name__
del _obj
