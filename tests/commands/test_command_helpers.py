"""What the sub-commands share (flowpipe.commands): their parser, and reading the config."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from flowpipe.commands import add, load_config


def test_add_gives_the_parser_that_runs_main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()

    def main(args: argparse.Namespace) -> int:
        return 7

    add(sub, "x", main, "short help", "the description").add_argument("file")
    args = parser.parse_args(["x", "f"])
    assert args.func(args) == 7 and args.file == "f"
    assert sub.choices["x"].description == "the description"


def test_load_config_prints_every_error_once_and_gives_none(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[aggregator]\nflush_interval = 0\n[forwarder]\ntimeout = 0\n")
    assert load_config(str(bad)) is None
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("flowpipe: config error: ") for line in err)
    assert "flush_interval" in err[0] + err[1] and "forwarder.timeout" in err[0] + err[1]


def test_load_config_without_a_file_gives_the_defaults() -> None:
    cfg = load_config(None)
    assert cfg is not None and cfg.aggregator.flush_interval == 300.0
