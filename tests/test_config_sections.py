"""Each config section is declared next to the stage it configures; flowpipe.config finds them in
the schema and names none of them."""
from __future__ import annotations

import ast
from pathlib import Path

import attrs

from flowpipe import config

FLOWPIPE = Path(__file__).resolve().parent.parent / "flowpipe"

HOME = {"": "flowpipe.schema", "listeners": "flowpipe.listen_config", "listeners.mapping": "flowpipe.decode.config",
        "sampling": "flowpipe.decode.config", "decoder": "flowpipe.decode.config",
        "aggregator": "flowpipe.aggregate.config", "reverse_dns": "flowpipe.enrich.config",
        "forwarder": "flowpipe.forward.config", "metrics": "flowpipe.httpd_config",
        "metadata": "flowpipe.forward.config"}


def test_every_section_lives_with_its_stage() -> None:
    assert {name: cls.__module__ for name, cls in config.sections().items()} == HOME
    assert [n for n in config.sections() if config.is_array(n)] == ["listeners", "listeners.mapping", "sampling"]


def test_sections_are_keyword_only_attrs_classes_with_slots_and_a_doc_for_every_key() -> None:
    for name, cls in config.sections().items():
        assert attrs.has(cls) and "__slots__" in vars(cls), name
        assert cls.__doc__, name
        for f in attrs.fields(cls):
            assert f.kw_only and f.metadata.get("doc"), (name, f.name)


def test_the_loader_declares_no_section_and_names_none() -> None:
    tree = ast.parse((FLOWPIPE / "config.py").read_text())
    assert not [n.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name not in ("ConfigError",
                                                                                              "ConfigErrors")]
    names = {"decoder", "aggregator", "reverse_dns", "forwarder", "metrics", "metadata", "listeners", "sampling",
             "mapping"}
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not names & literals


def test_the_old_import_paths_still_work() -> None:
    from flowpipe.config import (  # noqa: PLC0415
        AggregatorConfig,
        Config,
        DecoderConfig,
        ForwarderConfig,
        ListenerConfig,
        MappingConfig,
        MetadataConfig,
        MetricsConfig,
        ReverseDnsConfig,
        SamplingRule,
    )
    assert Config().aggregator == AggregatorConfig()
    assert {DecoderConfig, ForwarderConfig, ListenerConfig, MappingConfig, MetadataConfig, MetricsConfig,
            ReverseDnsConfig, SamplingRule} <= set(config.sections().values())
