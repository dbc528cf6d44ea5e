"""The exporter library's public surface: ``flowpipe.export`` and its ``__all__`` are the whole API,
nothing outside the package imports its private modules, errors form one hierarchy, and the
package ships ``py.typed``."""
from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import flowpipe.config
import flowpipe.export as export
from tests.support import ROOT
from tests.support.imports import imported_names, package_of

EXPORT_DIR = ROOT / "flowpipe" / "export"
SOURCE_DIRS = ("flowpipe", "tests", "bench", "fuzz", "tools")

PUBLIC = {
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
}


def test_all_is_exactly_the_public_api() -> None:
    assert len(export.__all__) == len(set(export.__all__)), "a name listed twice"
    assert set(export.__all__) == PUBLIC
    for name in export.__all__:
        assert getattr(export, name, None) is not None, f"{name} is in __all__ but not defined"


def test_the_package_defines_nothing_public_beyond_all() -> None:
    public = {n for n in vars(export) if not n.startswith("_")} - {"annotations"}  # the __future__ import
    assert public == set(export.__all__)
    namespace: dict[str, object] = {}
    exec("from flowpipe.export import *", namespace)  # noqa: S102 - the star import is what is tested
    assert set(namespace) - {"__builtins__"} == PUBLIC


def test_public_classes_and_functions_name_the_package_as_their_module() -> None:
    for name in export.__all__:
        obj = getattr(export, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == "flowpipe.export", name
    assert str(export.RecordError) == "<class 'flowpipe.export.RecordError'>"


def test_implementation_modules_are_private() -> None:
    modules = {p.stem for p in EXPORT_DIR.glob("*.py")} - {"__init__"}
    assert modules and all(m.startswith("_") for m in modules), sorted(modules)


def test_one_error_hierarchy() -> None:
    for kind in (export.ConfigError, export.TargetError, export.TemplateError, export.RecordError):
        assert issubclass(kind, export.ExportError), kind
    assert issubclass(export.ExportError, Exception)
    # The collector's TOML configuration error is a different class, outside the exporter's hierarchy.
    assert flowpipe.config.ConfigError is not export.ConfigError
    assert not issubclass(flowpipe.config.ConfigError, export.ExportError)
    assert not issubclass(export.ConfigError, flowpipe.config.ConfigError)


def _sources() -> Iterator[Path]:
    for top in SOURCE_DIRS:
        for path in sorted((ROOT / top).rglob("*.py")):
            if EXPORT_DIR not in path.parents and "__pycache__" not in path.parts:
                yield path


def _private_imports(text: str, package: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    return [(line, name) for line, name in imported_names(text, package) if name.startswith("flowpipe.export._")]


def test_nothing_outside_the_package_imports_its_private_modules() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{line}: {name}" for path in _sources()
                 for line, name in _private_imports(path.read_text(), package_of(path, ROOT))]
    assert not offenders, "import these from flowpipe.export instead:\n" + "\n".join(offenders)


def test_the_scan_sees_every_form_of_private_import() -> None:
    text = ("from flowpipe.export._conf import load_config\n"
            "import flowpipe.export._sflow\n"
            "def f():\n    from flowpipe.export import _netflow9\n"
            "from .export._ipfix import IpfixEncoder\n"
            "importlib.import_module('flowpipe.export._traffic')\n"
            "from flowpipe.export import Exporter\n")
    assert sorted({line for line, _ in _private_imports(text, ("flowpipe",))}) == [1, 2, 4, 5, 6]


@pytest.mark.parametrize("doc", sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md"]), ids=lambda p: p.name)
def test_docs_show_imports_from_the_package_only(doc: Path) -> None:
    assert not re.findall(r"(?:from|import) flowpipe\.export\.\w+", doc.read_text())


def test_the_docs_api_table_lists_all() -> None:
    text = (ROOT / "docs" / "exporter.md").read_text()
    section = text.split("### The public API", 1)[1].split("\n### ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    assert set(re.findall(r"`(\w+)`", table)) == PUBLIC


def test_py_typed_ships_with_the_package() -> None:
    assert (ROOT / "flowpipe" / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["flowpipe"]
