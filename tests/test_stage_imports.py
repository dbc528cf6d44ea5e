"""No stage imports another stage's internals (issue #20), checked on the source with ``ast``.

The rule: a module of a stage (``STAGES``) may import

- its own stage's modules;
- flowpipe's neutral modules (``NEUTRAL``): what the stages share (flow tuples, what they hand each
  other, config loading, the metrics facade, process tuning, the bounded cache, logging, ...);
- another stage's declared public names (``PUBLIC``): its config section module and its package.

Anything else is an error unless it is listed in ``EXCEPTIONS`` with the reason it remains. Neutral
modules, in turn, import no stage but its public names (``NEUTRAL_EXCEPTIONS`` aside). Imports inside
functions and under ``TYPE_CHECKING`` count too.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flowpipe"

# stage -> the modules (and packages, with everything under them) that make it up
STAGES: dict[str, tuple[str, ...]] = {
    "listen": ("flowpipe.listen", "flowpipe.listen_config"),
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
# decoder also publishes the format of the undecoded chunks it hands the accumulator, with their
# column readers (flowpipe.decode.columns: the columnar path, docs/performance.md).
PUBLIC = {"flowpipe.listen_config", "flowpipe.decode", "flowpipe.decode.config", "flowpipe.decode.columns",
          "flowpipe.aggregate", "flowpipe.aggregate.config", "flowpipe.enrich", "flowpipe.enrich.config",
          "flowpipe.forward", "flowpipe.forward.config", "flowpipe.render"}
# (importer, imported) -> why it remains
EXCEPTIONS: dict[tuple[str, str], str] = {}
NEUTRAL_EXCEPTIONS: dict[tuple[str, str], str] = {}
# A stage imports config sections from their own modules (its own, or another stage's public one), not
# through the loader, flowpipe.config (which only re-exports them for old import paths). Stage module ->
# why it still does.
THROUGH_THE_LOADER: dict[str, str] = {
    "flowpipe.aggregate.accumulator": "being changed elsewhere: its AggregatorConfig import moves to "
                                      "flowpipe.aggregate.config once that change is in",
    "flowpipe.decode.stage": "being changed elsewhere: its ListenerConfig import moves to "
                             "flowpipe.listen_config once that change is in",
}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """The flowpipe modules ``path`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if _is_module(sub) else node.module)
    return {m for m in out if m == "flowpipe" or m.startswith("flowpipe.")}


def _stage_of(module: str) -> str | None:
    for stage, prefixes in STAGES.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return stage
    return None


def _violations() -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """(stage -> elsewhere, neutral -> stage) imports the rule does not allow, with their stages."""
    stage_bad: dict[tuple[str, str], str] = {}
    neutral_bad: dict[tuple[str, str], str] = {}
    for module, path in _modules():
        mine = _stage_of(module)
        for imported in _imports(path):
            theirs = _stage_of(imported)
            if mine is not None:
                if theirs != mine and imported not in NEUTRAL and imported not in PUBLIC:
                    stage_bad[module, imported] = f"{mine} -> {theirs or 'not neutral'}"
            elif module in NEUTRAL and theirs is not None and imported not in PUBLIC:
                neutral_bad[module, imported] = f"neutral -> {theirs}"
    return stage_bad, neutral_bad


def test_the_rule_covers_every_stage_module() -> None:
    staged = {m for m, _ in _modules() if _stage_of(m)}
    for stage, prefixes in STAGES.items():
        assert any(_is_module(p) for p in prefixes), stage
    assert {"flowpipe.decode.stage", "flowpipe.aggregate.stage", "flowpipe.forward.forwarder",
            "flowpipe.enrich.rdns", "flowpipe.listen", "flowpipe.render.payload", "flowpipe.render.stage"} <= staged
    assert all(_is_module(m) for m in NEUTRAL | PUBLIC)


def test_no_stage_imports_another_stages_internals() -> None:
    stage_bad, _ = _violations()
    unexcused = {k: v for k, v in stage_bad.items() if k not in EXCEPTIONS}
    assert not unexcused, "import the other stage's public name, or move what is shared to a neutral module: " + \
        "; ".join(f"{a} imports {b} ({why})" for (a, b), why in sorted(unexcused.items()))


def test_neutral_modules_import_no_stage_internals() -> None:
    _, neutral_bad = _violations()
    unexcused = {k: v for k, v in neutral_bad.items() if k not in NEUTRAL_EXCEPTIONS}
    assert not unexcused, "; ".join(f"{a} imports {b}" for a, b in sorted(unexcused))


def test_every_exception_is_still_needed() -> None:
    stage_bad, neutral_bad = _violations()
    assert set(EXCEPTIONS) <= set(stage_bad), f"no longer needed: {set(EXCEPTIONS) - set(stage_bad)}"
    stale = set(NEUTRAL_EXCEPTIONS) - set(neutral_bad)
    assert not stale, f"no longer needed: {stale}"


def test_stages_import_config_sections_from_their_own_modules() -> None:
    through = {m for m, path in _modules() if _stage_of(m) and "flowpipe.config" in _imports(path)}
    unexcused = through - set(THROUGH_THE_LOADER)
    assert not unexcused, "import the section from its module (flowpipe.aggregate.config, flowpipe.listen_config, " \
        f"...), not flowpipe.config: {sorted(unexcused)}"
    assert set(THROUGH_THE_LOADER) <= through, f"no longer needed: {set(THROUGH_THE_LOADER) - through}"
