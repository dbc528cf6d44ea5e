"""flowpipe.cache.bounded_put: the one bound on memo dicts (emptied when full, then the new entry)."""
from __future__ import annotations

import ast
from pathlib import Path

from flowpipe.cache import bounded_put

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


def _hand_rolled(tree: ast.AST) -> list[int]:
    """Lines of ``if len(x) >= ...: x.clear()``."""
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)):
            continue
        left = node.test.left
        if not (isinstance(left, ast.Call) and isinstance(left.func, ast.Name) and left.func.id == "len"
                and left.args and isinstance(node.test.ops[0], ast.GtE)):
            continue
        sized = ast.unparse(left.args[0])
        clears = [s for s in node.body if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)
                  and ast.unparse(s.value.func) == sized + ".clear"]
        if clears:
            out.append(node.lineno)
    return out


# Files excused from the rule (none now: every memo goes through flowpipe.cache).
NOT_YET: set[str] = set()


def test_no_hand_rolled_bounded_caches() -> None:
    found = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel in NOT_YET or rel == "cache.py":
            continue
        lines = _hand_rolled(ast.parse(path.read_text()))
        if lines:
            found[rel] = lines
    assert not found, f"use flowpipe.cache.bounded_put (or room): {found}"


def test_the_exceptions_still_have_what_they_are_excused_for() -> None:
    left = {rel for rel in NOT_YET if _hand_rolled(ast.parse((ROOT / rel).read_text()))}
    assert left == NOT_YET, f"no hand-rolled cache left in {NOT_YET - left}: drop them from NOT_YET"
