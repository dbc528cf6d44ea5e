"""No module of flowpipe imports a stage's internals (issue #20), checked on the source with ``ast``.

Every module under ``flowpipe/`` is of one of three kinds, which may import:

- a module of a stage (``STAGES``): its own stage's modules, the neutral modules and the other
  stages' declared public names (``PUBLIC``: a stage's package and its config section module);
- a neutral module (``NEUTRAL``): what the stages share (flow tuples, what they hand each other,
  config loading, the metrics facade, process tuning, the bounded cache, logging, ...): neutral
  modules and public names only;
- an application module, any other (the service, the supervisor, the commands and the CLI, the
  metrics endpoint, the exporter inventory, the docs generators, the exporter library): neutral and
  application modules, public names, and the stages' entry points (``ENTRY``: what the wiring builds
  a stage from, and what a stage reports to it).

Anything else is an error unless it is listed in ``EXCEPTIONS`` with the reason it remains. The scan
(``tests/support/imports.py``) sees imports at any depth (inside functions, under ``TYPE_CHECKING``),
resolves relative ones, and counts a string constant naming a flowpipe module as an import of it
(``importlib.import_module("flowpipe.decode.templates")``, a table of module names).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tests.support import ROOT
from tests.support.imports import imported_names, package_of

PACKAGE = ROOT / "flowpipe"

# stage -> the modules (and packages, with everything under them) that make it up
STAGES: dict[str, tuple[str, ...]] = {
    "listen": ("flowpipe.listen", "flowpipe.listen_config", "flowpipe._udp"),  # _udp: its compiled reader
    "decode": ("flowpipe.decode", "flowpipe.telemetry"),  # telemetry: the sFlow counters the decoder stage feeds
    "aggregate": ("flowpipe.aggregate",),
    "enrich": ("flowpipe.enrich",),
    "render": ("flowpipe.render",),
    "forward": ("flowpipe.forward",),
}
NEUTRAL = {"flowpipe", "flowpipe.flow", "flowpipe.pipeline", "flowpipe.cidr", "flowpipe.config", "flowpipe.schema",
           "flowpipe.sections", "flowpipe.metrics", "flowpipe.runtime", "flowpipe.cache", "flowpipe.logs",
           "flowpipe.startup", "flowpipe.atomicfile", "flowpipe.protocols", "flowpipe.secrets",
           "flowpipe.httpd_config"}
# What a stage offers the others: its config section (the TOML contract) and its package's names; the
# decoder also publishes the format of the record sources it hands the accumulator, with their
# column readers (flowpipe.decode.columns: undecoded data sets; flowpipe.decode.rows: flow tuples;
# docs/performance.md).
PUBLIC = {"flowpipe.listen_config", "flowpipe.decode", "flowpipe.decode.config", "flowpipe.decode.columns",
          "flowpipe.decode.rows",
          "flowpipe.aggregate", "flowpipe.aggregate.config", "flowpipe.enrich", "flowpipe.enrich.config",
          "flowpipe.forward", "flowpipe.forward.config", "flowpipe.render"}
# What application modules may use beyond the public names: module -> what it offers them.
ENTRY: dict[str, str] = {
    "flowpipe.listen": "UdpListener, the listen stage",
    "flowpipe.decode.stage": "DecoderStage",
    "flowpipe.decode.dispatch": "DatagramDecoder, a listener's decoder (the service, the decode command)",
    "flowpipe.decode.base": "Source and DecodeError: a datagram's origin, a decoder's refusal (the decode command)",
    "flowpipe.decode.upkeep": "DecoderUpkeep: template state files and template metrics",
    "flowpipe.decode.exporters": "SamplerRules and SamplingPolicy, built from [[sampling]]",
    "flowpipe.decode.facts": "what the decoders report for the exporter inventory",
    "flowpipe.decode.state": "worker_state_file: the supervisor names each worker's template state file",
    "flowpipe.aggregate.stage": "AccumulatorStage",
    "flowpipe.render.stage": "RenderStage",
    "flowpipe.forward.metadata": "MetadataSender",
}
# (importer, imported) -> why it remains
EXCEPTIONS: dict[tuple[str, str], str] = {}
# A stage imports config sections from their own modules (its own, or another stage's public one), not
# through the loader, flowpipe.config (which only re-exports them for old import paths). Stage module ->
# why it still does.
THROUGH_THE_LOADER: dict[str, str] = {}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _is_module(name: str) -> bool:
    """A Python module or package of the tree, or a compiled one (built from its ``.c`` source)."""
    rel = ROOT / Path(*name.split("."))
    return rel.with_suffix(".py").is_file() or rel.with_suffix(".c").is_file() or (rel / "__init__.py").is_file()


def _module_named(name: str) -> str | None:
    """The flowpipe module a dotted name is in (itself, or its longest prefix that is a module)."""
    if name != "flowpipe" and not name.startswith("flowpipe."):
        return None
    parts = name.split(".")
    while len(parts) > 1 and not _is_module(".".join(parts)):
        parts.pop()
    return ".".join(parts)


def _imports_in(text: str, package: tuple[str, ...]) -> set[str]:
    """The flowpipe modules a source in ``package`` imports (``from pkg import mod`` counts as ``pkg``
    and ``pkg.mod``; ``from mod import name`` as ``mod``)."""
    return {m for _, name in imported_names(text, package) if (m := _module_named(name)) is not None}


def _imports(path: Path) -> set[str]:
    return _imports_in(path.read_text(), package_of(path, ROOT))


def _stage_of(module: str) -> str | None:
    for stage, prefixes in STAGES.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return stage
    return None


def _kind(module: str) -> str:
    stage = _stage_of(module)
    return f"stage {stage}" if stage else "neutral" if module in NEUTRAL else "application"


def _violations() -> dict[tuple[str, str], str]:
    """(importer, imported) -> the kinds of both, for every import the rule does not allow."""
    bad: dict[tuple[str, str], str] = {}
    for module, path in _modules():
        mine = _stage_of(module)
        for imported in _imports(path):
            theirs = _stage_of(imported)
            if imported in NEUTRAL or imported in PUBLIC or (theirs is not None and theirs == mine):
                continue
            if mine is None and module not in NEUTRAL and (theirs is None or imported in ENTRY):
                continue  # an application module: other application modules and the entry points too
            bad[module, imported] = f"{_kind(module)} -> {_kind(imported)}"
    return bad


def test_the_rule_covers_every_module() -> None:
    kinds = {m: _kind(m) for m, _ in _modules()}
    for stage, prefixes in STAGES.items():
        assert any(_is_module(p) for p in prefixes), stage
    assert {m for m, k in kinds.items() if k.startswith("stage")} >= {
        "flowpipe.decode.stage", "flowpipe.aggregate.stage", "flowpipe.forward.forwarder", "flowpipe.enrich.rdns",
        "flowpipe.listen", "flowpipe.render.payload", "flowpipe.render.stage"}
    assert {m for m, k in kinds.items() if k == "application"} >= {
        "flowpipe.service", "flowpipe.httpd", "flowpipe.inventory", "flowpipe.supervisor", "flowpipe.metricsdoc",
        "flowpipe.cli", "flowpipe.commands", "flowpipe.commands.decode", "flowpipe.commands.run", "flowpipe.export"}
    assert all(_is_module(m) for m in NEUTRAL | PUBLIC | set(ENTRY))
    assert all(_stage_of(m) for m in PUBLIC | set(ENTRY)) and not PUBLIC & set(ENTRY)


def test_the_scan_sees_every_form_of_import() -> None:
    text = ("from . import accumulator\n"                                # relative, in flowpipe.aggregate
            "from ..decode.templates import DomainView\n"               # relative, two levels up
            "def f():\n    import flowpipe.forward.spool\n"             # inside a function
            "if TYPE_CHECKING:\n    from flowpipe.render import payload\n"
            "importlib.import_module('flowpipe.enrich.ratelimit')\n"    # a module named in a string
            "HOME = {'x': 'flowpipe.decode.templates.Registry'}\n"      # a name in a module, in a string
            "from flowpipe.aggregate import _tables\n"                  # a compiled module
            "log = 'flowpipe'; doc = 'see flowpipe.decode.sflow'\n")    # not a module's dotted name
    assert _imports_in(text, ("flowpipe", "aggregate")) == {
        "flowpipe.aggregate", "flowpipe.aggregate.accumulator", "flowpipe.decode.templates", "flowpipe.forward.spool",
        "flowpipe.render", "flowpipe.render.payload", "flowpipe.enrich.ratelimit", "flowpipe.aggregate._tables"}


def test_no_module_imports_a_stages_internals() -> None:
    unexcused = {k: v for k, v in _violations().items() if k not in EXCEPTIONS}
    assert not unexcused, "import the other stage's public name or entry point, or move what is shared to a " \
        "neutral module: " + "; ".join(f"{a} imports {b} ({why})" for (a, b), why in sorted(unexcused.items()))


def test_every_exception_and_entry_point_is_still_needed() -> None:
    stale = set(EXCEPTIONS) - set(_violations())
    assert not stale, f"no longer needed: {stale}"
    used = {imported for module, path in _modules() if _kind(module) == "application" for imported in _imports(path)}
    assert set(ENTRY) <= used, f"entry points no application module imports: {set(ENTRY) - used}"


def test_stages_import_config_sections_from_their_own_modules() -> None:
    through = {m for m, path in _modules() if _stage_of(m) and "flowpipe.config" in _imports(path)}
    unexcused = through - set(THROUGH_THE_LOADER)
    assert not unexcused, "import the section from its module (flowpipe.aggregate.config, flowpipe.listen_config, " \
        f"...), not flowpipe.config: {sorted(unexcused)}"
    assert set(THROUGH_THE_LOADER) <= through, f"no longer needed: {set(THROUGH_THE_LOADER) - through}"
