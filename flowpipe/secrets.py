"""Secret references in config strings: ``"${env:NAME}"`` (an environment variable) or
``"${file:/path}"`` (a file's content, one trailing newline stripped: a mounted Kubernetes Secret).

A reference is the whole value. It is resolved when the config is loaded; :func:`mask` hides the
resolved values again in what ``check-config`` prints.
"""
from __future__ import annotations

import os
import re

REFERENCE = re.compile(r"\$\{(env|file):([^}]+)\}")

# resolved value -> the reference it came from (for masking in check-config)
_resolved: dict[str, str] = {}


def resolve(value: str) -> str:
    """``value`` with a whole-value reference resolved; ValueError saying what is missing."""
    m = REFERENCE.fullmatch(value.strip())
    if m is None:
        return value
    kind, name = m.group(1), m.group(2).strip()
    if kind == "env":
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set (referenced as {value})")
        out = os.environ[name]
    else:
        try:
            with open(name, encoding="utf-8") as f:
                out = f.read()
        except OSError as e:
            raise ValueError(f"cannot read secret file {name}: {e.strerror or e} (referenced as {value})") from None
        if out.endswith("\n"):
            out = out[:-1]
            if out.endswith("\r"):
                out = out[:-1]
    if out:
        _resolved[out] = value
    return out


def mask(text: str) -> str:
    """``text`` with every resolved secret value replaced by ``*** (<reference>)``."""
    for secret in sorted(_resolved, key=len, reverse=True):
        text = text.replace(secret, f"*** ({_resolved[secret]})")
    return text
