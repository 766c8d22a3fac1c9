"""POP3 in alkaid-pop3imapd, as mail clients see it.

Messages are put into the mailboxes directly (as delivery does: a complete file appears
under its final name), so these tests need only pop3imapd. Clients: Python's poplib
(plain + STLS, POP3_SSL), raw sockets for AUTH (PLAIN, LOGIN, SCRAM-SHA-256 computed
here), curl (pop3s://) and openssl s_client -starttls pop3.
"""
import base64
import hashlib
import hmac
import json
import os
import poplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import USERS, client_tls_context, set_ini

ALICE = "alice@example.test"
BOB = "bob@example.test"
PW = USERS[ALICE]
BADPW = "Xq7-not-the-password"

MSG1 = (b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: one\r\n"
        b"Message-ID: <1@example.test>\r\n\r\nFirst message.\r\n.leading dot\r\n"
        b"..two dots\r\n.\r\nlast line\r\n")
MSG2 = (b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: two\r\n\r\n"
        b"Line 1\r\nLine 2\r\nLine 3\r\nLine 4\r\n")
NAME1 = "1763766131.M000001P1Q1.test.eml"
NAME2 = "1763766132.M000002P1Q2.test.eml"
NAME3 = "1763766133.M000003P1Q3.test.eml"


# --- helpers --------------------------------------------------------------------------

def put_message(alkaid, addr, name, data):
    """Delivers like smtpd does: a complete file gets its final name atomically."""
    d = alkaid.mailbox_dir(addr)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (".%s.part" % name)
    tmp.write_bytes(data)
    os.rename(tmp, d / name)
    return d / name


def names(alkaid, addr):
    d = alkaid.mailbox_dir(addr)
    return sorted(n for n in os.listdir(d) if n.endswith(".eml") and not n.startswith("."))


class Pop3Raw:
    """A POP3 connection on a socket, optionally TLS (implicit or after STLS)."""

    def __init__(self, port, tls=False, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; buffered: %r" % self.buf)
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\r\n", 1)
        assert b"\n" not in ln and b"\r" not in ln, ln
        return ln.decode("utf-8", "replace")

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.line()

    def body(self):
        """The lines of a multi-line body (dot-stuffing undone), as bytes."""
        out = []
        while True:
            ln = self.line().encode("utf-8", "surrogateescape")
            if ln == b".":
                return out
            out.append(ln[1:] if ln.startswith(b".") else ln)

    def raw_body(self):
        """The multi-line body exactly as sent, including the final '.' line."""
        while True:
            end = self.buf.find(b"\r\n.\r\n")
            if end >= 0 or self.buf.startswith(b".\r\n"):
                if self.buf.startswith(b".\r\n"):
                    data, self.buf = self.buf[:3], self.buf[3:]
                else:
                    data, self.buf = self.buf[:end + 5], self.buf[end + 5:]
                return data
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def stls(self):
        r = self.cmd("STLS")
        assert r.startswith("+OK"), r
        assert self.buf == b""
        self.sock = client_tls_context().wrap_socket(self.sock)

    def login(self, user=ALICE, password=PW):
        r = self.cmd("USER " + user)
        assert r.startswith("+OK"), r
        return self.cmd("PASS " + password)

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
        except (ConnectionResetError, ssl.SSLError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def scram_login(c, user, password, cnonce="rOprNGfwEbeRWgbNEkqO"):
    """AUTH SCRAM-SHA-256 (RFC 5802/7677) driven by hand; returns the final reply."""
    gs2 = "n,,"
    first_bare = "n=%s,r=%s" % (user, cnonce)
    r = c.cmd("AUTH SCRAM-SHA-256 " + b64(gs2 + first_bare))
    assert r.startswith("+ "), r
    server_first = base64.b64decode(r[2:]).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    nonce, salt, iters = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
    assert nonce.startswith(cnonce) and len(nonce) > len(cnonce)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iters)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    final_no_proof = "c=%s,r=%s" % (b64(gs2), nonce)
    auth_message = ",".join([first_bare, server_first, final_no_proof]).encode()
    client_sig = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, client_sig))
    r = c.cmd(b64(final_no_proof + ",p=" + b64(proof)))
    if not r.startswith("+ "):
        return r
    server_final = base64.b64decode(r[2:]).decode()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    expect = b64(hmac.new(server_key, auth_message, hashlib.sha256).digest())
    assert server_final == "v=" + expect
    return c.cmd("")


# --- fixtures -------------------------------------------------------------------------

