"""test_admin_adversarial.py - the admin port (docs/admin-protocol.md) against a hostile client

Probes from a review: the wire (huge lines, many arguments, control bytes, non-UTF-8,
partial lines and TLS records), LOGIN brute force across parallel connections, a
non-administrator, CONFIG SET values that try to add lines or sections, settings that
would let the remote administrator run programs or move the server's trees, hostile
names in USER / ALIAS / FORWARD / CATCHALL / QUEUE / LOG / RESTART, USER DEL PURGE and
symbolic links, JSON escaping of hostile bytes in the log, large LOG replies, and
passwords in the control log. Tests that fail are open findings.
"""
import json
import os
import socket
import ssl
import threading
import time

import pytest

from conftest import client_tls_context
from test_admin_port import ADMIN, ADMIN_PW, ADMIN_PW_WIRE, Admin, add_admin, connect  # noqa


@pytest.fixture
def adm(alkaid_root):
    add_admin(alkaid_root)
    alkaid_root.start("controld")
    return alkaid_root


def big_reply(c, timeout=60):
    """One reply line read without the quadratic search of Admin.line()."""
    c.sock.settimeout(timeout)
    parts = [c.buf]
    c.buf = b""
    while not parts[-1].endswith(b"\n"):
        chunk = c.sock.recv(1 << 20)
        assert chunk, "closed"
        parts.append(chunk)
    ln = b"".join(parts)
    assert ln.startswith(b"+OK ") and ln.endswith(b"\r\n") and ln.count(b"\n") == 1
    return json.loads(ln[4:-2].decode("utf-8"))


def logged_in(a):
    c = connect(a)
    c.login()
    return c


def today_log(a, channel):
    d = a.root / "log" / channel
    d.mkdir(parents=True, exist_ok=True)
    return d / (time.strftime("%Y%m%d") + ".log")


# ---- the wire ------------------------------------------------------------------------

def test_wire_garbage_before_login(adm):
    c = connect(adm)
    for bad in [b"CAPA\rX", b"CA\x00PA", b"\xff\xfe", b"LOGIN \xc0\x80 x", b'"', b"\\",
                b"LOGIN a@b \"\xed\xa0\x80\"", b" ", b"", b"\x7f", b"\x1b[2J"]:
        c.send(bad + b"\r\n")
        r = c.reply()
        assert r[:2] in (("ERR", "SYNTAX"), ("ERR", "DENIED"), ("ERR", "AUTH")), (bad, r)
    # 1100 words is the limit, one more is refused without harm
    assert c.cmd("CAPA" + " x" * 1100)[:2] == ("ERR", "SYNTAX")
    assert c.cmd("CAPA" + ' ""' * 1099)[0] == "OK"
    assert c.ok("CAPA")["protocol"] == 1
    # a line of 8192 quoted empty strings and spaces
    assert c.cmd(("X" + ' ""' * 2730)[:8192])[:2] == ("ERR", "SYNTAX")
    c.send(b"A" * 100000 + b"\r\n")
    assert c.reply()[:2] == ("ERR", "LINE")
    assert c.closed()


def test_partial_lines_and_records(adm):
    """A line sent one octet per TLS record, and a line split in the middle of a TLS
    record (raw socket writes of the record's octets), are read as one line."""
    c = connect(adm)
    for ch in b"CAPA\r\n":
        c.sock.sendall(bytes([ch]))
        time.sleep(0.01)
    assert c.reply()[0] == "OK"
    # split one TLS record across two TCP writes through a memory BIO
    raw = socket.create_connection(("127.0.0.1", adm.admin_port), timeout=10)
    ctx = client_tls_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out)
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            data = out.read()
            if data:
                raw.sendall(data)
            inc.write(raw.recv(65536))
    raw.sendall(out.read())
    obj.write(b"CAPA\r\n")
    rec = out.read()
    raw.sendall(rec[:3])
    time.sleep(0.3)
    raw.sendall(rec[3:])
    got = b""
    deadline = time.time() + 10
    while b"\n" not in got.split(b"\n", 1)[-1] or got.count(b"\n") < 2:
        assert time.time() < deadline, got
        inc.write(raw.recv(65536))
        try:
            got += obj.read(65536)
        except ssl.SSLWantReadError:
            pass
    assert got.split(b"\r\n")[1].startswith(b"+OK {\"protocol\":1"), got
    raw.close()


