"""IMAP with more than one client at a time: sessions on the same mailbox see each
other's changes at the moments RFC 3501 allows (5.2, 7.4.1), deliveries wake IDLE
(RFC 2177), many clients append and store at once, the per-user session cap and the
autologout hold, and a kill -9 of alkaid-pop3imapd in the middle of STORE / EXPUNGE /
APPEND leaves flags and UIDs consistent.
"""
import re
import threading
import time

from conftest import USERS, ImapClient, Literal, crlf, imap_quote
from conftest import imap_tls as _imap_tls

ALICE = "alice@example.test"
BOB = "bob@example.test"

# Logins from one address are counted while they are in progress (docs/security.md:
# more than AuthFailLockAfter=10 at the same moment lock the address out), so the
# threads below log in a few at a time; what runs after the login is fully parallel.
_login_slots = threading.Semaphore(4)


def imap_tls(alkaid, login=True, user=ALICE, timeout=15):
    if not login:
        return _imap_tls(alkaid, login=False, timeout=timeout)
    with _login_slots:
        return _imap_tls(alkaid, user=user, timeout=timeout)


def msg(subject, body="body\r\n", msgid=None):
    return crlf("From: Sender <sender@example.org>\nTo: alice@example.test\n"
                "Subject: %s\nMessage-ID: <%s>\n\n" % (subject, msgid or subject.replace(" ", "-") +
                                                        "@example.org")) + crlf(body)


def append(c, mailbox, data, flags=None):
    parts = ["APPEND", imap_quote(mailbox)]
    if flags is not None:
        parts.append("(%s)" % flags)
    parts.append(Literal(data))
    r = c.command(*parts)
    assert r.status == "OK", r
    m = re.match(r"APPENDUID (\d+) (\d+)$", r.code or "")
    assert m, r
    return int(m.group(2))


def deliver(alkaid, subject, rcpt=ALICE):
    s = alkaid.smtp()
    try:
        s.sendmail("x@example.org", [rcpt], msg(subject))
    finally:
        s.quit()


def flags_of(value):
    return {f for f in value if f.lower() != "\\recent"}


def uid_flags(c):
    """{uid: set of flags} of the selected mailbox."""
    c.ok("NOOP")
    f = c.fetch("1:*", "(UID FLAGS)")
    return {int(v["UID"]): flags_of(v["FLAGS"]) for v in f.values()}


def exists_after(r):
    n = r.numbers("EXISTS")
    return n[-1] if n else None


def seq_uids(c):
    f = c.fetch("1:*", "UID")
    return [int(f[i]["UID"]) for i in sorted(f)]


# =====================================================================================
# sessions see each other's changes
# =====================================================================================

def test_flag_changes_reach_other_sessions(alkaid):
    a = imap_tls(alkaid)
    for i in range(3):
        append(a, "INBOX", msg("m%d" % i))
    a.select("INBOX")
    b = imap_tls(alkaid)
    b.select("INBOX")
    a.ok("STORE", "2", "+FLAGS", "(\\Flagged $Important)")
    r = b.ok("NOOP")
    f = r.fetches()
    assert 2 in f and flags_of(f[2]["FLAGS"]) == {"\\Flagged", "$Important"}, r
    # the session that made the change is not told twice
    r = a.ok("NOOP")
    assert r.fetches() == {}, r
    # B sees the change also at the end of other commands (FETCH/STORE/SEARCH included)
    a.ok("STORE", "3", "+FLAGS.SILENT", "(\\Seen)")
    r = b.ok("SEARCH", "ALL")
    f = r.fetches()
    assert 3 in f and "\\Seen" in f[3]["FLAGS"], r
    a.logout()
    b.logout()