@pytest.fixture
def pop3d(alkaid_root):
    """pop3imapd alone on a prepared root, alice with two messages."""
    put_message(alkaid_root, ALICE, NAME1, MSG1)
    put_message(alkaid_root, ALICE, NAME2, MSG2)
    alkaid_root.start("pop3imapd")
    return alkaid_root


def restart_with(alkaid, settings):
    for (sec, key), val in settings.items():
        set_ini(alkaid.ini, sec, key, val)
    alkaid.start("pop3imapd")
    return alkaid


# --- plaintext, STLS and implicit TLS ------------------------------------------------

def test_plain_port_refuses_auth_before_stls(pop3d):
    p = pop3d.pop3()
    assert p.getwelcome().startswith(b"+OK")
    capa = p.capa()
    assert "STLS" in capa and "USER" not in capa and "SASL" not in capa
    for k in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert k in capa
    assert capa["IMPLEMENTATION"] == ["Alkaid"]
    with pytest.raises(poplib.error_proto) as e:
        p.user(ALICE)
    assert b"-ERR [AUTH]" in e.value.args[0] and b"STLS" in e.value.args[0]
    with pytest.raises(poplib.error_proto) as e:
        p.pass_(PW)
    assert b"-ERR [AUTH]" in e.value.args[0]
    c = Pop3Raw(pop3d.pop3_port)
    r = c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (ALICE, PW)))
    assert r.startswith("-ERR [AUTH]") and "STLS" in r
    assert c.cmd("QUIT").startswith("+OK")
    p.quit()


def test_stls_user_pass_and_retrieval(pop3d):
    p = pop3d.pop3()
    p.stls(client_tls_context())
    capa = p.capa()
    assert "STLS" not in capa and "USER" in capa
    assert capa["SASL"] == ["PLAIN", "LOGIN", "SCRAM-SHA-256"]
    p.user(ALICE)
    assert p.pass_(PW).startswith(b"+OK")
    assert p.stat() == (2, len(MSG1) + len(MSG2))
    resp, lines, _ = p.list()
    assert lines == [b"1 %d" % len(MSG1), b"2 %d" % len(MSG2)]
    assert p.list(2).split()[1:] == [b"2", str(len(MSG2)).encode()]
    resp, lines, octets = p.retr(1)
    assert resp.startswith(b"+OK")
    assert b"\r\n".join(lines) + b"\r\n" == MSG1
    resp, lines, _ = p.top(2, 2)
    assert lines == [b"From: bob@example.test", b"To: alice@example.test", b"Subject: two",
                     b"", b"Line 1", b"Line 2"]
    resp, lines, _ = p.top(2, 0)
    assert lines[-1] == b"" and b"Line 1" not in lines
    assert p.noop().startswith(b"+OK")
    assert p.quit().startswith(b"+OK")
    assert names(pop3d, ALICE) == [NAME1, NAME2]


def test_pop3s_implicit_tls(pop3d):
    p = pop3d.pop3s()
    assert p.getwelcome().startswith(b"+OK")
    capa = p.capa()
    assert "STLS" not in capa and "USER" in capa
    p.user(BOB)
    assert p.pass_(USERS[BOB]).startswith(b"+OK")
    assert p.stat() == (0, 0)
    p.quit()
    # STLS on an implicit-TLS connection is refused
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert c.cmd("STLS").startswith("-ERR")
    c.close()


def test_allow_plaintext_auth(alkaid_root):
    put_message(alkaid_root, ALICE, NAME1, MSG1)
    a = restart_with(alkaid_root, {("POP3", "AllowPlaintextAuth"): "1"})
    p = a.pop3()
    capa = p.capa()
    assert "USER" in capa and "SASL" in capa and "STLS" in capa
    p.user(ALICE)
    assert p.pass_(PW).startswith(b"+OK")
    assert p.stat()[0] == 1
    p.quit()


def test_openssl_s_client_starttls(pop3d):
    script = "USER %s\nPASS %s\nSTAT\nQUIT\n" % (ALICE, PW)
    r = subprocess.run(["openssl", "s_client", "-starttls", "pop3", "-connect",
                        "127.0.0.1:%d" % pop3d.pop3_port, "-quiet", "-crlf"],
                       input=script, capture_output=True, text=True, timeout=30)
    out = r.stdout
    assert "+OK Logged in, 2 messages" in out, (out, r.stderr)
    assert "+OK 2 %d" % (len(MSG1) + len(MSG2)) in out
    assert "signing off" in out