def test_many_connections_then_admin_gets_in(adm):
    """Connections beyond the per-address limit are turned away with one line, and the
    port still serves once they go."""
    conns = [connect(adm) for _ in range(8)]
    raw = socket.create_connection(("127.0.0.1", adm.admin_port), timeout=10)
    try:
        s = client_tls_context().wrap_socket(raw)
        data = s.recv(4096)
        assert b"UNAVAILABLE" in data or data == b"", data
    except (ssl.SSLError, ConnectionResetError, OSError):
        pass
    for c in conns:
        c.close()
    time.sleep(0.5)
    c = logged_in(adm)
    assert c.ok("DOMAIN LIST")


# ---- LOGIN ---------------------------------------------------------------------------

def test_parallel_brute_force_is_bounded(alkaid_root):
    """Eight connections guessing at once get no more verdicts than AuthFailLockAfter
    (plus the attempts already in flight); then even the right password is LOCKED."""
    a = alkaid_root
    a.set("Security", "AuthFailDelayAfter", "5")
    a.set("Security", "AuthFailLockAfter", "5")
    a.set("Security", "AuthFailLockTime", "120")
    add_admin(a)
    a.start("controld")
    verdicts = []
    lock = threading.Lock()

    def guesser(n):
        try:
            c = connect(a)
            for i in range(20):
                r = c.cmd("LOGIN %s guess%d-%d" % (ADMIN, n, i))
                with lock:
                    verdicts.append(r[1])
                if r[1] == "LOCKED":
                    break
            c.close()
        except (EOFError, OSError, ssl.SSLError):
            pass

    ts = [threading.Thread(target=guesser, args=(n,)) for n in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    auth = verdicts.count("AUTH")
    assert auth <= 5 + 8, verdicts
    assert "LOCKED" in verdicts
    c = connect(a)
    assert c.cmd("LOGIN %s %s" % (ADMIN, ADMIN_PW_WIRE))[:2] == ("ERR", "LOCKED")


def test_non_admin_gets_nothing(adm):
    c = connect(adm)
    assert c.cmd("LOGIN alice@example.test alice-secret-1")[:2] == ("ERR", "DENIED")
    for cmd in ["CONFIG GET", "CONFIG SET SMTP Banner x", "DOMAIN LIST", "DOMAIN ADD x.test",
                "USER LIST", "USER ADD eve@example.test pw ADMIN", "USER SET alice@example.test ADMIN",
                "USER PASSWD bob@example.test x", "USER DEL bob@example.test PURGE",
                "ALIAS ADD a@example.test alice", "FORWARD bob@example.test alice",
                "CATCHALL example.test alice", "QUEUE LIST", "STATUS", "RELOAD",
                "RESTART smtpd", "LOG control", "LOG smtp 5000"]:
        assert c.cmd(cmd)[:2] == ("ERR", "DENIED"), cmd
    r = adm.user("show", "alice@example.test", check=False)
    assert "admin" not in r.stdout.lower() or "no" in r.stdout.lower()


def test_demoted_or_deleted_admin_loses_the_session(adm):
    """An administrator whose flag is taken away (or whose account is deleted) must not
    keep running commands in a session opened before."""
    adm.user("add", "boss@example.test", "--password", "boss-pw-1", "--admin")
    victim = connect(adm)
    assert victim.ok("LOGIN boss@example.test boss-pw-1") == {"user": "boss@example.test"}
    c = logged_in(adm)
    assert c.ok("USER SET boss@example.test NOADMIN") == {"done": True}
    r = victim.cmd("USER ADD evil@example.test pw ADMIN")
    assert r[:2] == ("ERR", "DENIED"), r
    assert "evil@example.test" not in adm.user("list").stdout


# ---- CONFIG SET ----------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "[Control]", "a=b", "a;b", "a#b", "'q'", '"q"', "x\\", "\\", "a'b\"c", " lead", "trail ",
    "AdminPort=1", "tab\there", "x ; AdminPort = 1", "é ü 日本",
])
def test_config_set_values_round_trip(adm, value):
    c = logged_in(adm)
    before = adm.ini.read_text()
    wire = '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')
    r = c.cmd("CONFIG SET SMTP SmarthostUser %s" % wire)
    if r[0] == "ERR":
        assert r[1] == "INVALID", r
        assert adm.ini.read_text() == before
        return
    got = c.ok("CONFIG GET SMTP SmarthostUser")["settings"][0]["value"]
    assert got == value
    # nothing else changed: the admin port is still where it was
    assert c.ok("CONFIG GET Control AdminPort")["settings"][0]["value"] == str(adm.admin_port)
    sections = [ln for ln in adm.ini.read_text().splitlines() if ln.strip().startswith("[")]
    assert len(sections) == len(set(s.lower() for s in sections))


