"""The helpers the config sections are declared with (flowpipe.sections)."""
from __future__ import annotations

import attrs
import pytest

from flowpipe.sections import http_url, key, positive


@attrs.define(slots=True, kw_only=True)
class _Section:
    """A section of three keys."""

    count: int = key(3, positive, "how many")
    names: list[str] = key(["a"], None, "which")
    url: str = key("", http_url, "where")


def test_a_key_has_its_default_its_check_and_its_doc() -> None:
    count, names, url = attrs.fields(_Section)
    assert (count.default, count.metadata["doc"], count.kw_only) == (3, "how many", True)
    assert names.metadata["doc"] == "which" and url.metadata["doc"] == "where"
    with pytest.raises(ValueError, match="must be greater than 0"):
        _Section(count=0)


def test_a_list_default_is_a_copy_for_each_instance() -> None:
    one, two = _Section(), _Section()
    one.names.append("b")
    assert two.names == ["a"] and _Section().names == ["a"]


@pytest.mark.parametrize("url", ["", "http://x", "https://x/y"])
def test_http_url_takes_an_empty_or_http_url(url: str) -> None:
    assert _Section(url=url).url == url


def test_http_url_names_the_key_and_the_value() -> None:
    with pytest.raises(ValueError, match=r"^url 'ftp://x' must start with http:// or https://$"):
        _Section(url="ftp://x")