def test_curl_pop3s_list_and_retr(pop3d):
    base = "pop3s://127.0.0.1:%d/" % pop3d.pop3s_port
    r = subprocess.run(["curl", "-sS", "-k", "--user", "%s:%s" % (ALICE, PW), base],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.replace(b"\r\n", b"\n") == b"1 %d\n2 %d\n" % (len(MSG1), len(MSG2))
    r = subprocess.run(["curl", "-sS", "-k", "--user", "%s:%s" % (ALICE, PW), base + "1"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == MSG1
    r = subprocess.run(["curl", "-sS", "-k", "--user", "%s:wrong" % ALICE, base],
                       capture_output=True, timeout=30)
    assert r.returncode != 0
    assert names(pop3d, ALICE) == [NAME1, NAME2]


# --- AUTH -----------------------------------------------------------------------------

def test_auth_plain(pop3d):
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    r = c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (ALICE, PW)))
    assert r.startswith("+OK"), r
    assert c.cmd("STAT").startswith("+OK 2 ")
    assert c.cmd("QUIT").startswith("+OK")
    # without an initial response: an empty challenge first
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert c.cmd("AUTH PLAIN") == "+ "
    assert c.cmd(b64("\0%s\0%s" % (BOB, USERS[BOB]))).startswith("+OK")
    c.cmd("QUIT")


def test_auth_list_cancel_and_empty(pop3d):
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert c.cmd("AUTH").startswith("+OK")
    assert [ln.decode() for ln in c.body()] == ["PLAIN", "LOGIN", "SCRAM-SHA-256"]
    assert c.cmd("AUTH PLAIN") == "+ "
    assert c.cmd("*").startswith("-ERR")
    # "=" is an empty initial response: not a valid PLAIN message
    assert c.cmd("AUTH PLAIN =").startswith("-ERR")
    assert c.cmd("AUTH CRAM-MD5").startswith("-ERR")
    # the session is still usable
    assert c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (ALICE, PW))).startswith("+OK")
    c.cmd("QUIT")


def test_auth_login(pop3d):
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    r = c.cmd("AUTH LOGIN")
    assert base64.b64decode(r[2:]) == b"Username:"
    r = c.cmd(b64(ALICE))
    assert base64.b64decode(r[2:]) == b"Password:"
    assert c.cmd(b64(PW)).startswith("+OK")
    c.cmd("QUIT")


def test_auth_scram_sha_256(pop3d):
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    r = scram_login(c, ALICE, PW)
    assert r.startswith("+OK"), r
    assert c.cmd("STAT").startswith("+OK 2 ")
    c.cmd("QUIT")
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert scram_login(c, ALICE, "wrong") == "-ERR [AUTH] Authentication failed"
    assert scram_login(c, "nobody@example.test", "wrong") == "-ERR [AUTH] Authentication failed"
    c.close()


def test_wrong_password_and_unknown_user_look_the_same(pop3d):
    replies = []
    for user, pw in ((ALICE, BADPW), ("nobody@example.test", BADPW),
                     ("nobody@elsewhere.test", PW), ("no-at-sign", PW)):
        c = Pop3Raw(pop3d.pop3s_port, tls=True)
        assert c.cmd("USER " + user).startswith("+OK")
        replies.append(c.cmd("PASS " + pw))
        c.close()
    assert set(replies) == {"-ERR [AUTH] Authentication failed"}
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    replies = [c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (ALICE, BADPW))),
               c.cmd("AUTH PLAIN " + b64("\0nobody@example.test\0" + BADPW))]
    assert set(replies) == {"-ERR [AUTH] Authentication failed"}
    c.close()
    log = pop3d.log("pop3")
    assert BADPW not in log and PW not in log
    assert "PASS ****" in log


def test_lockout_after_repeated_failures(alkaid_root):
    a = restart_with(alkaid_root, {("Security", "AuthFailDelayAfter"): "3",
                                   ("Security", "AuthFailLockAfter"): "3",
                                   ("Security", "AuthFailLockTime"): "60"})
    c = Pop3Raw(a.pop3s_port, tls=True)
    for _ in range(3):
        assert c.cmd("AUTH PLAIN " + b64("\0%s\0bad" % ALICE)).startswith("-ERR [AUTH]")
    assert c.closed()  # three failures in one session end it
    c = Pop3Raw(a.pop3s_port, tls=True)
    c.cmd("USER " + ALICE)
    r = c.cmd("PASS " + PW)  # even the right password
    assert r.startswith("-ERR [SYS/TEMP]"), r
    assert c.closed()
    c = Pop3Raw(a.pop3s_port, tls=True)
    assert c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (ALICE, PW))).startswith("-ERR [SYS/TEMP]")
    assert c.closed()


# --- the maildrop ---------------------------------------------------------------------