def test_config_set_unknown_section_and_key(adm):
    c = logged_in(adm)
    before = adm.ini.read_text()
    for cmd in ["CONFIG SET Nope Banner x", "CONFIG SET SMTP Nope x",
                'CONFIG SET "SMTP]\\"" Banner x', 'CONFIG SET "SMTP" "Banner=x" y',
                'CONFIG SET "[SMTP]" Banner x', "CONFIG SET ../SMTP Banner x"]:
        assert c.cmd(cmd)[:2] == ("ERR", "NOTFOUND"), cmd
    assert adm.ini.read_text() == before


def test_config_set_cannot_make_controld_run_programs(adm, tmp_path):
    """"Arguments are only ever data: nothing a client sends reaches a shell." A remote
    administrator must not be able to choose a program the server then runs:
    [Control] WatchdogRestart (run by RESTART) and [DialUp] Connect / Disconnect."""
    c = logged_in(adm)
    marker = tmp_path / "pwned"
    r = c.cmd('CONFIG SET Control WatchdogRestart "/usr/bin/touch %s"' % marker)
    if r[0] == "OK":
        c.cmd("RESTART smtpd")
        time.sleep(1)
    assert not marker.exists(), "RESTART ran a program chosen over the admin port"
    assert r[0] == "ERR", r
    for key in ["Connect", "Disconnect"]:
        r = c.cmd('CONFIG SET DialUp %s "/bin/sh -c id"' % key)
        assert r[0] == "ERR", (key, r)


def test_config_set_cross_check(adm):
    """A value config_check_value() accepts alone but the whole file then refuses
    ([Security] AuthFailLockAfter below AuthFailDelayAfter) must be refused, not written:
    services would no longer start."""
    c = logged_in(adm)
    before = adm.ini.read_text()
    r = c.cmd("CONFIG SET Security AuthFailLockAfter 1")
    assert r[:2] == ("ERR", "INVALID"), r
    assert "AuthFailLockAfter" in r[2]
    assert adm.ini.read_text() == before


def test_config_set_path_keys_are_local_only(adm):
    """Path settings cannot be changed over the network: a remote administrator must not
    move the server's logs into /etc, the account database anywhere, or point the TLS key
    at /etc/shadow. CONFIG GET still shows them."""
    c = logged_in(adm)
    before = adm.ini.read_text()
    for key, value in [("Directories Log", "/tmp/elsewhere-log"),
                       ("Directories Temp", "temp2"),
                       ("Store Database", "/tmp/elsewhere.db"),
                       ("TLS Key", "/etc/shadow"),
                       ("TLS Certificate", "config/tls/cert.pem"),
                       ("Queue CAFile", "/etc/passwd")]:
        r = c.cmd("CONFIG SET %s %s" % (key, value))
        assert r[:2] == ("ERR", "DENIED"), (key, r)
        assert "[%s] %s" % tuple(key.split()) in r[2] and "alkaid.ini" in r[2], r
    assert adm.ini.read_text() == before
    got = c.ok("CONFIG GET Directories Log")["settings"]
    assert got == [{"section": "Directories", "key": "Log", "value": "log", "default": "log"}]


