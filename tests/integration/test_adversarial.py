"""Adversarial tests: problems found by an outside review, each reproduced against the
real daemons. Every test here describes behaviour the documentation (docs/*.md) or the
RFCs promise; they fail against the code as reviewed and pass once it is fixed.
"""
import base64
import os
import shutil
import socket
import subprocess
import threading
import time

from conftest import BIN, USERS, client_tls_context, smtp_session

ALICE, BOB = "alice@example.test", "bob@example.test"


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def smtps(alkaid):
    """A RawClient on the implicit-TLS port, past the greeting and EHLO."""
    c = alkaid.raw(alkaid.smtps_port)
    c.sock = client_tls_context().wrap_socket(c.sock)
    code, text, _ = c.reply()
    assert code == 220, text
    c.send("EHLO client.example.test\r\n")
    code, _, lines = c.reply()
    assert code == 250, lines
    return c


def pop3s(alkaid):
    """A RawClient on the POP3 implicit-TLS port, past the greeting."""
    c = alkaid.raw(alkaid.pop3s_port)
    c.sock = client_tls_context().wrap_socket(c.sock)
    assert c.line().startswith("+OK")
    return c


def smtp_auth_plain(alkaid, user, password):
    """One AUTH PLAIN in a fresh SMTPS session; returns the reply code."""
    c = smtps(alkaid)
    try:
        c.send("AUTH PLAIN %s\r\n" % b64("\0%s\0%s" % (user, password)))
        return c.reply()[0]
    finally:
        c.close()


def lockout_settings(alkaid, after=3):
    alkaid.set("Security", "AuthFailDelayAfter", str(after))
    alkaid.set("Security", "AuthFailLockAfter", str(after))
    alkaid.set("Security", "AuthFailLockTime", "600")


# ---- password guessing ------------------------------------------------------------------

def test_successful_login_to_another_account_does_not_reset_lockout(alkaid_root):
    """docs/security.md: after AuthFailLockAfter failures within AuthFailLockTime the
    address may not authenticate. An attacker who owns any account (bob) logs in to it
    between guesses at alice's password: authfail_success() forgets every failure of the
    address, so the guessing is never slowed nor locked out."""
    a = alkaid_root
    lockout_settings(a, 3)
    a.start("smtpd")
    guesses = []
    for rnd in range(4):
        guesses.append(smtp_auth_plain(a, ALICE, "guess-%d-a" % rnd))
        guesses.append(smtp_auth_plain(a, ALICE, "guess-%d-b" % rnd))
        smtp_auth_plain(a, BOB, USERS[BOB])  # the attacker's own account
    verified = guesses.count(535)
    assert verified <= 3, (
        "%d wrong passwords for %s were checked from one address although "
        "AuthFailLockAfter=3: %r" % (verified, ALICE, guesses))


def test_smtp_auth_exchange_opened_before_lockout_is_refused_after_it(alkaid_root):
    """Exchanges held open at the password prompt cannot beat the lock-out: with
    AuthFailLockAfter=3 only three exchanges may be in flight at once; the fourth and
    fifth wait for a slot, and once the three have failed the address is locked out, so
    the waiting ones are refused (421) and the right password is never checked."""
    a = alkaid_root
    lockout_settings(a, 3)
    a.start("smtpd")
    prompts = []
    for _ in range(3):
        c = smtps(a)
        c.send("AUTH LOGIN\r\n")
        assert c.reply()[0] == 334
        c.send(b64(ALICE) + "\r\n")
        assert c.reply()[0] == 334  # "Password:"
        prompts.append(c)
    waiting = []
    for _ in range(2):
        c = smtps(a)
        c.send("AUTH LOGIN\r\n")
        waiting.append(c)
    time.sleep(0.5)
    for c in waiting:  # no slot: no prompt yet
        c.sock.settimeout(0.2)
        try:
            assert c.sock.recv(100) == b"", "an exchange past the limit got a prompt"
        except (socket.timeout, TimeoutError):
            pass
        c.sock.settimeout(10)
    codes = []
    for i, c in enumerate(prompts):
        c.send(b64("wrong-%d" % i) + "\r\n")
        codes.append(c.reply()[0])
    assert codes == [535, 535, 535], codes
    for c in waiting:  # locked out now: refused without a prompt
        assert c.reply()[0] == 421
    assert smtp_auth_plain(a, ALICE, USERS[ALICE]) == 421


