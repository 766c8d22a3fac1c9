"""test_smtp_hostile.py - alkaid-smtpd against hostile clients

SMTP smuggling (CVE-2023-51764/5/6), plaintext injected behind STARTTLS (CVE-2011-0411),
over-long lines, NUL bytes, password guessing, connection floods, unknown commands, HTTP
requests, slowloris, binary garbage, bad MAIL FROM syntax and clients that vanish in the
middle of a message. Each test checks what the client sees and what is (not) stored.

Only smtpd is started (the `alkaid_root` fixture).
"""
import base64
import random
import re
import select
import socket
import time

import pytest

from conftest import (USERS, client_tls_context, smtp_session, stored_messages,
                      temp_files)

ALICE = "alice@example.test"
BOB = "bob@example.test"
SENDER = "sender@remote.test"


@pytest.fixture
def smtpd(alkaid_root):
    alkaid_root.start("smtpd")
    return alkaid_root


def assert_crlf_only(data):
    assert not re.search(rb"(?<!\r)\n", data), "bare LF in %r" % data
    assert not re.search(rb"\r(?!\n)", data), "bare CR in %r" % data


def envelope(c, rcpts=(ALICE,)):
    c.send("MAIL FROM:<%s>\r\n" % SENDER)
    code, text, _ = c.reply()
    assert code == 250, text
    for r in rcpts:
        c.send("RCPT TO:<%s>\r\n" % r)
        code, text, _ = c.reply()
        assert code == 250, text


def send_data(c, data, rcpts=(ALICE,)):
    """A whole transaction; data must end with CRLF "." CRLF. Returns (code, text)."""
    envelope(c, rcpts)
    c.send("DATA\r\n")
    code, text, _ = c.reply()
    assert code == 354, text
    c.send(data)
    code, text, _ = c.reply()
    return code, text


def normal_message(subject="normal"):
    return ("Subject: %s\r\n\r\nAll good.\r\n.\r\n" % subject).encode()


def session_still_works(alkaid, c):
    c.send("RSET\r\n")
    assert c.reply()[0] == 250
    c.send("NOOP\r\n")
    assert c.reply()[0] == 250
    before = len(alkaid.messages(ALICE))
    code, text = send_data(c, normal_message("after"))
    assert code == 250, text
    assert len(alkaid.messages(ALICE)) == before + 1


def wait_until(pred, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def server_alive(alkaid):
    assert alkaid.procs["smtpd"].poll() is None, "alkaid-smtpd died"
    c, _ = smtp_session(alkaid)
    c.send("NOOP\r\n")
    assert c.reply()[0] == 250
    c.close()


# ---- SMTP smuggling ---------------------------------------------------------------------------

SMUGGLE_ENDS = ["\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r\n.\r"]


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "split-writes"])
@pytest.mark.parametrize("fake_end", SMUGGLE_ENDS, ids=[repr(e)[1:-1] for e in SMUGGLE_ENDS])
def test_smtp_smuggling(smtpd, fake_end, split):
    c, _ = smtp_session(smtpd)
    envelope(c, [ALICE])
    c.send("DATA\r\n")
    assert c.reply()[0] == 354
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: innocent\r\n\r\nHello Alice." % (SENDER, ALICE))
    fake = ("MAIL FROM:<admin@example.test>\r\nRCPT TO:<%s>\r\nDATA\r\n"
            "From: <admin@example.test>\r\nTo: <%s>\r\nSubject: smuggled\r\n\r\n"
            "You have been smuggled.\r\n" % (BOB, BOB))
    payload = (head + fake_end + fake + ".\r\n").encode()
    if split:
        cut = len(head) + len(fake_end)
        c.send(payload[:cut])
        time.sleep(0.2)
        c.send(payload[cut:])
    else:
        c.send(payload)
    code, text, _ = c.reply()
    assert code == 250, text
    c.send("QUIT\r\n")
    code, text, _ = c.reply()
    assert code == 221, "a second reply: the fake commands were executed (%d %s)" % (code, text)
    assert c.closed()

    assert smtpd.messages(BOB) == [], "the smuggled message was delivered"
    msgs = smtpd.messages(ALICE)
    assert len(msgs) == 1
    stored = msgs[0]
    assert b"Subject: innocent" in stored
    # the fake commands are text of the one message
    assert b"RCPT TO:<bob@example.test>" in stored
    assert b"Subject: smuggled" in stored
    assert b"You have been smuggled." in stored
    assert_crlf_only(stored)
    assert len(stored_messages(smtpd)) == 1
    assert temp_files(smtpd) == []