def test_config_get_hides_passwords(adm):
    c = logged_in(adm)
    got = c.ok("CONFIG GET SMTP SmarthostPassword")["settings"]
    assert got[0]["value"] == "", got
    c.ok('CONFIG SET SMTP SmarthostPassword "hunter2-secret"')
    assert "hunter2-secret" in adm.ini.read_text()
    for q in ["CONFIG GET SMTP SmarthostPassword", "CONFIG GET SMTP", "CONFIG GET"]:
        got = c.ok(q)
        assert "hunter2-secret" not in json.dumps(got), q
        pw = [x for x in got["settings"] if x["key"] == "SmarthostPassword"]
        assert pw and pw[0]["value"] == "****", got


def test_forward_bare_off_or_keep_among_targets(adm):
    """OFF and KEEP are words of the command, never addresses: FORWARD a OFF KEEP and
    FORWARD a KEEP b are syntax errors, not forwards to OFF@domain or KEEP@domain."""
    c = logged_in(adm)
    c.ok('USER ADD fwd@example.test "fwd-pw-1234"')
    for args in ["OFF KEEP", "x@example.org OFF", "KEEP x@example.org", "off keep",
                 "x@example.org KEEP KEEP"]:
        r = c.cmd("FORWARD fwd@example.test %s" % args)
        assert r[:2] == ("ERR", "SYNTAX"), (args, r)
    c.ok("FORWARD fwd@example.test x@example.org KEEP")
    c.ok("FORWARD fwd@example.test OFF")


def test_prelogin_idle_timeout_is_short(adm):
    """An unauthenticated connection is not held for the logged-in idle time."""
    c = Admin(adm.admin_port, timeout=60)
    assert c.greeting[0] == "OK"
    start = time.time()
    r = c.reply()
    took = time.time() - start
    assert r[:2] == ("ERR", "TIMEOUT"), r
    assert 25 <= took <= 40, took


def test_config_set_secret_not_logged(adm):
    c = logged_in(adm)
    secret = "Sm4rt-S3cret;#"
    c.ok('CONFIG SET SMTP SmarthostPassword "%s"' % secret)
    c.ok('CONFIG SET smtp smarthostpassword "%s2"' % secret)
    c.ok('USER ADD carol@example.test "carol-pw-XYZ"')
    c.ok('USER PASSWD carol@example.test "carol-pw-ABC"')
    c.cmd('LOGIN x "never-logged-pw"')
    c2 = connect(adm)
    c2.cmd('LOGIN %s "wrong-pw-QQQ"' % ADMIN)
    log = adm.log("control") + adm.log("error")
    for s in [secret, "carol-pw-XYZ", "carol-pw-ABC", "never-logged-pw", "wrong-pw-QQQ", ADMIN_PW]:
        assert s not in log, s
    for p in adm.root.glob("*.stderr"):
        assert secret not in p.read_text(errors="replace")


# ---- hostile names -------------------------------------------------------------------

