"""test_dnsq.py - alkaid-dnsq run for real against the test DNS server (dnsserver.py)

Runs $ALKAID_BIN/alkaid-dnsq (default <repo>/build/bin) with --server pointing at the
dns_server fixture and checks what an administrator would see: the record lines, the
";;" summary, and the exit code (0 answers, 1 NXDOMAIN/NODATA, 2 temporary failure, 64
usage error). Covered: every TYPE, PTR from an address, CNAME chains, an answer too big
for UDP (TCP fallback), NXDOMAIN, NODATA, SERVFAIL, REFUSED, a server that never answers
(--timeout 1 --tries 1, bounded), a server that is not there, and --route: MX order,
equal preferences, null MX, implicit MX, a host without addresses, a temporary failure of
every host, an MX pointing at an IP address, domain literals; bad usage and bad names.
"""
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import free_port

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("ALKAID_BIN", REPO / "build" / "bin"))
TOOL = BIN_DIR / "alkaid-dnsq"


@pytest.fixture(autouse=True)
def _built():
    if not TOOL.exists():
        pytest.fail(f"{TOOL} is not built (set ALKAID_BIN or build into build/bin)")


def dnsq(srv, *args, server=None, timeout=10):
    """Runs the tool against srv: (exit code, stdout lines, stderr)."""
    server = server or "127.0.0.1:%d" % srv.port
    p = subprocess.run([str(TOOL), "--server", server, "--timeout", "2", *args],
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout.splitlines(), p.stderr


def records(lines):
    """The record lines split on runs of blanks: [[name, ttl, IN, TYPE, data...], ...]."""
    return [re.split(r"\s+", line, maxsplit=4) for line in lines if not line.startswith(";;")]


def summary(lines):
    assert lines and lines[-1].startswith(";;"), lines
    return lines[-1]


# ---- one type each ---------------------------------------------------------------------

def test_mx(dns_server):
    dns_server.add("example.test", "MX", (10, "mx1.example.test"), ttl=3600)
    dns_server.add("example.test", "MX", (20, "mx2.example.test"), ttl=3600)
    code, out, err = dnsq(dns_server, "MX", "example.test")
    assert code == 0, err
    assert out[:2] == ["example.test.  3600  IN  MX  10 mx1.example.test.",
                       "example.test.  3600  IN  MX  20 mx2.example.test."]
    s = summary(out)
    assert s.startswith(";; NOERROR, 2 records, ")
    assert s.endswith("server 127.0.0.1:%d" % dns_server.port)
    assert ("example.test", "MX") in dns_server.queries


def test_a_any_case(dns_server):
    dns_server.add("host.example.test", "A", "192.0.2.7", ttl=60)
    code, out, _ = dnsq(dns_server, "a", "HOST.example.test.")
    assert code == 0
    # the owner name is the server's (ours echoes the question's case)
    assert records(out) == [["HOST.example.test.", "60", "IN", "A", "192.0.2.7"]]
    assert summary(out).startswith(";; NOERROR, 1 record, ")


def test_aaaa(dns_server):
    dns_server.add("v6.example.test", "AAAA", "2001:db8::25")
    dns_server.add("v6.example.test", "AAAA", "::1")
    code, out, _ = dnsq(dns_server, "AAAA", "v6.example.test")
    assert code == 0
    assert [r[4] for r in records(out)] == ["2001:db8::25", "::1"]
    assert [r[3] for r in records(out)] == ["AAAA", "AAAA"]


def test_txt(dns_server):
    dns_server.add("example.test", "TXT", "v=spf1 -all")
    dns_server.add("example.test", "TXT", ["two ", "strings", ' with "quote"'])
    code, out, _ = dnsq(dns_server, "TXT", "example.test")
    assert code == 0
    assert out[0] == 'example.test.  300  IN  TXT  "v=spf1 -all"'
    assert out[1] == 'example.test.  300  IN  TXT  "two strings with \\034quote\\034"'


def test_txt_escapes_control_characters(dns_server):
    dns_server.add("esc.test", "TXT", b"bell\x07\x1b[31m\xff")
    code, out, _ = dnsq(dns_server, "TXT", "esc.test")
    assert code == 0
    assert out[0].endswith('"bell\\007\\027[31m\\255"')
    assert "\x1b" not in "".join(out)


def test_txt_too_big_for_udp(dns_server):
    dns_server.add("big.test", "TXT", ["x" * 250] * 4)
    code, out, _ = dnsq(dns_server, "TXT", "big.test")
    assert code == 0
    assert out[0].endswith('"' + "x" * 1000 + '"')
    # asked twice: over UDP (truncated), then over TCP
    assert dns_server.queries.count(("big.test", "TXT")) == 2


def test_ptr_from_address(dns_server):
    dns_server.add("7.2.0.192.in-addr.arpa", "PTR", "mail.example.test")
    code, out, _ = dnsq(dns_server, "PTR", "192.0.2.7")
    assert code == 0
    assert records(out) == [["7.2.0.192.in-addr.arpa.", "300", "IN", "PTR",
                             "mail.example.test."]]
    code, out, _ = dnsq(dns_server, "ptr", "7.2.0.192.in-addr.arpa")
    assert code == 0 and len(records(out)) == 1


def test_ptr_ipv6(dns_server):
    name = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    dns_server.add(name, "PTR", "v6.example.test")
    code, out, _ = dnsq(dns_server, "PTR", "2001:db8::1")
    assert code == 0
    assert records(out)[0][0] == name + "."
    assert records(out)[0][4] == "v6.example.test."


def test_ns(dns_server):
    dns_server.add("example.test", "NS", "ns1.example.test")
    dns_server.add("example.test", "NS", "ns2.example.test")
    code, out, _ = dnsq(dns_server, "NS", "example.test")
    assert code == 0
    assert sorted(r[4] for r in records(out)) == ["ns1.example.test.", "ns2.example.test."]


def test_cname_chain(dns_server):
    dns_server.add("www.example.test", "CNAME", "web.example.test")
    dns_server.add("web.example.test", "A", "192.0.2.80")
    code, out, _ = dnsq(dns_server, "A", "www.example.test")
    assert code == 0
    assert records(out) == [["www.example.test.", "300", "IN", "CNAME", "web.example.test."],
                            ["web.example.test.", "300", "IN", "A", "192.0.2.80"]]
    assert summary(out).startswith(";; NOERROR, 2 records")


# ---- negative answers and failures -------------------------------------------------------

def test_nxdomain(dns_server):
    code, out, _ = dnsq(dns_server, "MX", "nowhere.test")
    assert code == 1
    assert out == [out[-1]]
    assert summary(out).startswith(";; NXDOMAIN, 0 records, ")


def test_nodata(dns_server):
    dns_server.add("a-only.test", "A", "192.0.2.1")
    code, out, _ = dnsq(dns_server, "MX", "a-only.test")
    assert code == 1
    assert summary(out).startswith(";; NODATA, 0 records, ")


def test_servfail(dns_server):
    dns_server.servfail("broken.test")
    code, out, _ = dnsq(dns_server, "MX", "broken.test")
    assert code == 2
    assert summary(out).startswith(";; TEMPFAIL: SERVFAIL from 127.0.0.1:%d" % dns_server.port)


def test_refused(dns_server):
    dns_server.refused("closed.test")
    code, out, _ = dnsq(dns_server, "A", "closed.test")
    assert code == 2
    assert summary(out).startswith(";; TEMPFAIL: REFUSED from ")


def test_servfail_moves_to_the_next_server(dns_server):
    from dnsserver import DnsServer
    other = DnsServer(free_port()).start()
    try:
        dns_server.servfail("flaky.test")
        other.add("flaky.test", "A", "192.0.2.5")
        code, out, _ = dnsq(dns_server, "A", "flaky.test",
                            server="127.0.0.1:%d, 127.0.0.1:%d" % (dns_server.port, other.port))
        assert code == 0, out
        assert records(out)[0][4] == "192.0.2.5"
    finally:
        other.stop()


def test_timeout_is_bounded(dns_server):
    dns_server.timeout("slow.test")
    t0 = time.monotonic()
    p = subprocess.run([str(TOOL), "--server", "127.0.0.1:%d" % dns_server.port,
                        "--timeout", "1", "--tries", "1", "MX", "slow.test"],
                       capture_output=True, text=True, timeout=10)
    took = time.monotonic() - t0
    assert p.returncode == 2
    assert took < 3, took
    assert p.stdout.splitlines()[-1].startswith(";; TEMPFAIL: timeout")


def test_no_server_listening():
    port = free_port()
    t0 = time.monotonic()
    p = subprocess.run([str(TOOL), "--server", "127.0.0.1:%d" % port, "--timeout", "1",
                        "--tries", "1", "A", "example.test"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
    assert time.monotonic() - t0 < 3
    assert p.stdout.startswith(";; TEMPFAIL: ")


# ---- --route ------------------------------------------------------------------------------

def route_hosts(out):
    """[(pref, host, [addresses or the "(no address: X)" note])] from --route output."""
    hosts = []
    for line in out:
        if line.startswith(";;"):
            continue
        parts = re.split(r"\s{2,}", line)
        hosts.append((int(parts[0]), parts[1], parts[2:]))
    return hosts


def test_route_order_and_addresses(dns_server):
    dns_server.add("example.test", "MX", (20, "backup.example.test"))
    dns_server.add("example.test", "MX", (10, "mx1.example.test"))
    dns_server.add("mx1.example.test", "A", "127.0.0.2")
    dns_server.add("mx1.example.test", "AAAA", "::1")
    dns_server.add("backup.example.test", "A", "127.0.0.3")
    code, out, err = dnsq(dns_server, "--route", "MX", "example.test")
    assert code == 0, err
    assert out[0] == ";; route for example.test: MX hosts by preference"
    assert route_hosts(out) == [(10, "mx1.example.test.", ["::1", "127.0.0.2"]),
                                (20, "backup.example.test.", ["127.0.0.3"])]
    assert summary(out).startswith(";; OK, 2 hosts, ")
    # AAAA is asked before A
    q = dns_server.queries
    assert q.index(("mx1.example.test", "AAAA")) < q.index(("mx1.example.test", "A"))


def test_route_equal_preferences(dns_server):
    dns_server.add("two.test", "MX", (10, "a.two.test"))
    dns_server.add("two.test", "MX", (10, "b.two.test"))
    dns_server.add("two.test", "MX", (5, "first.two.test"))
    for h, ip in (("a", "127.0.0.11"), ("b", "127.0.0.12"), ("first", "127.0.0.10")):
        dns_server.add("%s.two.test" % h, "A", ip)
    orders = set()
    for _ in range(24):
        code, out, _ = dnsq(dns_server, "--route", "MX", "two.test")
        assert code == 0
        hosts = route_hosts(out)
        assert hosts[0][1] == "first.two.test."
        assert sorted(h[1] for h in hosts[1:]) == ["a.two.test.", "b.two.test."]
        orders.add(tuple(h[1] for h in hosts))
    # equal preferences are shuffled: 24 runs all in one order has odds 2^-23
    assert len(orders) == 2


def test_route_null_mx(dns_server):
    dns_server.add("nomail.test", "MX", (0, ""))
    code, out, _ = dnsq(dns_server, "MX", "nomail.test")
    assert code == 0
    assert out[0] == "nomail.test.  300  IN  MX  0 ."
    code, out, _ = dnsq(dns_server, "--route", "MX", "nomail.test")
    assert code == 1
    assert "null MX" in out[0]
    assert summary(out).startswith(";; NULL MX, 0 hosts")
    assert not [q for q in dns_server.queries if q[1] in ("A", "AAAA")]


def test_route_implicit_mx(dns_server):
    dns_server.add("plain.test", "A", "192.0.2.25")
    dns_server.add("plain.test", "AAAA", "2001:db8::25")
    code, out, _ = dnsq(dns_server, "--route", "MX", "plain.test")
    assert code == 0
    assert "implicit MX" in out[0]
    assert route_hosts(out) == [(0, "plain.test.", ["2001:db8::25", "192.0.2.25"])]


def test_route_neither_mx_nor_address(dns_server):
    dns_server.add("txt-only.test", "TXT", "hello")
    code, out, _ = dnsq(dns_server, "--route", "MX", "txt-only.test")
    assert code == 1
    assert summary(out).startswith(";; NODATA, 0 hosts")


def test_route_nxdomain(dns_server):
    code, out, _ = dnsq(dns_server, "--route", "MX", "nowhere.test")
    assert code == 1
    assert summary(out).startswith(";; NXDOMAIN")


def test_route_host_without_address_and_tempfail(dns_server):
    dns_server.add("mixed.test", "MX", (10, "gone.mixed.test"))
    dns_server.add("mixed.test", "MX", (20, "flaky.mixed.test"))
    dns_server.add("mixed.test", "MX", (30, "ok.mixed.test"))
    dns_server.servfail("flaky.mixed.test")
    dns_server.add("ok.mixed.test", "A", "127.0.0.30")
    code, out, _ = dnsq(dns_server, "--route", "MX", "mixed.test")
    assert code == 0
    assert route_hosts(out) == [(10, "gone.mixed.test.", ["(no address: NXDOMAIN)"]),
                                (20, "flaky.mixed.test.", ["(no address: TEMPFAIL)"]),
                                (30, "ok.mixed.test.", ["127.0.0.30"])]


def test_route_every_host_tempfails(dns_server):
    dns_server.add("down.test", "MX", (10, "a.down.test"))
    dns_server.add("down.test", "MX", (20, "b.down.test"))
    dns_server.servfail("a.down.test")
    dns_server.servfail("b.down.test")
    code, out, _ = dnsq(dns_server, "--route", "MX", "down.test")
    assert code == 2
    assert summary(out).startswith(";; TEMPFAIL: ")


def test_route_mx_tempfail(dns_server):
    dns_server.servfail("sf.test")
    code, out, _ = dnsq(dns_server, "--route", "MX", "sf.test")
    assert code == 2
    assert "SERVFAIL" in summary(out)


def test_route_mx_pointing_at_an_address(dns_server):
    dns_server.add("numeric.test", "MX", (10, "192.0.2.1"))
    code, out, _ = dnsq(dns_server, "--route", "MX", "numeric.test")
    assert code == 1
    assert route_hosts(out) == [(10, "192.0.2.1.", ["(no address: BADNAME)"])]
    assert ("192.0.2.1", "A") not in dns_server.queries


def test_route_domain_literal(dns_server):
    code, out, _ = dnsq(dns_server, "--route", "MX", "[192.0.2.9]")
    assert code == 0
    assert route_hosts(out) == [(0, "[192.0.2.9].", ["192.0.2.9"])]
    assert dns_server.queries == []


# ---- usage -------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    [], ["MX"], ["SOA", "example.test"], ["CNAME", "example.test"], ["MX", "a", "b"],
    ["--bogus", "MX", "example.test"], ["--timeout", "0", "MX", "example.test"],
    ["--timeout", "x", "MX", "example.test"], ["--tries", "0", "MX", "example.test"],
    ["--tries"], ["--server", "not-an-ip", "MX", "example.test"],
    ["--server", "127.0.0.1:99999", "MX", "example.test"], ["--route", "A", "example.test"],
])
def test_usage_errors(args):
    p = subprocess.run([str(TOOL), *args], capture_output=True, text=True, timeout=10)
    assert p.returncode == 64, (args, p.stdout, p.stderr)
    assert p.stderr.startswith("alkaid-dnsq: ")
    assert "usage:" in p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize("name", ["bad..name", "sp ace.test", "a" * 64 + ".test",
                                  "192.0.2.1", "x" * 300])
def test_invalid_names(dns_server, name):
    code, out, err = dnsq(dns_server, "A", name)
    assert code == 64
    assert err.startswith("alkaid-dnsq: invalid name: ")
    assert dns_server.queries == []


def test_help():
    p = subprocess.run([str(TOOL), "--help"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0
    assert p.stdout.startswith("usage: alkaid-dnsq")
    assert "--route" in p.stdout