@pytest.mark.parametrize("arg", ["abc", "-1", "10 FIRST", "", "99999999999999999999999 LAST"])
def test_bdat_bad_size_closes(smtpd, arg):
    """A BDAT whose size cannot be read leaves the stream impossible to follow: the server
    says so and closes, and nothing of what follows is taken as commands."""
    c, _ = smtp_session(smtpd)
    envelope(c, [ALICE])
    c.send("BDAT %s\r\nRCPT TO:<%s>\r\n" % (arg, BOB))
    code, text, _ = c.reply()
    assert code == 501, text
    assert c.closed()
    assert c.buf == b""
    assert stored_messages(smtpd) == {}


def test_smuggling_with_bdat_and_dot_lines(smtpd):
    """In BDAT there is no dot terminator at all: a "\\r\\n.\\r\\n" is content."""
    c, _ = smtp_session(smtpd)
    envelope(c, [ALICE])
    chunk = (b"Subject: chunk\r\n\r\nbody\r\n.\r\nMAIL FROM:<x@remote.test>\r\n"
             b"RCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n")
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    code, text, _ = c.reply()
    assert code == 250, text
    c.send("QUIT\r\n")
    assert c.reply()[0] == 221
    assert smtpd.messages(BOB) == []
    [m] = smtpd.messages(ALICE)
    assert m.endswith(chunk)


# ---- line limits and NUL bytes --------------------------------------------------------------

def test_command_line_too_long(smtpd):
    c, _ = smtp_session(smtpd)
    # 512 octets with the CRLF is the limit (RFC 5321 4.5.3.1.4)
    c.send("NOOP " + "x" * 505 + "\r\n")
    code, text, _ = c.reply()
    assert code == 250, text
    c.send("NOOP " + "x" * 506 + "\r\n")
    code, text, _ = c.reply()
    assert code == 500 and text.startswith("5.5.2"), text
    c.send("MAIL FROM:<" + "a" * 5000 + "@remote.test>\r\n")
    code, text, _ = c.reply()
    assert code == 500 and text.startswith("5.5.2"), text
    # exactly one reply per over-long line, and the session goes on
    c.send("NOOP\r\n")
    code, text, _ = c.reply()
    assert code == 250, text
    session_still_works(smtpd, c)


def test_data_line_too_long(smtpd):
    c, _ = smtp_session(smtpd)
    # 998 characters + CRLF is allowed (RFC 5322 2.1.1)
    ok = b"Subject: long ok\r\n\r\n" + b"a" * 998 + b"\r\n.\r\n"
    code, text = send_data(c, ok)
    assert code == 250, text
    assert len(smtpd.messages(ALICE)) == 1
    bad = b"Subject: too long\r\n\r\nshort\r\n" + b"b" * 999 + b"\r\nmore\r\n.\r\n"
    code, text = send_data(c, bad)
    assert 500 <= code < 600, (code, text)
    assert len(smtpd.messages(ALICE)) == 1
    huge = b"Subject: huge line\r\n\r\n" + b"c" * 200000 + b"\r\n.\r\n"
    code, text = send_data(c, huge)
    assert 500 <= code < 600, (code, text)
    assert len(smtpd.messages(ALICE)) == 1
    assert temp_files(smtpd) == []
    session_still_works(smtpd, c)