def test_expunge_held_back_during_fetch_store_search(alkaid):
    """RFC 3501 7.4.1: no EXPUNGE response while FETCH, STORE or SEARCH runs (without
    UID); it comes at the next command that allows it, and sequence numbers stay stable
    until then."""
    a = imap_tls(alkaid)
    uids = [append(a, "INBOX", msg("m%d" % i)) for i in range(5)]
    a.select("INBOX")
    b = imap_tls(alkaid)
    b.select("INBOX")
    a.ok("STORE", "2,4", "+FLAGS.SILENT", "(\\Deleted)")
    a.ok("EXPUNGE")
    for cmd in (("FETCH", "1:*", "(UID)"), ("STORE", "5", "+FLAGS", "(\\Seen)"),
                ("SEARCH", "ALL")):
        r = b.command(*cmd)
        assert r.status in ("OK", "NO"), (cmd, r)
        assert r.numbers("EXPUNGE") == [], ("EXPUNGE sent during %s" % cmd[0], r)
    # sequence numbers still those of B's view: message 5 is still uids[4]
    r = b.command("FETCH", "5", "(UID)")
    assert r.status in ("OK", "NO"), r
    if r.status == "OK":
        assert int(r.fetches()[5]["UID"]) == uids[4]
    r = b.ok("NOOP")
    exp = r.numbers("EXPUNGE")
    view = list(uids)
    for n in exp:
        view.pop(n - 1)
    assert view == [uids[0], uids[2], uids[4]], (exp, r)
    assert seq_uids(b) == view
    # the STORE B made on message 5 before the EXPUNGE took effect on the right message
    assert "\\Seen" in uid_flags(b)[uids[4]]
    a.logout()
    b.logout()


def test_uid_commands_may_report_expunges(alkaid):
    a = imap_tls(alkaid)
    uids = [append(a, "INBOX", msg("m%d" % i)) for i in range(3)]
    a.select("INBOX")
    b = imap_tls(alkaid)
    b.select("INBOX")
    a.ok("STORE", "1", "+FLAGS.SILENT", "(\\Deleted)")
    a.ok("EXPUNGE")
    r = b.ok("UID", "FETCH", "1:*", "(FLAGS)")
    # allowed (RFC 3501 7.4.1 excepts UID commands); if sent, numbers must be right
    if r.numbers("EXPUNGE"):
        assert r.numbers("EXPUNGE") == [1]
        assert {int(v["UID"]) for v in r.fetches().values()} == set(uids[1:])
    assert seq_uids(b) == uids[1:]
    a.logout()
    b.logout()


def test_new_mail_exists_recent_between_sessions(alkaid):
    a = imap_tls(alkaid)
    a.select("INBOX")
    b = imap_tls(alkaid)
    b.select("INBOX")
    deliver(alkaid, "first")
    ra = a.ok("NOOP")
    assert exists_after(ra) == 1, ra
    rb = b.ok("NOOP")
    assert exists_after(rb) == 1, rb
    # \Recent goes to exactly one session
    recents = [ra.numbers("RECENT")[-1], rb.numbers("RECENT")[-1]]
    assert sorted(recents) == [0, 1], (ra, rb)
    # APPEND by another session shows as EXISTS too
    c = imap_tls(alkaid)
    append(c, "INBOX", msg("second"))
    assert exists_after(a.ok("NOOP")) == 2
    # EXISTS never goes backwards without EXPUNGE
    assert exists_after(b.ok("CHECK")) == 2
    c.logout()
    a.logout()
    b.logout()


def test_expunge_by_pop3_seen_by_imap(alkaid):
    for i in range(3):
        deliver(alkaid, "p%d" % i)
    a = imap_tls(alkaid)
    a.select("INBOX")
    p = alkaid.pop3s()
    p.user(ALICE)
    p.pass_(USERS[ALICE])
    p.dele(1)
    p.dele(3)
    p.quit()
    r = a.ok("NOOP")
    exp = r.numbers("EXPUNGE")
    view = [1, 2, 3]
    for n in exp:
        view.pop(n - 1)
    assert view == [2], r
    a.logout()


# =====================================================================================
# IDLE
# =====================================================================================

