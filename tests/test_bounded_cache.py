"""flowpipe.cache.bounded_put: the one bound on memo dicts (emptied when full, then the new entry), and
a check that no module of flowpipe bounds a dict by hand instead."""
from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from flowpipe.cache import bounded_put
from flowpipe.logs import MAX_EVENTS, RateLimited

ROOT = Path(__file__).resolve().parent.parent / "flowpipe"


def test_a_full_cache_is_emptied_before_the_new_entry() -> None:
    cache: dict[int, str] = {}
    for i in range(3):
        assert bounded_put(cache, 3, i, str(i)) == str(i)
    assert cache == {0: "0", 1: "1", 2: "2"}
    assert bounded_put(cache, 3, 9, "9") == "9"
    assert cache == {9: "9"}
    bounded_put(cache, 3, 9, "nine")  # a key already there still counts as a put
    assert cache == {9: "nine"}


def test_rate_limited_logging_keeps_windows_for_a_bounded_number_of_events() -> None:
    limited = RateLimited()
    for i in range(MAX_EVENTS + 5):
        limited(logging.DEBUG, f"event_{i}")
    assert 0 < len(limited._windows) <= MAX_EVENTS
    assert "event_0" not in limited._windows and f"event_{MAX_EVENTS + 4}" in limited._windows


def _measured(test: ast.expr) -> str | None:
    """``x`` when ``test`` says ``len(x)`` is over a bound: ``len(x) > n``, ``len(x) >= n``, or the same
    written the other way round (``n < len(x)``, ``n <= len(x)``)."""
    if not isinstance(test, ast.Compare):
        return None

    def length_of(e: ast.expr) -> str | None:
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "len" and len(e.args) == 1:
            return ast.unparse(e.args[0])
        return None

    op, right = test.ops[0], test.comparators[0]
    if isinstance(op, (ast.Gt, ast.GtE)):
        return length_of(test.left)
    if isinstance(op, (ast.Lt, ast.LtE)):
        return length_of(right)
    return None


def _empties(node: ast.AST, sized: str) -> bool:
    """Whether ``node`` clears ``sized``, replaces it with something new or deletes from it (cutting a
    sequence to length, ``del x[n:]`` or ``x = x[n:]``, is not emptying a cache)."""
    if isinstance(node, ast.Call):
        return ast.unparse(node.func) == sized + ".clear"
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        cut = isinstance(node.value, ast.Subscript) and ast.unparse(node.value.value) == sized
        return not cut and any(ast.unparse(t) == sized for t in targets)
    if isinstance(node, ast.Delete):
        return any(ast.unparse(t) == sized or (isinstance(t, ast.Subscript) and not isinstance(t.slice, ast.Slice)
                                               and ast.unparse(t.value) == sized) for t in node.targets)
    return False


def _hand_rolled(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) of each ``if`` on ``len(what)`` over a bound whose body then empties or replaces
    ``what``: ``what.clear()``, ``what = ...`` or ``del what[key]``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (sized := _measured(node.test)) is not None \
                and any(_empties(n, sized) for stmt in node.body for n in ast.walk(stmt)):
            out.append((node.lineno, sized))
    return out


@pytest.mark.parametrize("code", [
    "if len(c) >= n:\n    c.clear()\n",
    "if len(self._windows) > 1000:\n    self._windows = {name: w}\n",  # what flowpipe/logs.py had
    "if len(c) > n:\n    del c[next(iter(c))]\n",
    "if n <= len(self.c):\n    log()\n    self.c: dict = {}\n",
    "if 1000 < len(c):\n    if c:\n        c.clear()\n",
])
def test_the_detector_sees_each_form(code: str) -> None:
    assert [line for line, _ in _hand_rolled(ast.parse(code))] == [1]


@pytest.mark.parametrize("code", [
    "if len(c) < n:\n    c[k] = v\n",               # room left: an ordinary put
    "if len(c) >= n:\n    other.clear()\n",          # another dict
    "if len(c) >= n:\n    raise ValueError(n)\n",    # refused, not emptied
    "if len(c) == n:\n    c.clear()\n",             # not a bound
    "if len(out) >= n:\n    send(out[:n])\n    out = out[n:]\n",  # a batch cut to size
    "if len(rows) > n:\n    del rows[n:]\n",
])
def test_the_detector_leaves_the_rest(code: str) -> None:
    assert _hand_rolled(ast.parse(code)) == []


# (file, what it bounds) -> why it is not flowpipe.cache's bound
EXCUSED: dict[tuple[str, str], str] = {
    ("decode/template_decoder.py", "self._compiled"):
        "compiled record decoders evicted oldest first, each unhooked from its template's layout as it goes "
        "(bounded_put would drop them all without unhooking any)",
}


def _found() -> dict[tuple[str, str], int]:
    found = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel != "cache.py":
            found.update({(rel, sized): line for line, sized in _hand_rolled(ast.parse(path.read_text()))})
    return found


def test_no_hand_rolled_bounded_caches() -> None:
    found = {f"{rel}:{line} ({sized})" for (rel, sized), line in _found().items() if (rel, sized) not in EXCUSED}
    assert not found, f"use flowpipe.cache.bounded_put (or room): {sorted(found)}"


def test_the_exceptions_still_have_what_they_are_excused_for() -> None:
    stale = set(EXCUSED) - set(_found())
    assert not stale, f"no hand-rolled bound left for {stale}: drop them from EXCUSED"