def test_nul_in_command(smtpd):
    c, _ = smtp_session(smtpd)
    c.send(b"NOOP\0\r\n")
    code, text, _ = c.reply()
    assert code == 500, text
    c.send(b"MAIL FROM:<sender@remote.test>\0 SIZE=10\r\n")
    code, text, _ = c.reply()
    assert code == 500, text
    c.send("NOOP\r\n")
    assert c.reply()[0] == 250
    # the refused MAIL left no transaction behind
    c.send("RCPT TO:<%s>\r\n" % ALICE)
    assert c.reply()[0] == 503
    session_still_works(smtpd, c)


def test_nul_in_data(smtpd):
    c, _ = smtp_session(smtpd)
    code, text = send_data(c, b"Subject: nul\r\n\r\nbefore\0after\r\n.\r\n")
    assert code == 554, text
    assert smtpd.messages(ALICE) == []
    assert temp_files(smtpd) == []
    # and in BDAT
    envelope(c)
    chunk = b"Subject: nul\r\n\r\nx\0y\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    code, text, _ = c.reply()
    assert code == 554, text
    assert smtpd.messages(ALICE) == []
    session_still_works(smtpd, c)


# ---- STARTTLS ----------------------------------------------------------------------------------

def test_starttls_plaintext_injection(smtpd):
    """CVE-2011-0411: commands pipelined behind STARTTLS in plaintext must be dropped."""
    c, _ = smtp_session(smtpd)
    c.send("STARTTLS\r\nRSET\r\nMAIL FROM:<injected@remote.test>\r\n")
    code, text, _ = c.reply()
    assert code == 220, text
    raw = c.sock
    tls = client_tls_context().wrap_socket(raw)
    c.sock = tls
    # nothing may come before we say anything
    tls.settimeout(1.5)
    try:
        early = tls.recv(4096)
    except (socket.timeout, TimeoutError):
        early = b""
    tls.settimeout(10)
    assert early == b"", "server answered the injected plaintext after TLS: %r" % early
    c.send("EHLO client.example.test\r\n")
    code, text, lines = c.reply()
    assert code == 250 and lines[0].startswith("250-mail.example.test"), lines
    # the injected MAIL did not start a transaction
    c.send("RCPT TO:<%s>\r\n" % ALICE)
    assert c.reply()[0] == 503
    c.send("MAIL FROM:<%s>\r\n" % SENDER)
    assert c.reply()[0] == 250


def test_starttls_resets_state(smtpd):
    c, _ = smtp_session(smtpd)
    c.send("STARTTLS\r\n")
    assert c.reply()[0] == 220
    c.sock = client_tls_context().wrap_socket(c.sock)
    c.send("MAIL FROM:<%s>\r\n" % SENDER)
    code, text, _ = c.reply()
    assert code == 503, text
    c.send("AUTH PLAIN %s\r\n" % base64.b64encode(
        ("\0%s\0%s" % (ALICE, USERS[ALICE])).encode()).decode())
    code, text, _ = c.reply()
    assert code == 503, text
    c.send("EHLO client.example.test\r\n")
    assert c.reply()[0] == 250
    c.send("MAIL FROM:<%s>\r\n" % SENDER)
    assert c.reply()[0] == 250


def test_starttls_refused_in_transaction(smtpd):
    c, _ = smtp_session(smtpd)
    envelope(c)
    c.send("STARTTLS\r\n")
    code, text, _ = c.reply()
    assert code == 503, text
    c.send("NOOP\r\n")
    assert c.reply()[0] == 250


def test_garbage_instead_of_tls_handshake(smtpd):
    c, _ = smtp_session(smtpd)
    c.send("STARTTLS\r\n")
    assert c.reply()[0] == 220
    c.send(b"\x16\x03\x01\x00\x05garbage-not-a-client-hello" + bytes(range(256)))
    assert c.closed(timeout=15)
    # the same on the implicit-TLS port
    c = smtpd.raw(smtpd.smtps_port)
    c.send(b"EHLO plaintext.example\r\n")
    assert c.closed(timeout=15)
    server_alive(smtpd)


# ---- password guessing ---------------------------------------------------------------------------