def test_dele_happens_only_at_quit(pop3d):
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert c.login().startswith("+OK")
    assert c.cmd("DELE 1").startswith("+OK")
    assert c.cmd("DELE 1").startswith("-ERR")
    assert c.cmd("RETR 1").startswith("-ERR")
    assert c.cmd("STAT") == "+OK 1 %d" % len(MSG2)
    assert c.cmd("LIST").startswith("+OK")
    assert c.body() == [b"2 %d" % len(MSG2)]
    assert names(pop3d, ALICE) == [NAME1, NAME2]
    assert c.cmd("RSET").startswith("+OK")
    assert c.cmd("STAT") == "+OK 2 %d" % (len(MSG1) + len(MSG2))
    assert c.cmd("DELE 2").startswith("+OK")
    assert names(pop3d, ALICE) == [NAME1, NAME2]
    assert c.cmd("QUIT").startswith("+OK")
    assert c.closed()
    assert names(pop3d, ALICE) == [NAME1]
    p = pop3d.pop3s()
    p.user(ALICE)
    p.pass_(PW)
    assert p.stat() == (1, len(MSG1))
    p.quit()
    st = json.loads(pop3d.ctl("pop3imapd", "STATUS").stdout)
    assert st["pop3"]["deleted"] == 1 and st["pop3"]["logins"] == 2


def test_dropped_connection_deletes_nothing(pop3d):
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert c.login().startswith("+OK")
    assert c.cmd("DELE 1").startswith("+OK")
    assert c.cmd("DELE 2").startswith("+OK")
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    time.sleep(0.5)
    assert names(pop3d, ALICE) == [NAME1, NAME2]
    # and the lock went with the session
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert c.login().startswith("+OK")
    assert c.cmd("STAT").startswith("+OK 2 ")
    c.cmd("QUIT")
    assert "without QUIT" in pop3d.log("pop3")


def test_second_session_gets_in_use(pop3d):
    first = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert first.login().startswith("+OK")
    second = Pop3Raw(pop3d.pop3s_port, tls=True)
    r = second.login()
    assert r.startswith("-ERR [IN-USE]"), r
    # another user is not affected
    third = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert third.login(BOB, USERS[BOB]).startswith("+OK")
    third.cmd("QUIT")
    assert first.cmd("QUIT").startswith("+OK")
    first.closed()
    assert second.login().startswith("+OK")
    second.cmd("QUIT")


def test_delivery_during_session_waits_for_next_session(pop3d):
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert c.login().startswith("+OK")
    t0 = time.time()
    put_message(pop3d, ALICE, NAME3, b"Subject: three\r\n\r\nnew\r\n")
    assert time.time() - t0 < 1.0  # delivery never waits for the reader's lock
    assert c.cmd("STAT").startswith("+OK 2 ")
    assert c.cmd("RETR 3").startswith("-ERR")
    assert c.cmd("DELE 1").startswith("+OK")
    assert c.cmd("QUIT").startswith("+OK")
    assert names(pop3d, ALICE) == [NAME2, NAME3]
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert c.login().startswith("+OK")
    assert c.cmd("STAT").startswith("+OK 2 ")
    assert c.cmd("RETR 2").startswith("+OK")
    assert c.body() == [b"Subject: three", b"", b"new"]
    c.cmd("QUIT")


def test_uidl_stable_across_sessions(pop3d):
    long_name = "x" * 100 + ".eml"
    put_message(pop3d, ALICE, long_name, b"Subject: long\r\n\r\nbody\r\n")

    def uidls():
        p = pop3d.pop3s()
        p.user(ALICE)
        p.pass_(PW)
        _, lines, _ = p.uidl()
        single = p.uidl(1)
        p.quit()
        return [ln.decode() for ln in lines], single.decode()

    first, single = uidls()
    assert first[0] == "1 " + NAME1[:-4]
    assert first[1] == "2 " + NAME2[:-4]
    assert single == "+OK 1 " + NAME1[:-4]
    uid3 = first[2].split()[1]
    assert len(uid3) <= 70 and all(0x21 <= ord(ch) <= 0x7E for ch in uid3)
    assert uid3 == hashlib.sha256(long_name.encode()).hexdigest()[:len(uid3)]
    second, _ = uidls()
    assert first == second


def test_message_removed_meanwhile(pop3d):
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert c.login().startswith("+OK")
    os.unlink(pop3d.mailbox_dir(ALICE) / NAME1)
    assert c.cmd("RETR 1").startswith("-ERR")
    assert c.cmd("RETR 2").startswith("+OK")
    assert c.body()[-1] == b"Line 4"
    assert c.cmd("DELE 1").startswith("+OK")
    assert c.cmd("QUIT").startswith("+OK")
    assert names(pop3d, ALICE) == [NAME2]


