"""Each config section is declared next to the stage it configures; flowpipe.config finds them in
the schema and names none of them."""
from __future__ import annotations

import ast
from pathlib import Path

import attrs

from flowpipe import config
from flowpipe.forward.config import SECRET_HEADER_WORDS
from flowpipe.sections import key

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


def test_the_loader_declares_no_section_and_names_none_nor_any_key() -> None:
    tree = ast.parse((FLOWPIPE / "config.py").read_text())
    assert not [n.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name not in ("ConfigError",
                                                                                              "ConfigErrors")]
    names = {"decoder", "aggregator", "reverse_dns", "forwarder", "metrics", "metadata", "listeners", "sampling",
             "mapping"}
    keys = {f.name for cls in config.sections().values() for f in attrs.fields(cls)}
    assert "headers" in keys
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not (names | keys) & literals


def test_secrecy_is_declared_next_to_the_field_and_dump_reads_it() -> None:
    @attrs.define(slots=True, kw_only=True)
    class Section:
        """A made-up section."""

        password: str = key("", None, "a secret as a whole", secret=True)
        extra: dict[str, str] = key({}, None, "a table with secret entries", secret=("token",))
        plain: str = key("", None, "nothing secret")

    fields = attrs.fields(Section)
    assert config._shown(fields.password, "hunter2") == "***"
    assert config._shown(fields.password, None) is None  # an absent value stays absent
    assert config._shown(fields.extra, {"X-Token": "t", "X-Team": "net"}) == {"X-Token": "***", "X-Team": "net"}
    assert config._shown(fields.plain, "x") == "x" and "secret" not in fields.plain.metadata
    # the forwarder declares its headers so; no other key is secret
    declared = {(name, f.name): f.metadata["secret"] for name, cls in config.sections().items()
                for f in attrs.fields(cls) if "secret" in f.metadata}
    assert declared == {("forwarder", "headers"): SECRET_HEADER_WORDS}
    assert config.SECRET_HEADER_WORDS is SECRET_HEADER_WORDS  # the old import path


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