def tls_session(alkaid):
    """A session on the SMTPS port (implicit TLS) after EHLO."""
    c = alkaid.raw(alkaid.smtps_port, timeout=15)
    c.sock = client_tls_context().wrap_socket(c.sock)
    assert c.reply()[0] == 220
    c.send("EHLO client.example.test\r\n")
    assert c.reply()[0] == 250
    return c


def auth_plain(c, user, pw):
    c.send("AUTH PLAIN %s\r\n" % base64.b64encode(("\0%s\0%s" % (user, pw)).encode()).decode())
    t0 = time.time()
    code, text, _ = c.reply()
    return code, text, time.time() - t0


def test_auth_failures_slowed_then_locked(alkaid_root):
    alkaid_root.set("Security", "AuthFailDelayAfter", "2")
    alkaid_root.set("Security", "AuthFailLockAfter", "4")
    alkaid_root.set("Security", "AuthFailLockTime", "60")
    alkaid_root.start("smtpd")
    c = tls_session(alkaid_root)
    times = []
    for i in range(4):
        code, text, took = auth_plain(c, ALICE, "guess-%d" % i)
        assert code == 535, (i, code, text)
        times.append(took)
    assert times[0] < 0.4 and times[1] < 0.4, times
    assert times[2] >= 0.4 and times[3] >= 0.4, "failures past the 2nd were not slowed: %r" % times
    # locked: the next AUTH is refused and the connection closed, even with the right password
    code, text, _ = auth_plain(c, ALICE, USERS[ALICE])
    assert code == 421, text
    assert c.closed()
    c = tls_session(alkaid_root)
    code, text, _ = auth_plain(c, BOB, USERS[BOB])
    assert code == 421, text
    assert c.closed()
    # only AUTH is locked: unauthenticated mail to a local user still goes through
    c, _ = smtp_session(alkaid_root)
    code, text = send_data(c, normal_message())
    assert code == 250, text
    log = alkaid_root.log("smtp")
    assert "guess-" not in log


# ---- connection floods, command floods ---------------------------------------------------------

def test_max_sessions_per_ip(alkaid_root):
    alkaid_root.set("SMTP", "MaxSessionsPerIP", "3")
    alkaid_root.start("smtpd")
    # the start-up probe of the port (conftest.wait_port) must have left first
    assert wait_until(lambda: '"connections":0,' in alkaid_root.ctl("smtpd", "STATUS").stdout)
    clients = []
    for _ in range(3):
        c = alkaid_root.raw(alkaid_root.smtp_port)
        assert c.reply()[0] == 220
        clients.append(c)
    extra = alkaid_root.raw(alkaid_root.smtp_port)
    code, text, _ = extra.reply()
    assert code == 421, text
    assert extra.closed()
    # the admitted sessions are unaffected
    for c in clients:
        c.send("NOOP\r\n")
        assert c.reply()[0] == 250
    clients[0].send("QUIT\r\n")
    assert clients[0].reply()[0] == 221
    clients[0].close()

    def admitted():
        c = alkaid_root.raw(alkaid_root.smtp_port)
        code = c.reply()[0]
        c.close()
        return code == 220
    assert wait_until(admitted), "a slot was not given back after QUIT"
    st = alkaid_root.ctl("smtpd", "STATUS").stdout
    assert '"connections_refused":' in st and '"connections_refused":0' not in st, st


@pytest.mark.parametrize("verb", ["EHLO", "HELO"])
def test_invalid_helo_after_ehlo_gives_one_reply(smtpd, verb):
    """Every command gets exactly one reply; an extra one puts a pipelining client out of
    step with the server (it would take the extra reply as the answer to its next command)."""
    c, _ = smtp_session(smtpd)
    c.send("%s not/a/host!\r\nNOOP\r\n" % verb)
    code, text, lines = c.reply()
    assert code == 501, lines
    code, text, lines = c.reply()
    assert lines == ["250 2.0.0 Ok"], "reply to NOOP after the refused %s: %r" % (verb, lines)


