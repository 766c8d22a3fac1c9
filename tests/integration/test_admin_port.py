"""test_admin_port.py - alkaid-controld's remote administration port (docs/admin-protocol.md)

A real controld (and smtpd where a command reaches it) on a fresh root; the client is
Python's ssl module on a plain socket, speaking the line protocol by hand. Covered: the
greeting, CAPA and QUIT; LOGIN (right, wrong password, unknown user, a non-administrator,
the lock-out after [Security] AuthFailLockAfter failures); every command of the table:
CONFIG GET/SET (a Banner that shows in the running smtpd's greeting after the reload,
an invalid value refused with the file untouched, comments kept), DOMAIN and USER round
trips seen by alkaid-user, ALIAS, FORWARD, CATCHALL, QUEUE on a held message, STATUS,
RELOAD, RESTART, LOG; the wire rules (commands before login, a line too long, bad
quoting, control characters, empty quoted arguments, UTF-8 in JSON); and the control log
naming the administrator without any password.
"""
import json
import os
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import BIN, client_tls_context

ADMIN = "admin@example.test"
ADMIN_PW = "adm1n pass\"word"  # a space and a quote: must be sent quoted
ADMIN_PW_WIRE = '"adm1n pass\\"word"'


class Admin:
    def __init__(self, port, timeout=20):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = client_tls_context().wrap_socket(raw)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("closed; buffered %r" % self.buf)
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\n", 1)
        assert ln.endswith(b"\r"), ln
        return ln[:-1].decode()

    def reply(self):
        """("OK", json value) or ("ERR", code, text)."""
        ln = self.line()
        if ln.startswith("+OK "):
            return ("OK", json.loads(ln[4:]))
        assert ln.startswith("-ERR "), ln
        parts = ln[5:].split(" ", 1)
        return ("ERR", parts[0], parts[1] if len(parts) > 1 else "")

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def ok(self, text):
        r = self.cmd(text)
        assert r[0] == "OK", (text, r)
        return r[1]

    def login(self, user=ADMIN, pw=ADMIN_PW_WIRE):
        return self.ok("LOGIN %s %s" % (user, pw))

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, OSError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def add_admin(a):
    a.user("add", ADMIN, "--password", ADMIN_PW, "--admin")


@pytest.fixture
def adm(alkaid_root):
    """controld running on a prepared root with an administrator."""
    add_admin(alkaid_root)
    alkaid_root.start("controld")
    return alkaid_root


def connect(a):
    return Admin(a.admin_port)


def control_log(a):
    return a.log("control")


# ---- greeting, CAPA, LOGIN ----------------------------------------------------------

def test_greeting_capa_and_commands_before_login(adm):
    c = connect(adm)
    assert c.greeting == ("OK", {"server": "alkaid", "protocol": 1,
                                 "hostname": "mail.example.test"})
    capa = c.ok("CAPA")
    assert capa["protocol"] == 1
    for word in ["LOGIN", "QUIT", "CONFIG", "DOMAIN", "USER", "ALIAS", "FORWARD", "CATCHALL",
                 "QUEUE", "STATUS", "RELOAD", "RESTART", "LOG"]:
        assert word in capa["commands"]
    for cmd in ["DOMAIN LIST", "STATUS", "CONFIG GET", "LOG control"]:
        r = c.cmd(cmd)
        assert r[:2] == ("ERR", "DENIED"), r
    assert c.ok("quit") == {"bye": True}
    assert c.closed()


def test_login_ok_wrong_unknown_and_not_admin(adm):
    c = connect(adm)
    assert c.cmd("LOGIN %s wrong" % ADMIN)[:2] == ("ERR", "AUTH")
    assert c.cmd("LOGIN nobody@example.test x")[:2] == ("ERR", "AUTH")
    # alice's password is right, but alice is no administrator
    r = c.cmd("LOGIN alice@example.test alice-secret-1")
    assert r[:2] == ("ERR", "DENIED"), r
    assert c.cmd("LOGIN %s" % ADMIN)[:2] == ("ERR", "SYNTAX")
    assert c.login() == {"user": ADMIN}
    assert c.cmd("LOGIN %s %s" % (ADMIN, ADMIN_PW_WIRE))[:2] == ("ERR", "SYNTAX")
    assert "example.test" in c.ok("DOMAIN LIST")["domains"]
    c.close()
    st = json.loads(adm.ctl("controld", "STATUS").stdout)
    assert st["admin"]["logins_ok"] == 1
    assert st["admin"]["logins_failed"] == 3
    assert st["admin"]["port"] == adm.admin_port
    log = control_log(adm)
    assert "Admin login %s" % ADMIN in log
    assert "not an administrator" in log


