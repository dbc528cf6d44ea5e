"""Request bodies: JSON/msgpack arrays, gzip, and what the test backend makes of them."""
from __future__ import annotations

import gzip
import json

import msgpack
import orjson
import pytest

from flowpipe.forward.encode import content_headers, encode_body, json_lines
from tests.support.backend import decode_body, sample_flows


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_round_trip(fmt: str, compression: str) -> None:
    flows = sample_flows(0, 50)
    body = encode_body(flows, fmt, compression)
    headers = content_headers(fmt, compression)
    assert decode_body(body, headers) == flows
    assert headers["Content-Type"] == {"json": "application/json", "msgpack": "application/msgpack"}[fmt]
    assert ("Content-Encoding" in headers) == (compression == "gzip")


def test_plain_formats() -> None:
    flows = sample_flows(5, 2)
    assert json.loads(encode_body(flows, "json", "none")) == flows
    assert msgpack.unpackb(gzip.decompress(encode_body(flows, "msgpack", "gzip"))) == flows


def test_unencodable_value_raises() -> None:
    with pytest.raises(TypeError):
        encode_body([{"x": object()}], "json", "gzip")
    # NaN is not JSON: it goes out as null, so the body stays valid JSON for any intake
    assert json.loads(encode_body([{"x": float("nan")}], "json", "none")) == [{"x": None}]


def test_json_lines() -> None:
    flows = sample_flows(0, 3)
    text = json_lines(flows)
    assert text.endswith("\n")
    assert [json.loads(line) for line in text.splitlines()] == flows


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_json_text_flows_make_the_same_bodies_as_their_objects(compression: str) -> None:
    """Flows rendered straight to JSON text (what the service sends for JSON), objects (msgpack,
    or spooled by an older flowpipe) and a mix of both give the same body in either format."""
    flows = sample_flows(0, 40)
    texts = [orjson.dumps(f) for f in flows]
    mixed = [t if i % 3 else f for i, (f, t) in enumerate(zip(flows, texts, strict=True))]
    for fmt in ("json", "msgpack"):
        want = encode_body(flows, fmt, "none")
        assert encode_body(texts, fmt, "none") == want
        assert encode_body(mixed, fmt, "none") == want
        assert decode_body(encode_body(texts, fmt, compression), content_headers(fmt, compression)) == flows
    assert json_lines(texts) == json_lines(mixed) == json_lines(flows)
    assert json_lines([]) == ""
    with pytest.raises(TypeError):  # an unencodable object among texts is still refused
        encode_body([texts[0], {"x": object()}], "json", "none")