def test_too_many_unknown_commands(smtpd):
    c, _ = smtp_session(smtpd)
    c.send("XYZZY\r\n" * 30)
    codes = []
    try:
        while True:
            code, text, _ = c.reply()
            codes.append(code)
            if code == 421:
                break
    except EOFError:
        pass
    assert codes and codes[-1] == 421, codes
    assert all(code == 500 for code in codes[:-1])
    assert 10 <= len(codes) - 1 <= 20, codes
    assert c.closed()


def test_errors_mixed_with_good_commands_still_counted(smtpd):
    c, _ = smtp_session(smtpd)
    codes = []
    for _ in range(30):
        c.send("BOGUS\r\nNOOP\r\n")
        try:
            code = c.reply()[0]
            codes.append(code)
            if code == 421:
                break
            code = c.reply()[0]
            codes.append(code)
            if code == 421:
                break
        except EOFError:
            break
    assert 421 in codes, codes
    assert c.closed()


@pytest.mark.parametrize("request_line", ["GET / HTTP/1.1", "POST /login HTTP/1.0",
                                          "CONNECT mail.example.test:25 HTTP/1.1"])
def test_http_request_closes(smtpd, request_line):
    c = smtpd.raw(smtpd.smtp_port)
    assert c.reply()[0] == 220
    c.send("%s\r\nHost: mail.example.test\r\nUser-Agent: test\r\n\r\n" % request_line)
    assert c.closed(timeout=5)
    assert c.buf == b"" or not c.buf.startswith(b"250"), c.buf


def test_slowloris_command(alkaid_root):
    alkaid_root.set("SMTP", "Timeout", "10")
    alkaid_root.start("smtpd")
    c, _ = smtp_session(alkaid_root, timeout=30)
    cmd = b"MAIL FROM:<slow.loris@remote.test>\r\n"
    t0 = time.time()
    for ch in cmd:
        try:
            c.sock.sendall(bytes([ch]))
        except OSError:
            break
        r, _, _ = select.select([c.sock], [], [], 2.0)
        if r or time.time() - t0 > 25:
            break
    code, text, _ = c.reply()
    elapsed = time.time() - t0
    assert code == 421 and text.startswith("4.4.2"), (code, text)
    assert elapsed < 13, "the server waited %.1f s" % elapsed
    assert c.closed()


def test_idle_timeout(alkaid_root):
    alkaid_root.set("SMTP", "Timeout", "10")
    alkaid_root.start("smtpd")
    t0 = time.time()
    c = alkaid_root.raw(alkaid_root.smtp_port, timeout=30)
    # at the same time: a TLS port never given a handshake, and a STARTTLS never finished
    no_hello = alkaid_root.raw(alkaid_root.smtps_port, timeout=30)
    half, _ = smtp_session(alkaid_root, timeout=30)
    half.send("STARTTLS\r\n")
    assert half.reply()[0] == 220
    assert c.reply()[0] == 220
    code, text, _ = c.reply()
    assert code == 421 and text.startswith("4.4.2"), text
    assert 8 < time.time() - t0 < 13
    assert c.closed()
    assert no_hello.closed(timeout=15 - (time.time() - t0)), "TLS port: no handshake, never closed"
    assert half.closed(timeout=15 - (time.time() - t0)), "STARTTLS without handshake never closed"
    assert time.time() - t0 < 15


def test_binary_garbage(smtpd):
    rnd = random.Random(4711)
    for round_ in range(3):
        c = smtpd.raw(smtpd.smtp_port)
        assert c.reply()[0] == 220
        junk = bytes(rnd.getrandbits(8) for _ in range(6000))
        junk = junk.replace(b"\n", b"\r\n")
        try:
            c.send(junk + b"\r\n")
            c.send(b"\xff\xfe\xfd\x00\x80\x81\r\n" * 5)
        except OSError:
            pass
        # whatever it answers, it ends up closing (too many errors) or still answers NOOP
        try:
            c.send(b"\r\nNOOP\r\n")
        except OSError:
            pass
        c.closed(timeout=3)
        c.close()
    server_alive(smtpd)
    # 8-bit bytes in an address are refused, not mangled
    c, _ = smtp_session(smtpd)
    c.send("MAIL FROM:<j\u00fcrgen@remote.test>\r\n".encode("utf-8"))
    code, text, _ = c.reply()
    assert 500 <= code < 600, text
    c.send("NOOP\r\n")
    assert c.reply()[0] == 250
    assert stored_messages(smtpd) == {}