def test_idle_wakes_on_each_delivery_within_a_second(alkaid):
    c = imap_tls(alkaid)
    c.select("INBOX")
    tag = c.idle_start()
    c.sock.settimeout(5)
    for i in range(1, 4):
        time.sleep(0.4 * i)          # land at different points of the poll cycle
        deliver(alkaid, "wake %d" % i)
        t0 = time.monotonic()
        line = c.read_response()
        while not line.endswith(b"EXISTS"):
            line = c.read_response()
        elapsed = time.monotonic() - t0
        assert line == b"* %d EXISTS" % i, line
        assert elapsed < 1.0, "delivery %d seen by IDLE after %.2f s" % (i, elapsed)
    c.idle_done(tag)
    c.sock.settimeout(15)
    c.logout()


def test_idle_sees_flags_expunge_and_append_from_other_sessions(alkaid):
    a = imap_tls(alkaid)
    uids = [append(a, "INBOX", msg("m%d" % i)) for i in range(3)]
    a.select("INBOX")
    i = imap_tls(alkaid)
    i.select("INBOX")
    tag = i.idle_start()
    i.sock.settimeout(5)

    def expect(pred, what):
        t0 = time.monotonic()
        while True:
            line = i.read_response()
            if pred(line):
                return time.monotonic() - t0
            assert time.monotonic() - t0 < 3, "no %s, last %r" % (what, line)

    a.ok("STORE", "2", "+FLAGS", "(\\Flagged)")
    t = expect(lambda l: l.startswith(b"* 2 FETCH") and b"\\Flagged" in l, "FETCH")
    assert t < 1.0, t
    a.ok("STORE", "1", "+FLAGS.SILENT", "(\\Deleted)")
    a.ok("EXPUNGE")
    t = expect(lambda l: l == b"* 1 EXPUNGE", "EXPUNGE")
    assert t < 1.0, t
    append(a, "INBOX", msg("appended"))
    t = expect(lambda l: l == b"* 3 EXISTS", "EXISTS")
    assert t < 1.0, t
    i.idle_done(tag)
    i.sock.settimeout(15)
    assert seq_uids(i)[:2] == uids[1:]
    i.logout()
    a.logout()


# =====================================================================================
# many clients at once
# =====================================================================================