def test_lockout_after_failures(alkaid_root):
    a = alkaid_root
    a.set("Security", "AuthFailDelayAfter", "2")
    a.set("Security", "AuthFailLockAfter", "3")
    a.set("Security", "AuthFailLockTime", "60")
    add_admin(a)
    a.start("controld")
    c = connect(a)
    assert c.cmd("LOGIN %s bad1" % ADMIN)[:2] == ("ERR", "AUTH")
    assert c.cmd("LOGIN %s bad2" % ADMIN)[:2] == ("ERR", "AUTH")
    # a non-administrator's right password counts as a failure too
    assert c.cmd("LOGIN alice@example.test alice-secret-1")[:2] == ("ERR", "DENIED")
    # now even the right password is refused
    r = c.cmd("LOGIN %s %s" % (ADMIN, ADMIN_PW_WIRE))
    assert r[:2] == ("ERR", "LOCKED"), r
    assert c.closed()
    c2 = connect(a)
    assert c2.cmd("LOGIN %s %s" % (ADMIN, ADMIN_PW_WIRE))[:2] == ("ERR", "LOCKED")
    assert "locked out" in control_log(a)


# ---- the wire ------------------------------------------------------------------------

def test_line_rules(adm):
    c = connect(adm)
    c.login()
    assert c.cmd('DOMAIN "LIST')[:2] == ("ERR", "SYNTAX")           # unterminated
    assert c.cmd('DOMAIN "LI\\ST"')[:2] == ("ERR", "SYNTAX")        # bad escape
    assert c.cmd('DOMAIN LI"ST')[:2] == ("ERR", "SYNTAX")           # quote in an atom
    assert c.cmd('DOMAIN "LIST"x')[:2] == ("ERR", "SYNTAX")         # junk after a quote
    assert c.cmd("DOMAIN  LIST")[:2] == ("ERR", "SYNTAX")           # two spaces
    assert c.cmd("DOMAIN LIST\x01")[:2] == ("ERR", "SYNTAX")        # control character
    assert c.cmd("DOMAIN LIST\x00")[:2] == ("ERR", "SYNTAX")        # NUL
    assert c.cmd("FROB")[:2] == ("ERR", "SYNTAX")
    assert "domains" in c.ok('"domain" "list"')                     # quoted words are fine
    c.send("domain list\n")                                         # bare LF accepted
    assert c.reply()[0] == "OK"
    c.send("DOMAIN LIST " + "x" * 9000 + "\r\n")
    assert c.reply()[:2] == ("ERR", "LINE")
    assert c.closed()


def test_line_limit_is_8192(adm):
    c = connect(adm)
    c.login()
    line = "LOG control " + "1" * (8192 - len("LOG control "))
    assert len(line) == 8192
    assert c.cmd(line)[:2] == ("ERR", "SYNTAX")   # read and parsed: lines is out of range
    assert c.cmd("X" * 8193)[:2] == ("ERR", "LINE")


# ---- CONFIG --------------------------------------------------------------------------

def test_config_get(adm):
    c = connect(adm)
    c.login()
    everything = c.ok("CONFIG GET")["settings"]
    keys = {(s["section"], s["key"]) for s in everything}
    assert ("SMTP", "Port") in keys and ("Control", "AdminPort") in keys
    port = c.ok("CONFIG GET smtp port")["settings"]
    assert port == [{"section": "SMTP", "key": "Port", "value": str(adm.smtp_port),
                     "default": "25"}]
    sec = c.ok("CONFIG GET Security")["settings"]
    assert {s["key"] for s in sec} >= {"AuthFailLockAfter", "PasswordIterations"}
    assert all(s["section"] == "Security" for s in sec)
    assert c.cmd("CONFIG GET Nope")[:2] == ("ERR", "NOTFOUND")
    assert c.cmd("CONFIG GET SMTP Nope")[:2] == ("ERR", "NOTFOUND")