BAD_MAIL_FROM = [
    "MAIL FROM:sender@remote.test",
    "MAIL FROM:<sender@remote.test",
    "MAIL FROM:sender@remote.test>",
    "MAIL FROM:<<sender@remote.test>>",
    "MAIL FROM:<sender@@remote.test>",
    "MAIL FROM:<sender@remote..test>",
    "MAIL FROM:<sen der@remote.test>",
    "MAIL FROM:<sender@remote test>",
    "MAIL FROM:<@remote.test>",
    "MAIL FROM:<sender@>",
    "MAIL FROM:<sender@-remote.test>",
    "MAIL FROM:<.sender@remote.test>",
    "MAIL FROM:<\"unbalanced@remote.test>",
    "MAIL FROM:<%s@remote.test>" % ("a" * 65),
    "MAIL FROM:<sender@%s.test>" % ("d" * 64),
    "MAIL FROM:",
    "MAIL FROM",
    "MAIL",
    "MAIL TO:<sender@remote.test>",
    "MAIL FROM:<sender@remote.test> SIZE=abc",
    "MAIL FROM:<sender@remote.test> SIZE=-1",
    "MAIL FROM:<sender@remote.test> SIZE=99999999999999999999999",
    "MAIL FROM:<sender@remote.test> BODY=9BIT",
    "MAIL FROM:<sender@remote.test> =value",
    "MAIL FROM:<sender@remote.test> SIZE=1 SIZE=2",
    "MAIL FROM:<sender@[300.1.1.1]>",
    "MAIL FROM:<sender@[IPv6:zz::1]>",
]


def test_bad_mail_from_syntax(smtpd):
    wrong = []
    for line in BAD_MAIL_FROM:
        c, _ = smtp_session(smtpd)
        c.send(line + "\r\n")
        code, text, _ = c.reply()
        if code != 501:
            wrong.append("%r -> %d %s" % (line, code, text))
        # the session goes on and a correct MAIL is accepted
        c.send("NOOP\r\n")
        code2 = c.reply()[0]
        c.send("MAIL FROM:<%s>\r\n" % SENDER)
        code3, text3, _ = c.reply()
        if code2 != 250 or code3 != 250:
            wrong.append("%r: session broken afterwards (%d, %d %s)" % (line, code2, code3, text3))
        c.close()
    assert not wrong, "\n".join(wrong)


def test_good_mail_from_variants(smtpd):
    good = ["MAIL FROM:<>", "MAIL FROM: <%s>" % SENDER, "mail from:<%s>" % SENDER,
            "MAIL FROM:<\"quoted name\"@remote.test>", "MAIL FROM:<sender@[192.0.2.1]>",
            "MAIL FROM:<sender@[IPv6:2001:db8::1]>", "MAIL FROM:<@relay.test:sender@remote.test>",
            "MAIL FROM:<%s> SIZE=1000 BODY=8BITMIME" % SENDER]
    for line in good:
        c, _ = smtp_session(smtpd)
        c.send(line + "\r\n")
        code, text, _ = c.reply()
        assert code == 250, (line, code, text)
        c.close()


def test_bad_rcpt_syntax(smtpd):
    c, _ = smtp_session(smtpd)
    c.send("MAIL FROM:<%s>\r\n" % SENDER)
    assert c.reply()[0] == 250
    for line in ["RCPT TO:alice@example.test", "RCPT TO:<alice@example.test",
                 "RCPT TO:<>", "RCPT TO:<alice@@example.test>", "RCPT FROM:<alice@example.test>",
                 "RCPT TO:<../../etc/passwd@example.test>"]:
        c.send(line + "\r\n")
        code, text, _ = c.reply()
        assert 500 <= code < 600, (line, code, text)
    c.send("RCPT TO:<%s>\r\n" % ALICE)
    assert c.reply()[0] == 250