def test_hostile_addresses(adm):
    c = logged_in(adm)
    for addr in ["../x@example.test", "x@../example.test", "x/y@example.test",
                 "x@example.test/..", "..@example.test", "x@example..test", "x@.",
                 "a" * 65 + "@example.test", "x@" + "a" * 300 + ".test", "x@*",
                 '"a b"@example.test', "x@example.test@example.test", "@example.test",
                 "x@", "x@%2e%2e"]:
        wire = '"%s"' % addr.replace('"', '\\"')
        for cmd in ["USER ADD %s pw", "ALIAS ADD %s alice", "USER SHOW %s", "USER DEL %s PURGE",
                    "FORWARD %s alice"]:
            r = c.cmd(cmd % wire)
            assert r[0] == "ERR" and r[1] in ("INVALID", "NOTFOUND", "SYNTAX", "EXISTS"), (cmd, addr, r)
    # targets are checked loosely (store.c norm_target: "../x@y" or "|x@y" is stored, and
    # only ever used as an address); these are refused
    for t in ["a b", "x@y@z", "<x@y>", "a,b@c", 'x"@y', "x@" + "y" * 400]:
        wire = '"%s"' % t.replace('"', '\\"')
        r = c.cmd("ALIAS ADD list@example.test %s" % wire)
        assert r[:2] == ("ERR", "INVALID"), (t, r)
        r = c.cmd("FORWARD bob@example.test %s" % wire)
        assert r[:2] == ("ERR", "INVALID"), (t, r)
        r = c.cmd("CATCHALL example.test %s" % wire)
        assert r[:2] == ("ERR", "INVALID"), (t, r)
    for d in ["..", "../x", "a/b", "/etc", "*", "x.*", "-x.test", "a" * 64 + ".test"]:
        r = c.cmd('DOMAIN ADD "%s"' % d)
        assert r[:2] == ("ERR", "INVALID"), (d, r)
    assert sorted(os.listdir(adm.root / "mail")) == sorted(
        set(os.listdir(adm.root / "mail")) & {"example.test", "FORWARD"})


def test_forward_keep_alone_is_not_a_target(adm):
    """FORWARD address KEEP (no target) is a syntax error, not a forward to KEEP@domain."""
    c = logged_in(adm)
    r = c.cmd("FORWARD bob@example.test KEEP")
    assert r[:2] == ("ERR", "SYNTAX"), r
    show = c.ok("USER SHOW bob@example.test")
    assert show["targets"] == [], show


def test_alias_targets_limit(adm):
    c = logged_in(adm)
    targets = " ".join("t%d" % i for i in range(1000))
    c.ok("ALIAS ADD big@example.test " + targets)
    r = c.cmd("ALIAS ADD big@example.test " + " ".join("u%d" % i for i in range(1000)))
    assert r[:2] == ("ERR", "INVALID"), r
    r = c.cmd("ALIAS ADD big@example.test u1")
    assert r[:2] == ("ERR", "INVALID"), r
    assert c.cmd("ALIAS ADD big@example.test " + "x " * 1001)[:2] in (("ERR", "SYNTAX"),)
    assert len(c.ok("USER SHOW big@example.test")["targets"]) <= 1000


def test_purge_does_not_follow_symlinks(adm, tmp_path):
    c = logged_in(adm)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    c.ok("USER ADD carol@example.test pw")
    mbox = adm.mailbox_dir("carol@example.test")
    assert mbox.is_dir()
    os.symlink(outside, mbox / "evil-dir")
    os.symlink(outside / "keep.txt", mbox / "evil-file")
    assert c.ok("USER DEL carol@example.test PURGE") == {"done": True}
    assert not mbox.exists()
    assert (outside / "keep.txt").read_text() == "precious"
    # the mailbox itself a symbolic link
    c.ok("USER ADD dave@example.test pw")
    mbox = adm.mailbox_dir("dave@example.test")
    os.rename(mbox, tmp_path / "real-dave")
    os.symlink(outside, mbox)
    assert c.ok("USER DEL dave@example.test PURGE") == {"done": True}
    assert (outside / "keep.txt").read_text() == "precious"
    assert not os.path.lexists(mbox)


def test_purge_with_other_case_address(adm):
    c = logged_in(adm)
    c.ok("USER ADD Carol@Example.Test pw")
    mbox = adm.mailbox_dir("carol@example.test")
    assert mbox.is_dir()
    c.ok("USER DEL CAROL@EXAMPLE.TEST PURGE")
    assert not mbox.exists()


