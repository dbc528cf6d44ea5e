"""The docs agree with the code and with each other (issue #19)."""
from __future__ import annotations

from tests.support import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_index_lists_every_page() -> None:
    index = (ROOT / "docs" / "index.md").read_text()
    missing = [p.name for p in DOCS if p.name != "index.md" and f"({p.name})" not in index]
    assert not missing


def test_no_stale_statements_about_workers_or_flow_counters() -> None:
    texts = {p.name: p.read_text() for p in DOCS}
    texts["README.md"] = (ROOT / "README.md").read_text()
    texts["convert_config.py"] = (ROOT / "flowpipe" / "commands" / "convert_config.py").read_text()
    for name, text in texts.items():
        flat = " ".join(text.split())
        assert "read by one process" not in flat, name
        assert "not decoding CPU" not in flat, name
        assert "delivered + spooled + dropped" not in flat, name


def test_environment_and_log_options_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    for word in ("--log-level", "FLOWPIPE_LOG_LEVEL", "FLOWPIPE_CONFIG", "FLOWPIPE_CAPTURES", "${env:", "${file:"):
        assert word in readme, word


def test_ci_runs_the_readmes_test_command_and_the_quick_one_only_leaves_out_slow_tests() -> None:
    commands = [ln.strip() for ln in (ROOT / "README.md").read_text().splitlines()
                if ln.startswith("    ") and "-m pytest" in ln and "FLOWPIPE_CAPTURES" not in ln]
    full, quick = commands
    assert full.startswith("python3 -m venv .venv && ") and full.endswith(" && .venv/bin/python -m pytest -q")
    assert full in (ROOT / ".ci" / "run").read_text().splitlines()
    assert quick == full.split(" && ")[-1] + ' -m "not slow"'
