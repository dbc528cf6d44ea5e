"""Retry policy: classification, Retry-After parsing, exponential backoff with jitter."""
from __future__ import annotations

import email.utils
import random

import pytest

from flowpipe.forward.retry import Backoff, Outcome, classify, parse_retry_after


@pytest.mark.parametrize("status,outcome", [
    (200, Outcome.SENT), (202, Outcome.SENT), (204, Outcome.SENT),
    (400, Outcome.PERMANENT), (401, Outcome.PERMANENT), (403, Outcome.PERMANENT), (404, Outcome.PERMANENT),
    (413, Outcome.PERMANENT), (408, Outcome.RETRY), (429, Outcome.RETRY),
    (500, Outcome.RETRY), (502, Outcome.RETRY), (503, Outcome.RETRY), (504, Outcome.RETRY),
    (301, Outcome.RETRY), (100, Outcome.RETRY),
])
def test_classify(status: int, outcome: Outcome) -> None:
    assert classify(status) is outcome


def test_retry_after_seconds() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    value = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(value, now=now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-3", "1.5", "Wed, 99 Foo 2023 00:00:00 GMT"])
def test_retry_after_unusable(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_backoff_grows_to_max_with_jitter() -> None:
    b = Backoff(initial=1.0, maximum=8.0, retry_after_max=60.0, rng=random.Random(1))
    for failures, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (500, 8.0)]:
        delays = [b.delay(failures) for _ in range(200)]
        assert all(base / 2 <= d <= base for d in delays), (failures, min(delays), max(delays))
        assert max(delays) - min(delays) > base / 4  # jittered, not a constant


def test_backoff_honours_retry_after_up_to_cap() -> None:
    b = Backoff(initial=0.1, maximum=1.0, retry_after_max=20.0, rng=random.Random(2))
    assert b.delay(1, retry_after=5.0) == 5.0
    assert b.delay(1, retry_after=500.0) == 20.0
    assert b.delay(9, retry_after=0.0) <= 1.0