def test_config_set_banner_reaches_running_smtpd(adm):
    adm.start("smtpd")
    before = adm.ini.read_text()
    c = connect(adm)
    c.login()
    r = c.ok('CONFIG SET SMTP Banner "Admin port test; ready"')
    assert r["changed"] is True
    assert r["reload"]["smtpd"] == "OK reloaded"
    assert r["reload"]["controld"] == "OK reloaded"
    assert r["reload"]["pop3imapd"].startswith("ERR")         # not running
    after = adm.ini.read_text()
    # one line changed; every comment kept
    assert [l for l in before.splitlines() if l.startswith(";")] == \
        [l for l in after.splitlines() if l.startswith(";")]
    assert 'Banner="Admin port test; ready"' in after
    assert len(after.splitlines()) == len(before.splitlines())
    got = c.ok("CONFIG GET SMTP Banner")["settings"][0]
    assert got["value"] == "Admin port test; ready"
    raw = adm.raw(adm.smtp_port)
    code, text, _ = raw.reply()
    assert code == 220 and "Admin port test; ready" in text, text
    raw.close()
    log = control_log(adm)
    assert "%s: CONFIG SET [SMTP] Banner=Admin port test; ready" % ADMIN in log


def test_config_set_adds_key_and_section(adm):
    c = connect(adm)
    c.login()
    text = adm.ini.read_text()
    # remove [DNS] altogether and [SMTP] Banner, then set both
    lines = text.splitlines()
    out, skip = [], False
    for l in lines:
        if l.strip().startswith("["):
            skip = l.strip() == "[DNS]"
        if skip or l.startswith("Banner="):
            continue
        out.append(l)
    adm.ini.write_text("\n".join(out) + "\n")
    c.ok("CONFIG SET SMTP Banner hello")
    c.ok("CONFIG SET DNS Tries 3")
    new = adm.ini.read_text()
    assert "Banner=hello" in new
    assert new.rstrip().endswith("[DNS]\nTries=3")
    smtp_part = new.split("[SMTP]", 1)[1].split("\n[", 1)[0]
    assert "Banner=hello" in smtp_part
    c.ok("CONFIG SET SMTP SmarthostPassword s3cr3t-value")
    assert "s3cr3t-value" not in control_log(adm)


def test_config_set_invalid_value_leaves_file(adm):
    before = adm.ini.read_bytes()
    c = connect(adm)
    c.login()
    r = c.cmd("CONFIG SET SMTP Port 70000")
    assert r[:2] == ("ERR", "INVALID"), r
    assert "[SMTP] Port" in r[2] and "alkaid.ini" in r[2]
    r = c.cmd("CONFIG SET Security AuthFailLockAfter many")
    assert r[:2] == ("ERR", "INVALID") and "[Security] AuthFailLockAfter" in r[2]
    assert c.cmd("CONFIG SET SMTP NoSuchKey 1")[:2] == ("ERR", "NOTFOUND")
    assert c.cmd('CONFIG SET SMTP Banner "a\tb"')[0] in ("ERR", "OK")
    adm.ini.write_bytes(before)
    assert c.cmd("CONFIG SET SMTP Port")[:2] == ("ERR", "SYNTAX")
    assert adm.ini.read_bytes() == before


# ---- accounts ------------------------------------------------------------------------

def cli_list(a):
    return a.user("list").stdout