def test_dot_stuffing_and_line_ends(pop3d):
    odd = b"Subject: odd\r\n\r\n.starts with dot\nbare LF\rbare CR\r\n.\r\nno final newline"
    put_message(pop3d, BOB, NAME1, odd)
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert c.login(BOB, USERS[BOB]).startswith("+OK")
    assert c.cmd("RETR 1") == "+OK %d octets" % len(odd)
    raw = c.raw_body()
    assert raw == (b"Subject: odd\r\n\r\n..starts with dot\r\nbare LF\r\nbare CR\r\n..\r\n"
                   b"no final newline\r\n.\r\n")
    assert raw.replace(b"\r\n", b"").count(b"\r") == 0
    assert raw.replace(b"\r\n", b"").count(b"\n") == 0
    c.cmd("QUIT")


def test_big_message_streams(pop3d):
    line = b"x" * 998 + b"\r\n"
    big = b"Subject: big\r\n\r\n" + line * 6000  # about 6 MB
    put_message(pop3d, BOB, NAME1, big)
    p = pop3d.pop3s()
    p.user(BOB)
    p.pass_(USERS[BOB])
    _, lines, octets = p.retr(1)
    assert len(lines) == 6002 and octets >= len(big)
    p.quit()


# --- the command line -----------------------------------------------------------------

def test_commands_are_case_insensitive_and_pipelined(pop3d):
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    c.send("user %s\r\npass %s\r\nstat\r\nuidl 2\r\nnoop\r\n" % (ALICE, PW))
    assert c.line().startswith("+OK")
    assert c.line().startswith("+OK Logged in")
    assert c.line().startswith("+OK 2 ")
    assert c.line() == "+OK 2 " + NAME2[:-4]
    assert c.line() == "+OK"
    assert c.cmd("Quit").startswith("+OK")


def test_long_line_nul_and_bad_commands(pop3d):
    c = Pop3Raw(pop3d.pop3_port)
    assert c.cmd("NOOP " + "a" * 2000) == "-ERR Line too long"
    assert c.cmd("NOOP").startswith("+OK")
    assert c.cmd("NO\0OP").startswith("-ERR")
    assert c.cmd("CAPA").startswith("+OK")
    c.body()
    assert c.cmd("STAT").startswith("-ERR")  # not in this state
    assert c.cmd("XYZZY").startswith("-ERR")
    for _ in range(5):
        assert c.cmd("BOGUS") == "-ERR Unknown command"
    assert c.cmd("BOGUS") == "-ERR Unknown command"  # the tenth
    assert c.line().startswith("-ERR Too many bad commands")
    assert c.closed()
    assert "Line too long" in pop3d.log("pop3")


def test_autologout(alkaid_root):
    a = restart_with(alkaid_root, {("POP3", "Timeout"): "10"})
    c = Pop3Raw(a.pop3s_port, tls=True)
    assert c.login().startswith("+OK")
    assert c.cmd("DELE 1").startswith("-ERR")  # empty mailbox
    t0 = time.time()
    assert c.closed(timeout=20)
    assert 9 <= time.time() - t0 < 16
    assert "autologout" in a.log("pop3")


def test_reload_limits_and_busy_reply(pop3d):
    pop3d.set("POP3", "MaxSessionsPerIP", "1")
    r = pop3d.ctl("pop3imapd", "RELOAD")
    assert r.returncode == 0 and "OK" in r.stdout, (r.stdout, r.stderr)
    first = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert first.greeting.startswith("+OK")
    second = Pop3Raw(pop3d.pop3_port)
    assert second.greeting == "-ERR [SYS/TEMP] Too many connections, try again later"
    assert second.closed()
    assert first.login().startswith("+OK")  # the TLS context survived the reload
    first.cmd("QUIT")
    first.closed()
    st = json.loads(pop3d.ctl("pop3imapd", "STATUS").stdout)
    assert st["pop3"]["rejected"] == 1


def test_service_stops_cleanly_with_sessions_open(pop3d):
    c = Pop3Raw(pop3d.pop3s_port, tls=True)
    assert c.login().startswith("+OK")
    assert c.cmd("DELE 1").startswith("+OK")
    idle = Pop3Raw(pop3d.pop3_port)
    st = json.loads(pop3d.ctl("pop3imapd", "STATUS").stdout)
    assert st["pop3"]["connections"] == 2
    t0 = time.time()
    assert pop3d.stop("pop3imapd") == 0
    assert time.time() - t0 < 8
    assert c.closed() and idle.closed()
    assert names(pop3d, ALICE) == [NAME1, NAME2]
    log = pop3d.log("pop3")
    assert "POP3/IMAP Service stopped" in log