def test_queue_ids_and_log_channels_and_restart_names(adm):
    c = logged_in(adm)
    for qid in ["../x", "..", "/etc/passwd", "a/b", "....", "x" * 5000, "ALL/..", "%2e%2e"]:
        for sub in ["SHOW", "DELETE", "HOLD", "RELEASE", "RETRY"]:
            r = c.cmd('QUEUE %s "%s"' % (sub, qid))
            assert r[0] == "ERR" and r[1] in ("INVALID", "NOTFOUND", "UNAVAILABLE"), (sub, qid, r)
    for ch in ["../control", "/etc/passwd", "control/../../config", "CONTROL/.", ".", "",
               "control\t", "smtp.."]:
        r = c.cmd('LOG "%s"' % ch)
        assert r[:2] == ("ERR", "SYNTAX"), (ch, r)
    for n in ["0", "5001", "-1", "+5", "1e3", "0x10", "99999999999999999999", " 5", "5 "]:
        r = c.cmd('LOG control "%s"' % n)
        assert r[:2] == ("ERR", "SYNTAX"), (n, r)
    assert c.ok("LOG control 5000")["channel"] == "control"
    for name in ["../smtpd", "smtpd;id", "/bin/sh", "SMTPD", "smtpd ", "controld", "watchdog", ""]:
        r = c.cmd('RESTART "%s"' % name)
        assert r[0] == "ERR" and r[1] in ("SYNTAX", "INVALID"), (name, r)
        r = c.cmd('RELOAD "%s"' % name)
        assert r[0] == "ERR" or name == "controld", (name, r)


# ---- JSON and large replies ----------------------------------------------------------

def test_log_json_with_hostile_bytes(adm):
    c = logged_in(adm)
    c.cmd('LOGIN "tab\there"@x y')  # already logged in: SYNTAX, but nothing breaks
    path = today_log(adm, "smtp")
    junk = bytes(range(256)).replace(b"\n", b"") + b"\xed\xa0\x80\xc0\x80\xf4\x90\x80\x80\xf8\x88"
    with open(path, "ab") as f:
        f.write(b"line one \x00 \x1b \x7f \"q\" \\ \xe2\x80\xa8\n")
        f.write(junk + b"\n")
        f.write(b"last without newline \xff")
    c.send("LOG smtp 3\r\n")
    ln = c.sock.recv(1)
    while not ln.endswith(b"\n"):
        ln += c.sock.recv(65536)
    assert ln.startswith(b"+OK ") and ln.endswith(b"\r\n")
    text = ln[4:-2].decode("utf-8")   # strict: the reply is valid UTF-8
    assert all(ord(ch) >= 0x20 for ch in text)
    val = json.loads(text)
    assert len(val["lines"]) == 3
    assert val["lines"][0].startswith("line one \x00 \x1b \x7f \"q\" \\ \u2028")
    assert val["lines"][2] == "last without newline \xff"
    for s in val["lines"]:
        s.encode("utf-8")  # no lone surrogates


def test_log_5000_long_lines(adm):
    """LOG 5000 of lines made of control characters (each escaped as six octets)."""
    c = logged_in(adm)
    path = today_log(adm, "pop3")
    line = b"\x01" * 1200 + b"\n"
    with open(path, "wb") as f:
        f.write(line * 6000)
    t0 = time.time()
    c.send("LOG pop3 5000\r\n")
    val = big_reply(c)
    assert len(val["lines"]) == 5000 and val["lines"][0] == "\x01" * 1200
    assert time.time() - t0 < 30
    st = c.ok("STATUS")
    assert "services" in st
    # several at once do not take the service down
    others = [logged_in(adm) for _ in range(6)]
    for o in others:
        o.send("LOG pop3 5000\r\n")
    for o in others:
        assert len(big_reply(o)["lines"]) == 5000
    assert c.ok("DOMAIN LIST")


def test_log_line_longer_than_the_tail_window(adm):
    """A log file whose last lines are longer than LOG_MAX_ACTION + 200 still answers
    (fewer lines), and a huge file is not read whole."""
    c = logged_in(adm)
    path = today_log(adm, "imap")
    with open(path, "wb") as f:
        f.write(b"x" * (50 << 20) + b"\n" + b"y" * 10 + b"\n")
    r = c.cmd("LOG imap 1")
    assert r[0] == "OK" and r[1]["lines"] == ["y" * 10], r[:1]
    r = c.cmd("LOG imap 2")
    assert r[0] == "OK" and r[1]["lines"][-1] == "y" * 10
    assert sum(len(s) for s in r[1]["lines"]) < (3 << 20)