def test_domain_and_user_round_trip(adm):
    c = connect(adm)
    c.login()
    assert c.ok("DOMAIN ADD new.test") == {"done": True}
    assert c.cmd("DOMAIN ADD new.test")[:2] == ("ERR", "EXISTS")
    assert c.cmd("DOMAIN ADD bad_domain!")[:2] == ("ERR", "INVALID")
    assert "new.test" in c.ok("DOMAIN LIST")["domains"]
    assert "new.test" in adm.user("domain", "list").stdout

    assert c.ok('USER ADD carol@new.test "c pw" QUOTA 10M ADMIN') == {"done": True}
    assert c.cmd("USER ADD carol@new.test x")[:2] == ("ERR", "EXISTS")
    assert c.cmd("USER ADD dave@nowhere.test x")[:2] == ("ERR", "NOTFOUND")
    assert c.cmd('USER ADD dave@new.test ""')[:2] == ("ERR", "INVALID")
    assert c.cmd("USER ADD dave@new.test x QUOTA lots")[:2] == ("ERR", "INVALID")
    assert "carol@new.test" in cli_list(adm)
    show = c.ok("USER SHOW carol@new.test")
    assert show == {"address": "carol@new.test", "type": "user", "admin": True,
                    "quota": 10 << 20, "used": 0, "targets": [], "keep": True}
    assert (adm.root / "mail" / "new.test" / "carol").is_dir()
    users = c.ok("USER LIST new.test")["users"]
    assert users == [{"address": "carol@new.test", "type": "user", "admin": True,
                      "quota": 10 << 20}]
    assert len(c.ok("USER LIST")["users"]) >= 4

    assert c.ok("USER SET carol@new.test NOADMIN QUOTA 0") == {"done": True}
    show = c.ok("USER SHOW carol@new.test")
    assert show["admin"] is False and show["quota"] == 0
    assert c.cmd("USER SET carol@new.test")[:2] == ("ERR", "SYNTAX")
    assert c.ok('USER PASSWD carol@new.test "new pw"') == {"done": True}
    # the new password works (over POP3)
    adm.start("pop3imapd")
    p = adm.pop3s()
    p.user("carol@new.test")
    p.pass_("new pw")
    p.quit()

    # aliases, forwarding, catch-all
    assert c.ok("ALIAS ADD team@new.test carol bob@example.test") == {"done": True}
    show = c.ok("USER SHOW team@new.test")
    assert show["type"] == "alias"
    assert show["targets"] == ["carol@new.test", "bob@example.test"]
    assert c.ok("ALIAS DEL team@new.test bob@example.test") == {"done": True}
    assert c.ok("USER SHOW team@new.test")["targets"] == ["carol@new.test"]
    assert c.cmd("ALIAS DEL team@new.test carol")[:2] == ("ERR", "INVALID")
    assert c.cmd("ALIAS ADD carol@new.test x")[:2] == ("ERR", "EXISTS")
    assert c.ok("ALIAS DEL team@new.test") == {"done": True}
    assert c.cmd("USER SHOW team@new.test")[:2] == ("ERR", "NOTFOUND")

    assert c.ok("FORWARD carol@new.test out@remote.test KEEP") == {"done": True}
    show = c.ok("USER SHOW carol@new.test")
    assert show["type"] == "forward" and show["targets"] == ["out@remote.test"]
    assert show["keep"] is True
    assert c.ok("FORWARD carol@new.test OFF") == {"done": True}
    assert c.ok("USER SHOW carol@new.test")["targets"] == []

    assert c.ok("CATCHALL new.test carol") == {"done": True}
    assert "carol@new.test" in c.cmd("USER SHOW nobody@new.test")[2]
    assert c.ok("CATCHALL new.test OFF") == {"done": True}
    assert c.cmd("CATCHALL none.test OFF")[:2] == ("ERR", "NOTFOUND")

    # deleting
    assert c.cmd("DOMAIN DEL new.test")[:2] == ("ERR", "EXISTS")
    assert c.ok("USER DEL carol@new.test PURGE") == {"done": True}
    assert not (adm.root / "mail" / "new.test" / "carol").exists()
    assert "carol@new.test" not in cli_list(adm)
    assert c.cmd("USER DEL carol@new.test")[:2] == ("ERR", "NOTFOUND")
    c.ok("USER ADD erin@new.test pw")
    assert c.ok("DOMAIN DEL new.test FORCE") == {"done": True}
    assert "new.test" not in c.ok("DOMAIN LIST")["domains"]
    assert "new.test" not in adm.user("domain", "list").stdout

    log = control_log(adm)
    assert "%s: DOMAIN ADD new.test" % ADMIN in log
    assert "%s: USER ADD carol@new.test ADMIN QUOTA 10M" % ADMIN in log
    assert "%s: USER PASSWD carol@new.test" % ADMIN in log
    assert "%s: USER DEL carol@new.test PURGE" % ADMIN in log
    for secret in ["c pw", "new pw", "adm1n", ADMIN_PW]:
        assert secret not in log
    assert "pass" not in log.lower().replace("passwd", "")


