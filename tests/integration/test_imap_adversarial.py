"""IMAP as a hostile or picky client sees it: bugs found by probing the running server.

Each test here failed before the fix it comes with (see the docstrings)."""
import time

from conftest import crlf, drop_message, imap_tls, proc_memory_kb

ALICE = "alice@example.test"


def _msg(i):
    return crlf("From: a@example.test\nTo: alice@example.test\nSubject: m%d\n\nbody %d\n" % (i, i))


def test_overlapping_sequence_ranges_cost_no_more_than_one(alkaid):
    """FETCH/STORE with 9999 copies of "1:*" expanded every range into a list before
    removing duplicates: ranges x messages numbers (120 MB and seconds of CPU for 3000
    messages, per command). The ranges are now merged first."""
    count = 2000
    for i in range(count):
        drop_message(alkaid, ALICE, _msg(i))
    c = imap_tls(alkaid, timeout=60)
    c.select()
    proc = alkaid.procs["pop3imapd"]
    before = proc_memory_kb(proc)
    many = ",".join(["1:*"] * 9999)
    t = time.time()
    r = c.command("FETCH", many, "(UID)")
    assert r.status == "OK"
    assert sorted(r.fetches()) == list(range(1, count + 1))
    assert c.command("STORE", many, "+FLAGS.SILENT", r"(\Flagged)").status == "OK"
    r = c.command("UID", "FETCH", ",".join(["%d:%d" % (i, i + 5) for i in range(1, 5000)]),
                  "(UID)")
    assert r.status == "OK" and len(r.fetches()) == count
    elapsed = time.time() - t
    grown = proc_memory_kb(proc) - before
    assert grown < 30000, "pop3imapd grew by %d kB" % grown
    assert elapsed < 3, elapsed
    # overlapping, reversed and '*' ranges still mean the right messages, once each
    r = c.ok("FETCH", "5,3:1,2:4,*,1999:*,7:6", "(UID)")
    assert sorted(r.fetches()) == [1, 2, 3, 4, 5, 6, 7, 1999, 2000]
    assert len(r.untagged) == 9
    r = c.ok("UID", "FETCH", "10:8,*:1998,4000000000", "(UID)")
    assert sorted(r.fetches()) == [8, 9, 10, 1998, 1999, 2000]
    assert c.command("FETCH", "1,2001", "(UID)").status == "BAD"
    assert c.command("FETCH", "2001:1", "(UID)").status == "BAD"
    c.logout()