LOG_LINE = re.compile(r"^(SYSTEM|\d+\.\d+\.\d+\.\d+|[0-9a-f:]+) \[[0-9A-F]{8}\] "
                      r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4} .+$")


def test_log_injection(smtpd):
    """Control characters from the client must not break or forge log lines."""
    c, _ = smtp_session(smtpd)
    for line in [b"VRFY evil.example\rSYSTEM [00000000] forged",
                 b"NOOP\r127.0.0.1 [00000000] Sat, 01 Jan 2000 00:00:00 +0000 forged line",
                 b"XYZ \x1b[31mred\x1b[0m \x07\x08\x7f",
                 b"MAIL FROM:<a@b.test>\rRCPT TO:<x@y.test>",
                 b"HELP \xc3\xa9\xff\xfe"]:
        c.send(line + b"\r\n")
        code, text, _ = c.reply()
        assert 200 <= code < 600, (line, code, text)
    c.send("QUIT\r\n")
    assert c.reply()[0] == 221
    c.close()
    wait_until(lambda: "Disconnected" in smtpd.log("smtp"))
    raw = b"".join(p.read_bytes() for p in (smtpd.root / "log" / "smtp").glob("*.log"))
    assert b"\x1b" not in raw and b"\x07" not in raw and b"\x08" not in raw
    assert b"\r" not in raw, "a bare CR from the client reached the log"
    for ln in raw.decode(errors="replace").split("\n")[:-1]:
        assert LOG_LINE.match(ln), ln
        assert not ln.startswith("SYSTEM [00000000] forged")
        assert "forged line" not in ln or ln.startswith("127.0.0.1 [") and "<<<" in ln, ln


# ---- clients that vanish -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["DATA", "BDAT"])
def test_disconnect_mid_message(smtpd, mode):
    c, _ = smtp_session(smtpd)
    envelope(c, [ALICE, BOB])
    if mode == "DATA":
        c.send("DATA\r\n")
        assert c.reply()[0] == 354
        c.send(b"Subject: cut short\r\n\r\n" + b"partial line\r\n" * 2000)
    else:
        c.send(b"BDAT 100000 LAST\r\nSubject: cut short\r\n\r\n" + b"partial line\r\n" * 2000)
    time.sleep(0.3)
    c.sock.close()
    assert wait_until(lambda: "during %s" % mode in smtpd.log("smtp")), smtpd.log("smtp")[-2000:]
    assert wait_until(lambda: temp_files(smtpd) == []), temp_files(smtpd)
    assert stored_messages(smtpd) == {}
    server_alive(smtpd)


def test_reset_mid_data(smtpd):
    c, _ = smtp_session(smtpd)
    envelope(c)
    c.send("DATA\r\n")
    assert c.reply()[0] == 354
    c.send(b"Subject: reset\r\n\r\nsome text\r\n")
    # RST instead of FIN
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.sock.close()
    assert wait_until(lambda: "during DATA" in smtpd.log("smtp"))
    assert wait_until(lambda: temp_files(smtpd) == [])
    assert stored_messages(smtpd) == {}
    server_alive(smtpd)


def test_data_trickle_is_cut_at_the_line_deadline(alkaid_root):
    """DataTimeout is a deadline per line: octets trickled without a line end do not
    extend it."""
    alkaid_root.set("SMTP", "DataTimeout", "10")
    alkaid_root.start("smtpd")
    c, _ = smtp_session(alkaid_root)
    c.send("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    assert c.reply()[0] == 250
    assert c.reply()[0] == 250
    assert c.reply()[0] == 354
    start = time.time()
    cut = False
    while time.time() - start < 25:
        try:
            c.send("x")
        except OSError:
            cut = True
            break
        time.sleep(1)
        if c.closed(timeout=0.01):
            cut = True
            break
    elapsed = time.time() - start
    assert cut, "a DATA trickle was not cut off"
    assert elapsed < 16, "cut only after %.1f s with DataTimeout=10" % elapsed
    assert alkaid_root.messages("alice@example.test") == []
