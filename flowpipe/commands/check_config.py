"""``flowpipe check-config FILE``: validate a config; print the effective config or the error."""
from __future__ import annotations

import argparse
import sys

from flowpipe import secrets
from flowpipe.commands import add, load_config
from flowpipe.config import dump
from flowpipe.startup import filesystem_problems

DESCRIPTION = ("Exit 0 and print the effective config (TOML), or exit 2 naming file, key "
               "and reason for every error in the file, each once. Also checks what run needs "
               "from the filesystem (spool_dir, state_file directory, output file, TLS files) "
               "as the user running it. Secret header values and values from ${env:...} / "
               "${file:...} references are masked.")


def register(sub: argparse._SubParsersAction) -> None:
    p = add(sub, "check-config", main, "validate a config file and print the effective config", DESCRIPTION)
    p.add_argument("file")


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    if cfg is None:
        return 2
    # What `run` needs from the filesystem, checked as the user running this (run it as flowpipe's user).
    problems = list(filesystem_problems(cfg))
    for key, reason, hint in problems:
        print(f"flowpipe: config error: {args.file}: {key}: {reason} (fix: {hint})", file=sys.stderr)
    if problems:
        return 2
    sys.stdout.write(secrets.mask(dump(cfg)))
    return 0