def test_pop3_auth_exchange_opened_before_lockout_is_refused_after_it(alkaid_root):
    """The same for POP3 AUTH LOGIN (docs/pop3.md: a locked-out address gets -ERR
    [SYS/TEMP] before any password is checked)."""
    a = alkaid_root
    lockout_settings(a, 3)
    a.start("pop3imapd")
    prompts = []
    for _ in range(3):
        c = pop3s(a)
        c.send("AUTH LOGIN\r\n")
        assert c.line().startswith("+ ")
        c.send(b64(ALICE) + "\r\n")
        assert c.line().startswith("+ ")
        prompts.append(c)
    waiting = []
    for _ in range(2):
        c = pop3s(a)
        c.send("AUTH LOGIN\r\n")
        waiting.append(c)
    replies = []
    for i, c in enumerate(prompts):
        c.send(b64("wrong-%d" % i) + "\r\n")
        replies.append(c.line())
    assert all(r.startswith("-ERR [AUTH]") for r in replies), replies
    for c in waiting:
        assert c.line().startswith("-ERR [SYS/TEMP]")
    c = pop3s(a)
    c.send("AUTH PLAIN %s\r\n" % b64("\0%s\0%s" % (ALICE, USERS[ALICE])))
    assert c.line().startswith("-ERR [SYS/TEMP]")


def test_concurrent_auth_attempts_do_not_exceed_the_lock_limit(alkaid_root):
    """Guesses sent at the same moment on parallel connections all pass the lock-out
    check before any failure is counted, so one address gets MaxSessionsPerIP guesses
    instead of AuthFailLockAfter."""
    a = alkaid_root
    lockout_settings(a, 5)
    # a slow hash (as in production, where it is 10000+ iterations on a loaded machine)
    # keeps the window between the lock-out check and the failure count open
    a.set("Security", "PasswordIterations", "100000")
    a.user("passwd", ALICE, "--password", USERS[ALICE])
    a.start("smtpd")
    n = 8
    conns = [smtps(a) for _ in range(n)]
    barrier = threading.Barrier(n)
    codes = [None] * n

    def guess(i):
        line = ("AUTH PLAIN %s\r\n" % b64("\0%s\0parallel-%d" % (ALICE, i))).encode()
        barrier.wait()
        conns[i].sock.sendall(line)
        codes[i] = conns[i].reply()[0]

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    verified = codes.count(535)
    assert verified <= 5, "%d parallel guesses were checked (AuthFailLockAfter=5): %r" % (
        verified, codes)


def test_lockout_applies_to_every_service(alkaid_root):
    """config.md: after AuthFailLockAfter failures the address 'may not authenticate at
    all'. The failure table lives in each process, so failures on POP3 do not count for
    SMTP (and the reverse): an attacker gets the limit once per service."""
    a = alkaid_root
    lockout_settings(a, 3)
    a.start("smtpd")
    a.start("pop3imapd")
    for i in range(3):
        c = pop3s(a)
        c.send("USER %s\r\nPASS pop-guess-%d\r\n" % (ALICE, i))
        c.line()
        assert c.line().startswith("-ERR")
        c.close()
    c = pop3s(a)
    c.send("USER %s\r\nPASS another\r\n" % ALICE)
    c.line()
    assert c.line().startswith("-ERR [SYS/TEMP]")  # POP3 is locked now
    code = smtp_auth_plain(a, ALICE, "smtp-guess")
    assert code != 535, "SMTP still checked a password from the locked-out address"


# ---- user enumeration through SCRAM ------------------------------------------------------

def scram_first(client, smtp, user):
    """The server-first-message's salt and iteration count for user."""
    msg = b64("n,,n=%s,r=clientnonce" % user)
    client.send("AUTH SCRAM-SHA-256 %s\r\n" % msg)
    if smtp:
        code, text, _ = client.reply()
        assert code == 334, text
    else:
        line = client.line()
        assert line.startswith("+ "), line
        text = line[2:]
    attrs = dict(kv.split("=", 1) for kv in base64.b64decode(text).decode().split(","))
    client.send("*\r\n")
    if smtp:
        client.reply()
    else:
        client.line()
    return attrs["s"], attrs["i"]


def test_scram_iteration_count_does_not_reveal_unknown_users(alkaid):
    """security.md: an unknown user and a wrong password look the same; SCRAM offers
    unknown users a fake salt. Until a real account has been looked up, a fresh process
    offers unknown users i=10000 (the compiled-in default) while real accounts answer
    with the count they were hashed with ([Security] PasswordIterations)."""
    c = pop3s(alkaid)
    _, i_unknown = scram_first(c, False, "nobody@example.test")
    _, i_real = scram_first(c, False, ALICE)
    assert i_unknown == i_real, "unknown user i=%s, real user i=%s" % (i_unknown, i_real)