def _run_threads(fn, n):
    errors, results = [], [None] * n

    def wrap(k):
        try:
            results[k] = fn(k)
        except BaseException as e:  # noqa: B902 - reported below
            errors.append("%d: %r" % (k, e))

    ts = [threading.Thread(target=wrap, args=(k,)) for k in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors
    return results


def test_concurrent_appends_get_unique_ascending_uids(alkaid):
    clients, per = 10, 15

    def work(k):
        c = imap_tls(alkaid)
        got = []
        for j in range(per):
            got.append((append(c, "INBOX", msg("c%d-%d" % (k, j))), "c%d-%d" % (k, j)))
        c.logout()
        return got

    watcher = imap_tls(alkaid)
    watcher.select("INBOX")
    results = _run_threads(work, clients)
    allu = [u for r in results for u, _ in r]
    assert len(allu) == len(set(allu)) == clients * per, "duplicate UIDs"
    for r in results:                     # each client's UIDs ascend
        us = [u for u, _ in r]
        assert us == sorted(us)
    r = watcher.ok("NOOP")
    assert exists_after(r) == clients * per, r
    f = watcher.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    got = {int(v["UID"]): [x for k, x in v.items() if k.startswith("BODY")][0]
           for v in f.values()}
    assert sorted(got) == sorted(allu)
    seq = [int(f[i]["UID"]) for i in sorted(f)]
    assert seq == sorted(seq), "UIDs must ascend with sequence numbers"
    for r_ in results:
        for u, subj in r_:
            assert got[u].strip() == ("Subject: " + subj).encode(), (u, got[u])
    watcher.logout()


def test_concurrent_store_fetch_search_on_one_mailbox(alkaid):
    c = imap_tls(alkaid)
    n = 40
    uids = [append(c, "INBOX", msg("m%d" % i)) for i in range(n)]
    c.logout()
    workers = 8
    combos = ["(\\Seen)", "(\\Flagged $A)", "(\\Answered \\Seen $B)", "()"]

    def work(k):
        d = imap_tls(alkaid)
        d.select("INBOX")
        mine = uids[k::workers]
        last = {}
        for rnd in range(6):
            for u in mine:
                fl = combos[(rnd + u) % len(combos)]
                d.ok("UID", "STORE", str(u), "FLAGS.SILENT", fl)
                last[u] = fl
            d.ok("FETCH", "1:*", "(FLAGS)")
            d.ok("SEARCH", "OR SEEN FLAGGED")
        d.logout()
        return last

    results = _run_threads(work, workers)
    expect = {}
    for r in results:
        expect.update(r)
    c = imap_tls(alkaid)
    c.select("INBOX")
    got = uid_flags(c)
    for u, fl in expect.items():
        want = set(fl.strip("()").split()) if fl != "()" else set()
        assert got[u] == want, (u, got[u], want)
    c.logout()


def test_many_parallel_sessions(alkaid):
    for i in range(5):
        deliver(alkaid, "parallel %d" % i)

    def work(k):
        user = ALICE if k < 15 else BOB
        c = imap_tls(alkaid, user=user)
        c.select("INBOX")
        for _ in range(5):
            c.fetch("1:*", "(FLAGS ENVELOPE BODYSTRUCTURE)") if user == ALICE else c.ok("NOOP")
            c.ok("SEARCH", "ALL")
            c.ok("LIST", '""', '"*"')
        c.logout()
        return True

    assert all(_run_threads(work, 30))


# =====================================================================================
# per-user cap, autologout
# =====================================================================================

def test_max_sessions_per_user(alkaid_root):
    alkaid_root.set("IMAP", "MaxSessionsPerUser", "3")
    alkaid_root.start("smtpd")
    alkaid_root.start("pop3imapd")
    cs = [imap_tls(alkaid_root) for _ in range(3)]
    extra = imap_tls(alkaid_root, login=False)
    r = extra.command("LOGIN", imap_quote(ALICE), imap_quote(USERS[ALICE]))
    assert r.status == "NO", "the 4th session of a user must be refused: %r" % r
    assert extra.command("SELECT", "INBOX").status == "BAD"     # not logged in
    # other users are not affected
    b = imap_tls(alkaid_root, user=BOB)
    b.logout()
    # a session that ends frees its place
    cs.pop().logout()
    time.sleep(0.3)
    r = extra.command("LOGIN", imap_quote(ALICE), imap_quote(USERS[ALICE]))
    assert r.status == "OK", r
    # a killed connection (no LOGOUT) frees it too
    cs.pop().close()
    ok = False
    for _ in range(30):
        d = imap_tls(alkaid_root, login=False)
        r = d.command("LOGIN", imap_quote(ALICE), imap_quote(USERS[ALICE]))
        d.close()
        if r.status == "OK":
            ok = True
            break
        time.sleep(0.2)
    assert ok, "the place of a dropped connection was not freed"
    for c in cs + [extra]:
        c.close()


def test_autologout(alkaid_root):
    alkaid_root.set("IMAP", "Timeout", "10")
    alkaid_root.start("smtpd")
    alkaid_root.start("pop3imapd")
    logged = imap_tls(alkaid_root)
    logged.select("INBOX")
    anon = ImapClient(alkaid_root.imap_port)
    # a client trickling a command does not keep the session alive forever
    slow = imap_tls(alkaid_root)
    t0 = time.monotonic()
    stop = threading.Event()

    def trickle():
        try:
            slow.send("s1 SEARCH")
            while not stop.is_set():
                slow.send(" ALL")
                time.sleep(1)
        except OSError:
            pass

    t = threading.Thread(target=trickle)
    t.start()
    # a client that keeps issuing commands stays
    busy = imap_tls(alkaid_root)
    for _ in range(6):
        time.sleep(2)
        busy.ok("NOOP")
    try:
        for c, what in ((logged, "logged-in"), (anon, "not logged in"), (slow, "trickling")):
            assert c.closed(timeout=max(1, 16 - (time.monotonic() - t0))), \
                "%s session not logged out after %.1f s" % (what, time.monotonic() - t0)
            assert b"* BYE" in bytes(c.buf), (what, bytes(c.buf)[-200:])
        elapsed = time.monotonic() - t0
        assert elapsed >= 9, "autologout after %.1f s, before the 10 s set" % elapsed
    finally:
        stop.set()
        t.join()
    busy.ok("NOOP")
    busy.logout()


# =====================================================================================
# kill -9 in the middle of changes
# =====================================================================================

def _restart(alkaid):
    alkaid.kill("pop3imapd")
    alkaid.start("pop3imapd")


def _uidvalidity(r):
    for u in r.untagged:
        m = re.match(rb"\* OK \[UIDVALIDITY (\d+)\]", u)
        if m:
            return int(m.group(1))
    raise AssertionError(r)


def _consistency(alkaid, c, mailbox="INBOX"):
    """Checks a selected mailbox against its directory; returns {uid: (flags, subject)}."""
    c.ok("NOOP")
    f = c.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    uids = [int(f[i]["UID"]) for i in sorted(f)]
    assert uids == sorted(uids) and len(set(uids)) == len(uids), uids
    d = alkaid.mailbox_dir(ALICE)
    if mailbox != "INBOX":
        d = d / mailbox
    files = [p for p in d.iterdir() if p.name.endswith(".eml") and not p.name.startswith(".")]
    assert len(files) == len(uids), "IMAP shows %d messages, the folder has %d files" % (
        len(uids), len(files))
    out = {}
    for v in f.values():
        subj = [x for k, x in v.items() if k.startswith("BODY")][0].strip().decode()
        out[int(v["UID"])] = (flags_of(v["FLAGS"]), subj)
    subjects = [s for _, s in out.values()]
    assert len(subjects) == len(set(subjects)), "a message appears twice"
    return out


def test_kill9_during_append(alkaid):
    c = imap_tls(alkaid)
    validity = _uidvalidity(c.select("INBOX"))
    c.ok("UNSELECT")
    acked = {}
    stop = threading.Event()

    def work():
        k = 0
        try:
            while not stop.is_set():
                uid = append(c, "INBOX", msg("a%d" % k, "x" * (k * 97 % 5000) + "\r\n"),
                             flags="\\Seen" if k % 2 else None)
                acked[uid] = "a%d" % k
                k += 1
        except (EOFError, OSError, AssertionError):
            pass

    t = threading.Thread(target=work)
    t.start()
    time.sleep(1.5)
    _restart(alkaid)
    stop.set()
    t.join(30)
    assert len(acked) > 5, "too few appends before the kill: %d" % len(acked)
    d = imap_tls(alkaid)
    assert _uidvalidity(d.select("INBOX")) == validity, "UIDVALIDITY changed after kill -9"
    state = _consistency(alkaid, d)
    for uid, subj in acked.items():
        assert uid in state, "acknowledged APPEND (UID %d) lost" % uid
        assert state[uid][1] == "Subject: " + subj, (uid, state[uid], subj)
        k = int(subj[1:])
        assert state[uid][0] == ({"\\Seen"} if k % 2 else set()), (uid, state[uid])
    # a new message gets a UID above every UID ever shown
    new = append(d, "INBOX", msg("after restart"))
    assert new > max(state), (new, max(state))
    d.logout()


def test_kill9_during_store(alkaid):
    c = imap_tls(alkaid)
    n = 30
    uids = [append(c, "INBOX", msg("s%d" % i)) for i in range(n)]
    c.select("INBOX")
    combos = ["(\\Seen)", "(\\Flagged $Blue)", "(\\Answered \\Seen)", "($Green)", "()"]
    last_acked, in_flight = {}, {}
    stop = threading.Event()

    def work():
        k = 0
        try:
            while not stop.is_set():
                u = uids[k % n]
                fl = combos[(k // n) % len(combos)]
                in_flight[u] = fl
                c.ok("UID", "STORE", str(u), "FLAGS.SILENT", fl)
                last_acked[u] = fl
                k += 1
        except (EOFError, OSError, AssertionError):
            pass

    t = threading.Thread(target=work)
    t.start()
    time.sleep(1.5)
    _restart(alkaid)
    stop.set()
    t.join(30)
    assert last_acked, "no STORE finished before the kill"
    d = imap_tls(alkaid)
    d.select("INBOX")
    state = _consistency(alkaid, d)
    assert sorted(state) == uids, "UIDs changed after kill -9"

    def as_set(fl):
        return set(fl.strip("()").split())

    for u in uids:
        got = state[u][0]
        allowed = [as_set(last_acked.get(u, "()"))]
        if u in in_flight:
            allowed.append(as_set(in_flight[u]))
        assert got in allowed, (u, got, allowed)
    d.logout()


def test_kill9_during_expunge(alkaid):
    c = imap_tls(alkaid)
    n = 60
    uids = [append(c, "INBOX", msg("e%d" % i)) for i in range(n)]
    c.select("INBOX")
    expunged, in_flight = [], []
    stop = threading.Event()

    def work():
        try:
            for u in uids[::2]:
                if stop.is_set():
                    break
                in_flight[:] = [u]
                c.ok("UID", "STORE", str(u), "+FLAGS.SILENT", "(\\Deleted)")
                c.ok("UID", "EXPUNGE", str(u))
                expunged.append(u)
                c.ok("STORE", "1:*", "+FLAGS.SILENT", "($Touched)")
        except (EOFError, OSError, AssertionError):
            pass

    t = threading.Thread(target=work)
    t.start()
    time.sleep(1.0)
    _restart(alkaid)
    stop.set()
    t.join(30)
    assert expunged, "no EXPUNGE finished before the kill"
    d = imap_tls(alkaid)
    d.select("INBOX")
    state = _consistency(alkaid, d)
    for u in expunged:
        assert u not in state, "acknowledged EXPUNGE of UID %d undone" % u
    for u in uids[1::2]:
        assert u in state, "UID %d (never deleted) lost" % u
        assert state[u][1] == "Subject: e%d" % uids.index(u)
    for u in state:
        assert u in uids, "unknown UID %d appeared" % u
        if u not in in_flight and u not in expunged:
            assert "\\Deleted" not in state[u][0] or u in uids[::2], (u, state[u])
    # expunged UIDs never come back, also after another restart and a rebuild
    d.logout()
    alkaid.stop("pop3imapd")
    alkaid.start("pop3imapd")
    e = imap_tls(alkaid)
    e.select("INBOX")
    state2 = _consistency(alkaid, e)
    assert sorted(state2) == sorted(state)
    new = append(e, "INBOX", msg("new after expunges"))
    assert new > max(uids)
    e.logout()


def test_kill9_with_two_sessions_and_pop3_agreeing(alkaid):
    for i in range(6):
        deliver(alkaid, "k%d" % i)
    a = imap_tls(alkaid)
    a.select("INBOX")
    a.ok("STORE", "1:3", "+FLAGS.SILENT", "(\\Seen)")
    a.ok("STORE", "2", "+FLAGS.SILENT", "(\\Deleted)")
    a.ok("EXPUNGE")
    _restart(alkaid)
    b = imap_tls(alkaid)
    b.select("INBOX")
    state = _consistency(alkaid, b)
    assert len(state) == 5
    seen = [u for u, (fl, _) in state.items() if "\\Seen" in fl]
    assert len(seen) == 2
    p = alkaid.pop3s()
    p.user(ALICE)
    p.pass_(USERS[ALICE])
    assert p.stat()[0] == 5
    p.quit()
    b.logout()


# =====================================================================================
# a lost or damaged index
# =====================================================================================

def _fill(alkaid, n=5):
    c = imap_tls(alkaid)
    uids = [append(c, "INBOX", msg("x%d" % i), flags="\\Flagged" if i == 1 else None)
            for i in range(n)]
    validity = _uidvalidity(c.select("INBOX"))
    c.logout()
    return uids, validity


def test_missing_index_rebuilt_with_greater_uidvalidity(alkaid):
    """RFC 3501 2.3.1.1: when UIDs do not persist, the new UIDVALIDITY MUST be greater
    than the one used before."""
    uids, validity = _fill(alkaid)
    c = imap_tls(alkaid)
    c.select("INBOX")
    c.ok("STORE", "1:2", "+FLAGS.SILENT", "(\\Deleted)")
    c.ok("EXPUNGE")
    c.ok("UNSELECT")
    before = {u: s for u, (_, s) in _consistency_of(alkaid, c).items()}
    c.logout()
    alkaid.stop("pop3imapd")
    (alkaid.mailbox_dir(ALICE) / ".alkaid-index").unlink()
    alkaid.start("pop3imapd")
    c = imap_tls(alkaid)
    v2 = _uidvalidity(c.select("INBOX"))
    state = _consistency(alkaid, c)
    after = {u: s for u, (_, s) in state.items()}
    assert sorted(after.values()) == sorted("Subject: x%d" % i for i in range(2, 5))
    changed = {u: (before.get(u), after[u]) for u in after if before.get(u) != after[u]}
    assert v2 > validity, ("index rebuilt with UIDVALIDITY %d, was %d; UIDs that now name "
                           "other messages: %r" % (v2, validity, changed))
    c.logout()


def _consistency_of(alkaid, c, mailbox="INBOX"):
    c.select(mailbox)
    out = _consistency(alkaid, c, mailbox)
    c.ok("UNSELECT")
    return out


def test_damaged_index_keeps_what_it_can(alkaid):
    uids, validity = _fill(alkaid)
    alkaid.stop("pop3imapd")
    idx = alkaid.mailbox_dir(ALICE) / ".alkaid-index"
    lines = idx.read_bytes().split(b"\n")
    # garbage in the middle, and a torn last line as a crash would leave it
    lines.insert(3, b"+ this is \x00 not an index line")
    data = b"\n".join(lines)
    data += b"= %d 9" % uids[2]
    idx.write_bytes(data)
    alkaid.start("pop3imapd")
    c = imap_tls(alkaid)
    assert _uidvalidity(c.select("INBOX")) == validity
    state = _consistency(alkaid, c)
    assert sorted(state) == uids, (sorted(state), uids)
    assert state[uids[1]][0] == {"\\Flagged"}
    new = append(c, "INBOX", msg("after damage"))
    assert new > max(uids)
    c.logout()


def test_index_newer_than_files_after_external_delete(alkaid):
    """Files removed behind the server's back (POP3, an administrator) become expunges;
    their UIDs are not reused."""
    uids, validity = _fill(alkaid)
    alkaid.stop("pop3imapd")
    files = sorted(p for p in alkaid.mailbox_dir(ALICE).iterdir() if p.name.endswith(".eml"))
    files[-1].unlink()
    files[0].unlink()
    alkaid.start("pop3imapd")
    c = imap_tls(alkaid)
    assert _uidvalidity(c.select("INBOX")) == validity
    state = _consistency(alkaid, c)
    assert sorted(state) == uids[1:-1]
    new = append(c, "INBOX", msg("next"))
    assert new > max(uids), "UID %d reused" % new
    c.logout()
