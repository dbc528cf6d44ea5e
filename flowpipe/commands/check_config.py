"""``flowpipe check-config FILE``: validate a config; print the effective config or the error."""
from __future__ import annotations

import argparse
import sys

from flowpipe import secrets
from flowpipe.config import ConfigError, ConfigErrors, dump, load
from flowpipe.startup import filesystem_problems


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-config", help="validate a config file and print the effective config",
                       description="Exit 0 and print the effective config (TOML), or exit 2 naming file, key "
                                   "and reason for every error in the file, each once. Also checks what run needs "
                                   "from the filesystem (spool_dir, state_file directory, output file, TLS files) "
                                   "as the user running it. Secret header values and values from ${env:...} / "
                                   "${file:...} references are masked.")
    p.add_argument("file")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.file)
    except ConfigError as e:
        for one in e.errors if isinstance(e, ConfigErrors) else [e]:
            print(f"flowpipe: config error: {one}", file=sys.stderr)
        return 2
    # What `run` needs from the filesystem, checked as the user running this (run it as flowpipe's user).
    problems = list(filesystem_problems(cfg))
    for key, reason, hint in problems:
        print(f"flowpipe: config error: {args.file}: {key}: {reason} (fix: {hint})", file=sys.stderr)
    if problems:
        return 2
    sys.stdout.write(secrets.mask(dump(cfg)))
    return 0