def test_scram_fake_salt_is_the_same_on_every_service(alkaid):
    """A real account has one salt everywhere; the fake salt of an unknown user comes
    from a random key made per process, so asking SMTP and POP3 (or one service before
    and after a restart) for the same name tells whether the account exists."""
    s, p = smtps(alkaid), pop3s(alkaid)
    real = scram_first(s, True, ALICE), scram_first(p, False, ALICE)
    assert real[0] == real[1]
    fake = scram_first(s, True, "nobody@example.test"), scram_first(p, False,
                                                                     "nobody@example.test")
    assert fake[0] == fake[1], "unknown user: SMTP salt %s, POP3 salt %s (a real user has " \
                               "the same salt on both)" % (fake[0][0], fake[1][0])


# ---- secrets in the logs -------------------------------------------------------------

def test_pipelined_auth_responses_are_not_logged(alkaid):
    """security.md: passwords and AUTH data are never logged. A client that pipelines
    its AUTH LOGIN responses gets 538 (no TLS): what it pipelined behind the refused AUTH
    is thrown away (RFC 4954 4), so the base64 password is neither run nor logged as a
    command; lines that are not commands are logged only by length and first octets
    (POP3 ' PASS secret' with a leading space, SMTP 'AUTH<TAB>PLAIN ...')."""
    a = alkaid
    c, _ = smtp_session(a)
    secret = "Pipelined-Secret-77"
    c.send("AUTH LOGIN\r\n%s\r\n%s\r\n" % (b64(ALICE), b64(secret)))
    assert c.reply()[0] == 538
    c.send("NOOP\r\n")
    assert c.reply()[0] == 250  # nothing else was answered in between
    c.send("AUTH\tPLAIN %s\r\n" % b64("\0%s\0%s" % (ALICE, secret)))
    c.reply()
    c.send("QUIT\r\n")
    c.reply()
    p = a.raw(a.pop3_port)
    p.line()
    p.send(" PASS %s\r\nQUIT\r\n" % secret)
    p.line()
    p.line()
    time.sleep(0.3)
    logs = a.log("smtp") + a.log("pop3")
    leaked = [ln for ln in logs.splitlines()
              if secret in ln or b64(secret) in ln or
              b64("\0%s\0%s" % (ALICE, secret)) in ln]
    assert not leaked, "secrets in the logs:\n" + "\n".join(leaked)


# ---- configuration and the file system ---------------------------------------------------

def test_temp_cleanup_does_not_destroy_other_files(alkaid_root):
    """storage.md: smtpd empties Temp at start because nothing in it was acknowledged.
    spool_clean_temp() unlinks every file there, not only its own <id>.tmp files, and
    nothing stops Temp from naming a directory that holds other data: with Temp=config
    (or /tmp, or mail/FORWARD) starting smtpd deletes alkaid.ini and the account
    database (which is then recreated empty)."""
    a = alkaid_root
    db = (a.root / "config" / "accounts.db").read_bytes()
    a.set("Directories", "Temp", "config")
    p = a.start("smtpd", wait=False)
    assert p.wait(20) != 0, "smtpd started with Temp pointing at config/"
    err = (a.root / "smtpd.stderr").read_text()
    assert "[Directories] Temp" in err, err
    assert (a.root / "config" / "alkaid.ini").exists(), "smtpd deleted config/alkaid.ini"
    assert (a.root / "config" / "accounts.db").read_bytes() == db
    # and where Temp is a directory of its own, other files in it survive the start
    a.set("Directories", "Temp", "scratch")
    scratch = a.root / "scratch"
    scratch.mkdir()
    (scratch / "notes.txt").write_text("keep me")
    (scratch / "1795303806.M1P1Q1.old-host.tmp").write_text("stale")
    a.procs.pop("smtpd", None)
    a.start("smtpd")
    a.stop_all()
    assert (scratch / "notes.txt").read_text() == "keep me"
    assert not (scratch / "1795303806.M1P1Q1.old-host.tmp").exists()


