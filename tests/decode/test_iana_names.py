"""The IANA information element table: its content, names in [[listeners.mapping]], its generator."""
from __future__ import annotations

import ctypes.util
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from flowpipe.config import ConfigError, DecoderConfig, MappingConfig, load, parse_field_id
from flowpipe.decode import iana
from flowpipe.decode.base import Source
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.flow import Flow
from tests.support import ROOT


def test_table_content() -> None:
    e = iana.ELEMENTS
    assert e[1] == ("octetDeltaCount", "unsigned64")
    assert e[8] == ("sourceIPv4Address", "ipv4Address")
    assert e[130] == ("exporterIPv4Address", "ipv4Address") and e[131] == ("exporterIPv6Address", "ipv6Address")
    assert e[225] == ("postNATSourceIPv4Address", "ipv4Address")
    assert e[82] == ("interfaceName", "string") and e[153] == ("flowEndMilliseconds", "dateTimeMilliseconds")
    assert e[291] == ("basicList", "basicList")
    assert len(e) >= 450 and max(e) < 1000 and 9999 not in e  # libfixbuf's Cisco additions left out
    names = [n for n, _ in e.values()]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", n) for n in names)  # IANA has VRFname, IPSecSPI


def test_lookups() -> None:
    assert iana.element_id("postNATSourceIPv4Address") == (0, 225)
    assert iana.element_id("postnatsourceipv4address") == (0, 225)
    assert iana.element_id("reverseOctetDeltaCount") == (29305, 1)
    assert iana.element_id("noSuchElement") is None and iana.element_id("reverse") is None
    assert iana.name_of(0, 61) == "flowDirection" and iana.name_of(29305, 2) == "reversePacketDeltaCount"
    assert iana.name_of(9, 61) is None and not iana.is_known(9, 61) and iana.is_known(29305, 61)
    assert "postNATSourceIPv4Address" in iana.nearest("postNatSourceIpv4Addr")


@pytest.mark.parametrize("given, element", [
    ("postNATSourceIPv4Address", (0, 225)), (225, (0, 225)), ("225", (0, 225)), ("29305:1", (29305, 1)),
    ("reverseOctetDeltaCount", (29305, 1)), (" flowDirection ", (0, 61)),
])
def test_mapping_field_by_name_or_id(given: int | str, element: tuple[int, int]) -> None:
    assert parse_field_id(given) == element
    assert MappingConfig(field=given, destination="x").element == element


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return str(p)


def test_unknown_name_is_a_config_error_with_the_nearest_names(tmp_path: Path) -> None:
    path = write(tmp_path, '[[listeners]]\nflow_type = "ipfix"\n[[listeners.mapping]]\n'
                           'field = "postNATSourceIPv4Adress"\ndestination = "nat_src"\ntype = "ip"\n')
    with pytest.raises(ConfigError) as e:
        load(path)
    assert e.value.key == "listeners[0].mapping[0].field"
    assert "postNATSourceIPv4Adress" in e.value.reason and "postNATSourceIPv4Address" in e.value.reason


def test_check_config_shows_the_name_as_given(tmp_path: Path) -> None:
    path = write(tmp_path, '[[listeners]]\nflow_type = "ipfix"\n[[listeners.mapping]]\n'
                           'field = "postNATSourceIPv4Address"\ndestination = "nat_src"\ntype = "ip"\n'
                           '[[listeners.mapping]]\nfield = 226\ndestination = "nat_dst"\ntype = "ip"\n')
    r = subprocess.run([sys.executable, "-m", "flowpipe.cli", "check-config", path], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert 'field = "postNATSourceIPv4Address"' in r.stdout and "field = 226" in r.stdout


def test_named_mapping_decodes() -> None:
    mapping = [MappingConfig(field="postNATSourceIPv4Address", destination="nat_src", type="ip"),
               MappingConfig(field="reverseOctetDeltaCount", destination="rev_bytes", type="integer")]
    fields = struct.pack("!HH", 1, 4) + struct.pack("!HH", 225, 4) + struct.pack("!HHI", 1 | 0x8000, 8, 29305)
    tset = struct.pack("!HHHH", 2, 8 + len(fields), 256, 3) + fields
    rec = struct.pack("!I4sQ", 10, bytes([198, 51, 100, 7]), 77)
    body = tset + struct.pack("!HH", 256, 4 + len(rec)) + rec
    data = struct.pack("!HHIII", 10, 16 + len(body), 1_700_000_000, 0, 1) + body
    (f,) = TemplateDecoder(DecoderConfig(), mapping).decode(data, Source("192.0.2.9")).flows
    assert Flow._make(f).extras == {"nat_src": "198.51.100.7", "rev_bytes": 77}


@pytest.mark.skipif(not ctypes.util.find_library("fixbuf"), reason="libfixbuf (Debian libfixbuf9) not installed")
def test_the_committed_table_is_what_the_generator_makes() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_iana_elements.py")], capture_output=True,
                       text=True, check=True)
    committed = (ROOT / "flowpipe" / "decode" / "iana_table.py").read_text()
    strip = re.compile(r"^SOURCE = .*$", re.M)  # names the library build the table was read from
    assert strip.sub("", r.stdout) == strip.sub("", committed), "run: python3 tools/gen_iana_elements.py > " \
        "flowpipe/decode/iana_table.py"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_names_agree_with_tshark() -> None:
    """tshark's own IPFIX element table, where it uses IANA's (camelCase) names, says the same."""
    out = subprocess.run(["tshark", "-G", "values"], capture_output=True, text=True, check=True).stdout
    theirs = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[1] == "cflow.template_ipfix_field_type" and re.fullmatch(r"[a-z]\w+", parts[3]):
            theirs[int(parts[2])] = parts[3]
    common = [i for i in theirs if i in iana.ELEMENTS]
    assert len(common) > 300
    differ = {i for i in common if theirs[i] != iana.ELEMENTS[i][0]}
    assert differ <= {213, 214, 215}, {i: (theirs[i], iana.ELEMENTS[i][0]) for i in differ}