# ---- QUEUE ---------------------------------------------------------------------------

def test_queue_commands(adm):
    adm.set("SMTP", "RelayIPs", "127.0.0.1")
    adm.start("smtpd")
    msg = b"From: <alice@example.test>\r\nTo: <x@remote.test>\r\nSubject: held \xc3\xa9\r\n\r\nhi\r\n"
    with smtplib.SMTP("127.0.0.1", adm.smtp_port, timeout=10) as s:
        assert s.sendmail("alice@example.test", ["x@remote.test"], msg) == {}
    for _ in range(50):
        if adm.queue_files():
            break
        time.sleep(0.1)
    files = adm.queue_files()
    assert len(files) == 1
    qid = files[0].name[:-len(".tmp")]
    c = connect(adm)
    c.login()
    msgs = c.ok("QUEUE LIST")["messages"]
    assert len(msgs) == 1
    m = msgs[0]
    assert m["id"] == qid and m["state"] == "waiting"
    assert m["sender"] == "alice@example.test" and m["recipients"] == ["x@remote.test"]
    assert m["errors"] == [None]
    show = c.ok("QUEUE SHOW " + qid)
    assert show["id"] == qid and "Subject: held \u00e9" in show["headers"]
    assert c.cmd("QUEUE SHOW nope")[:2] == ("ERR", "NOTFOUND")
    assert c.cmd("QUEUE SHOW ../x")[:2] == ("ERR", "INVALID")
    assert c.ok("QUEUE HOLD " + qid) == {"done": True}
    assert c.ok("QUEUE LIST")["messages"][0]["state"] == "held"
    assert c.ok("QUEUE RELEASE " + qid) == {"done": True}
    assert c.ok("QUEUE RETRY " + qid) == {"done": True}
    assert c.ok("QUEUE RETRY ALL") == {"done": True}
    # [Queue] Hold=1: the message stays in the queue
    time.sleep(0.3)
    assert c.ok("QUEUE DELETE " + qid) == {"done": True}
    assert c.ok("QUEUE LIST") == {"messages": []}
    assert c.cmd("QUEUE DELETE " + qid)[:2] == ("ERR", "NOTFOUND")
    log = control_log(adm)
    assert "%s: QUEUE DELETE %s" % (ADMIN, qid) in log
    assert "%s: QUEUE RELEASE %s" % (ADMIN, qid) in log


def test_queue_retry_all_without_smtpd(adm):
    c = connect(adm)
    c.login()
    assert c.cmd("QUEUE RETRY ALL")[:2] == ("ERR", "UNAVAILABLE")


# ---- services ------------------------------------------------------------------------