def test_ini_that_is_a_directory_is_reported(alkaid_root):
    """config.md: a file that cannot be read is an error naming the file. When
    config/alkaid.ini is a directory, iniparser reads nothing and every program runs
    silently with the compiled-in defaults (smtpd on 0.0.0.0 ports 25/587/465)."""
    a = alkaid_root
    ini = a.root / "config" / "alkaid.ini"
    ini.unlink()
    ini.mkdir()
    r = subprocess.run([str(BIN / "alkaid-user"), "--root", str(a.root), "domain", "list"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "alkaid.ini" in r.stderr, (r.returncode, r.stdout, r.stderr)
    r = subprocess.run([str(BIN / "alkaid-smtpd"), "--root", str(a.root), "--ctl", "STATUS"],
                       capture_output=True, text=True, timeout=30)
    assert "alkaid.ini" in r.stderr, r.stderr


def test_reload_does_not_move_the_mail_directory(alkaid):
    """config.md: changes to [Directories] take effect at the next restart. smtpd
    sessions read the reloaded configuration, so after RELOAD new mail goes to the new
    Mail directory while pop3imapd (and the running smtpd's queue) still use the old."""
    a = alkaid
    a.set("Directories", "Mail", "mail-elsewhere")
    r = a.ctl("smtpd", "RELOAD")
    assert r.returncode == 0, r.stdout + r.stderr
    s = a.smtp()
    s.sendmail("x@remote.test", [ALICE], "Subject: after reload\r\n\r\nbody\r\n")
    s.quit()
    assert len(a.messages(ALICE)) == 1, "delivered to %s" % sorted(
        str(p.relative_to(a.root)) for p in a.root.rglob("*.eml"))


def test_stale_part_files_are_judged_by_ctime(alkaid):
    """storage.md: readers remove hidden .part work files left by a crash once they are
    older than 36 hours (mailbox_clean(), called at every POP3 login and unit-tested with
    a shifted clock). The age is the ctime: an IMAP APPEND sets its work file's mtime to
    the message's (possibly old) internal date while it is still being written, and a
    POP3 login at that moment must not delete it."""
    a = alkaid
    s = a.smtp()
    s.sendmail("x@remote.test", [ALICE], "Subject: x\r\n\r\nbody\r\n")
    s.quit()
    work = a.mailbox_dir(ALICE) / ".1700000000.M1P1Q1.appending.part"
    work.write_bytes(b"half a message")
    old = time.time() - 40 * 3600
    os.utime(work, (old, old))
    c = pop3s(a)
    c.send("USER %s\r\nPASS %s\r\nSTAT\r\nQUIT\r\n" % (ALICE, USERS[ALICE]))
    for _ in range(4):
        c.line()
    assert work.exists(), "a fresh work file with an old mtime was deleted at login"


def test_removed_temp_directory_is_recreated(alkaid):
    """temp/ removed while smtpd runs (an administrator's clean-up, a tmp reaper): every
    later message gets 451 until a restart, although mailbox directories are created on
    demand and make_dirs() knows how to create temp/."""
    a = alkaid
    shutil.rmtree(a.root / "temp")
    c, _ = smtp_session(a)
    c.send("MAIL FROM:<x@remote.test>\r\nRCPT TO:<%s>\r\nDATA\r\n" % ALICE)
    assert c.reply()[0] == 250
    assert c.reply()[0] == 250
    code, text, _ = c.reply()
    if code == 354:
        c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
        code, text, _ = c.reply()
    assert code == 250, "%d %s" % (code, text)


# ---- standards -------------------------------------------------------------------------

def test_postmaster_of_a_served_domain_is_accepted(alkaid):
    """RFC 5321 4.5.1: RCPT commands for postmaster at any domain the server provides mail
    service for, and "RCPT TO:<Postmaster>", MUST be supported. A freshly added domain
    has no postmaster account, and both are refused with 550 User unknown."""
    c, _ = smtp_session(alkaid)
    c.send("MAIL FROM:<x@remote.test>\r\n")
    assert c.reply()[0] == 250
    for rcpt in ("postmaster@example.test", "Postmaster"):
        c.send("RCPT TO:<%s>\r\n" % rcpt)
        code, text, _ = c.reply()
        assert code == 250, "RCPT TO:<%s>: %d %s" % (rcpt, code, text)


def test_mail_from_with_size_and_auth_parameters_is_not_too_long(alkaid):
    """RFC 1870 and RFC 4954 each lengthen the MAIL FROM line (by 26 and by 500 octets)
    for the SIZE and AUTH parameters this server announces; a legal MAIL FROM with a long
    address, SIZE= and AUTH= is refused as a 'line too long' at 512 octets."""
    addr = "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".test"
    line = "MAIL FROM:<%s> SIZE=1000 AUTH=%s\r\n" % (addr, addr)
    assert 512 < len(line) <= 512 + 26 + 500
    c, _ = smtp_session(alkaid)
    c.send(line)
    code, text, _ = c.reply()
    assert code == 250, "%d %s" % (code, text)