def test_status_reload_and_log(adm):
    adm.start("smtpd")
    c = connect(adm)
    c.login()
    st = c.ok("STATUS")["services"]
    assert st["smtpd"]["service"] == "smtpd"
    assert st["pop3imapd"] == {"running": False}
    assert st["controld"]["service"] == "controld"
    assert st["controld"]["admin"]["sessions"] == 1
    # the admin port counts its traffic: at least the LOGIN line and the replies so far
    assert st["controld"]["admin"]["bytes_in"] >= len("LOGIN %s " % ADMIN)
    assert st["controld"]["admin"]["bytes_out"] > 100
    r = c.ok("RELOAD")["reload"]
    assert r["smtpd"] == "OK reloaded" and r["controld"] == "OK reloaded"
    assert r["pop3imapd"].startswith("ERR")
    assert c.ok("RELOAD smtpd") == {"reload": {"smtpd": "OK reloaded"}}
    assert c.cmd("RELOAD nothing")[:2] == ("ERR", "SYNTAX")
    lines = c.ok("LOG control 5")
    assert lines["channel"] == "control"
    assert 1 <= len(lines["lines"]) <= 5
    assert "Admin login" in "\n".join(c.ok("LOG control")["lines"])
    assert c.ok("LOG imap")["lines"] == []
    assert c.cmd("LOG secrets")[:2] == ("ERR", "SYNTAX")
    assert c.cmd("LOG smtp 0")[:2] == ("ERR", "SYNTAX")
    assert c.cmd("LOG smtp 5001")[:2] == ("ERR", "SYNTAX")
    assert "%s: RELOAD smtpd" % ADMIN in control_log(adm)
    # an earlier day's file
    old_day = adm.root / "log" / "smtp" / "20260101.log"
    old_day.parent.mkdir(parents=True, exist_ok=True)
    old_day.write_text("".join("[1.2.3.4] [1] [2026-01-01] line %d\n" % i for i in range(10)))
    got = c.ok("LOG smtp 3 20260101")
    assert got["day"] == "20260101"
    assert got["lines"] == ["[1.2.3.4] [1] [2026-01-01] line %d" % i for i in (7, 8, 9)]
    assert c.cmd("LOG smtp 3 20250101")[:2] == ("ERR", "NOTFOUND")
    for bad in ["../x", "2026010", "202601011", "2026-01-01", "/etc/pas"]:
        assert c.cmd("LOG smtp 3 %s" % bad)[:2] == ("ERR", "SYNTAX"), bad
    assert c.cmd("LOG smtp 3 20260101 more")[:2] == ("ERR", "SYNTAX")


def test_restart_service(adm):
    adm.start("smtpd")
    old = json.loads(adm.ctl("smtpd", "STATUS").stdout)["pid"]
    c = connect(adm)
    c.login()
    try:
        r = c.cmd("RESTART smtpd")
        assert r == ("OK", {"restarted": "smtpd"}), r
        # the one started by the test exited; a new one (in the background) answers
        assert adm.procs["smtpd"].wait(10) == 0
        adm.procs.pop("smtpd")
        new = json.loads(adm.ctl("smtpd", "STATUS").stdout)["pid"]
        assert new != old
        raw = adm.raw(adm.smtp_port)
        assert raw.reply()[0] == 220
        raw.close()
        assert c.cmd("RESTART controld")[:2] == ("ERR", "INVALID")
        assert c.cmd("RESTART foo")[:2] == ("ERR", "SYNTAX")
    finally:
        adm.ctl("smtpd", "STOP")
        end = time.time() + 15
        while (adm.root / "run" / "smtpd.pid").exists() and time.time() < end:
            time.sleep(0.1)


def test_restart_under_systemd_needs_the_service_manager(alkaid_root):
    """Under systemd (INVOCATION_ID in controld's environment) and without
    [Control] WatchdogRestart, RESTART is refused naming the key, and the service is left
    running: started by controld it would live outside its own unit."""
    a = alkaid_root
    add_admin(a)
    a.start("smtpd")
    old = json.loads(a.ctl("smtpd", "STATUS").stdout)["pid"]
    os.environ["INVOCATION_ID"] = "0123456789abcdef0123456789abcdef"
    try:
        a.start("controld")
    finally:
        os.environ.pop("INVOCATION_ID", None)
    c = connect(a)
    c.login()
    r = c.cmd("RESTART smtpd")
    assert r[:2] == ("ERR", "UNAVAILABLE"), r
    assert "[Control] WatchdogRestart" in r[2] and "systemd" in r[2], r
    assert json.loads(a.ctl("smtpd", "STATUS").stdout)["pid"] == old


def test_status_json_escaping_and_utf8(adm):
    c = connect(adm)
    c.login()
    # UTF-8 in a quoted argument reaches the reply intact, as valid JSON
    r = c.cmd('USER SHOW "j\u00fcrgen@example.test"')
    assert r[:2] == ("ERR", "INVALID") and "j\u00fcrgen" in r[2]
    # invalid UTF-8 is refused
    c.send(b'USER SHOW "\xff@example.test"\r\n')
    assert c.reply()[:2] == ("ERR", "SYNTAX")
