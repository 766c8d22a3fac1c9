"""test_admin_e2e.py - alkaid-admin and alkaid-user --remote against the real controld

The config applet end to end: every operation of docs/admin-protocol.md through the
alkaid-admin binary (not a fake server), checked in the running services or on disk; a
wrong password, an account without the Administrator flag, and a change that takes
effect in a running smtpd.
"""
import json
import os
import subprocess
import time

import pytest

from conftest import BIN, DOMAIN, USERS

ADMIN = "boss@" + DOMAIN
ADMIN_PW = "boss-secret-99"


@pytest.fixture
def site(alkaid_root):
    a = alkaid_root
    a.set("SMTP", "RelayIPs", "127.0.0.1")
    a.user("add", ADMIN, "--password", ADMIN_PW, "--admin")
    a.start("smtpd")
    a.start("pop3imapd")
    a.start("controld")
    return a


def admin(a, *args, user=ADMIN, password=ADMIN_PW, json_out=False, check=True):
    cmd = [str(BIN / "alkaid-admin"), "--host", "127.0.0.1", "--port", str(a.admin_port),
           "--user", user, "--ca", str(a.root / "config" / "tls" / "cert.pem")]
    if json_out:
        cmd.append("--json")
    cmd += list(args)
    env = dict(os.environ, ALKAID_ADMIN_PASSWORD=password)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def test_accounts_and_domains_end_to_end(site):
    a = site
    admin(a, "domain", "add", "other.test")
    assert "other.test" in admin(a, "domain", "list").stdout
    admin(a, "user", "add", "carol@other.test", "--password", "carol-pw-123", "--quota", "5M")
    shown = json.loads(admin(a, "user", "show", "carol@other.test", json_out=True).stdout)
    assert shown["address"] == "carol@other.test" and shown["quota"] == 5 * 1024 * 1024
    # what the local tool sees is the same store
    assert "carol@other.test" in a.user("list", "other.test").stdout
    admin(a, "user", "set", "carol@other.test", "--admin")
    assert json.loads(admin(a, "user", "show", "carol@other.test",
                            json_out=True).stdout)["admin"] is True
    admin(a, "user", "passwd", "carol@other.test", "--password", "carol-pw-456")
    admin(a, "alias", "add", "team@other.test", "carol@other.test", "alice@" + DOMAIN)
    admin(a, "forward", "carol@other.test", "bob@" + DOMAIN, "--keep")
    admin(a, "catchall", "other.test", "carol@other.test")
    listing = admin(a, "user", "list", "other.test").stdout
    assert "team@other.test" in listing
    # mail follows the new alias and forward in the running smtpd
    with a.smtp() as s:
        s.sendmail("x@remote.test", ["team@other.test"], b"Subject: via alias\r\n\r\nhi\r\n")
    deadline = time.time() + 10
    while time.time() < deadline and not a.messages("bob@" + DOMAIN):
        time.sleep(0.1)
    assert any(b"via alias" in m for m in a.messages("bob@" + DOMAIN))
    assert any(b"via alias" in m for m in a.messages("alice@" + DOMAIN))
    admin(a, "catchall", "other.test", "--off")
    admin(a, "forward", "carol@other.test", "--off")
    admin(a, "alias", "del", "team@other.test")
    admin(a, "user", "del", "carol@other.test")
    assert "carol@other.test" not in a.user("list").stdout
    r = admin(a, "user", "show", "carol@other.test", check=False)
    assert r.returncode == 1 and "alkaid-admin:" in r.stderr
    admin(a, "domain", "del", "other.test")
    assert "other.test" not in admin(a, "domain", "list").stdout


def test_config_change_takes_effect_in_running_smtpd(site):
    a = site
    admin(a, "config", "set", "SMTP", "Banner", "Managed remotely")
    raw = a.raw(a.smtp_port)
    code, text, _ = raw.reply()
    assert code == 220 and "Managed remotely" in text, text
    got = json.loads(admin(a, "config", "get", "SMTP", "Banner", json_out=True).stdout)
    assert got["settings"][0]["value"] == "Managed remotely"
    r = admin(a, "config", "set", "SMTP", "Port", "99999", check=False)
    assert r.returncode == 1 and "[SMTP] Port" in r.stderr, r.stderr
    assert "Port=99999" not in (a.root / "config" / "alkaid.ini").read_text()
    # files and programs are set on the machine only; secrets are not shown back
    r = admin(a, "config", "set", "Directories", "Mail", "/tmp/elsewhere", check=False)
    assert r.returncode == 1 and "DENIED" in r.stderr and "[Directories] Mail" in r.stderr
    admin(a, "config", "set", "SMTP", "SmarthostPassword", "pw-not-shown-1")
    out = admin(a, "config", "get", "SMTP", "SmarthostPassword").stdout
    assert "****" in out and "pw-not-shown-1" not in out, out


def test_queue_status_reload_log_end_to_end(site):
    a = site  # conftest holds the queue ([Queue] Hold=1): remote mail waits
    with a.smtp() as s:
        s.sendmail("alice@" + DOMAIN, ["far@remote.test"], b"Subject: q\r\n\r\nq\r\n")
    msgs = json.loads(admin(a, "queue", "list", json_out=True).stdout)["messages"]
    assert len(msgs) == 1 and msgs[0]["recipients"] == ["far@remote.test"]
    qid = msgs[0]["id"]
    assert "Subject: q" in admin(a, "queue", "show", qid).stdout
    admin(a, "queue", "hold", qid)
    assert (a.root / "mail" / "FORWARD" / (qid + ".hold")).exists()
    admin(a, "queue", "release", qid)
    assert (a.root / "mail" / "FORWARD" / (qid + ".tmp")).exists()
    admin(a, "queue", "delete", qid)
    assert not list((a.root / "mail" / "FORWARD").glob(qid + ".*"))
    st = json.loads(admin(a, "status", json_out=True).stdout)["services"]
    assert st["smtpd"]["service"] == "smtpd" and st["pop3imapd"]["service"] == "pop3imapd"
    assert st["controld"]["admin"]["sessions"] >= 1
    out = admin(a, "reload").stdout
    assert "smtpd" in out and "OK reloaded" in out
    log = admin(a, "log", "control", "50").stdout
    assert ADMIN in log and "QUEUE DELETE" in log.upper()
    assert ADMIN_PW not in log
    today = time.strftime("%Y%m%d")
    day_log = admin(a, "log", "control", "50", today).stdout
    assert "QUEUE DELETE" in day_log.upper() and ADMIN_PW not in day_log
    r = admin(a, "log", "control", "5", "19990101", check=False)
    assert r.returncode == 1 and "NOTFOUND" in r.stderr, (r.returncode, r.stderr)
    snap = admin(a, "top", "--count", "1").stdout
    assert "smtpd" in snap and "Queue" in snap


def test_wrong_password_and_non_admin(site):
    a = site
    r = admin(a, "domain", "list", password="nope-nope", check=False)
    assert r.returncode == 3, (r.returncode, r.stderr)
    alice = "alice@" + DOMAIN
    r = admin(a, "domain", "list", user=alice, password=USERS[alice], check=False)
    assert r.returncode == 3 and "alkaid-admin:" in r.stderr, (r.returncode, r.stderr)


def test_lockout_through_alkaid_admin(alkaid_root):
    """Wrong passwords through the real client: slowed, then the address is locked out
    and even the right password is refused (exit 3, LOCKED) until the lock expires."""
    a = alkaid_root
    a.set("Security", "AuthFailDelayAfter", "2")
    a.set("Security", "AuthFailLockAfter", "3")
    a.set("Security", "AuthFailLockTime", "60")
    a.user("add", ADMIN, "--password", ADMIN_PW, "--admin")
    a.start("controld")
    for i in range(3):
        r = admin(a, "status", password="wrong-%d" % i, check=False)
        assert r.returncode == 3 and "AUTH" in r.stderr, (r.returncode, r.stderr)
    r = admin(a, "status", check=False)
    assert r.returncode == 3 and "LOCKED" in r.stderr, (r.returncode, r.stderr)
    assert "locked out" in a.log("control")


def test_user_remote_mode(site):
    a = site
    base = [str(BIN / "alkaid-user"), "--remote", "127.0.0.1:%d" % a.admin_port,
            "--admin-user", ADMIN, "--ca", str(a.root / "config" / "tls" / "cert.pem")]
    env = dict(os.environ, ALKAID_ADMIN_PASSWORD=ADMIN_PW)
    r = subprocess.run(base + ["add", "dave@" + DOMAIN, "--password", "dave-pw-123"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert "dave@" + DOMAIN in a.user("list").stdout
    r = subprocess.run(base + ["del", "dave@" + DOMAIN], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert "dave@" + DOMAIN not in a.user("list").stdout


def test_etrn_domain_through_the_admin_port(site):
    a = site
    admin(a, "domain", "add", "dialsite.test")  # a local one, for comparison
    base = [str(BIN / "alkaid-user"), "--remote", "127.0.0.1:%d" % a.admin_port,
            "--admin-user", ADMIN, "--ca", str(a.root / "config" / "tls" / "cert.pem")]
    env = dict(os.environ, ALKAID_ADMIN_PASSWORD=ADMIN_PW)
    r = subprocess.run(base + ["domain", "add", "queued.test", "--etrn"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    types = json.loads(admin(a, "domain", "list", json_out=True).stdout)["types"]
    assert types["queued.test"] == "etrn" and types["dialsite.test"] == "local", types
    # the local tool sees the same type, and no mailbox directory was made for it
    line = [ln for ln in a.user("domain", "list").stdout.splitlines() if "queued.test" in ln]
    assert line and "etrn" in line[0], line
    # and the remote tool prints what the local one does
    admin(a, "catchall", "dialsite.test", "postmaster@" + DOMAIN)
    r = subprocess.run(base + ["domain", "list"], capture_output=True, text=True, timeout=60,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == a.user("domain", "list").stdout, r.stdout
    assert admin(a, "domain", "list").stdout == r.stdout
    assert not (a.root / "mail" / "queued.test").exists()
    assert "DOMAIN ADD queued.test ETRN" in a.log("control")


# ---- top on a terminal -----------------------------------------------------------------

def _top_on_pty(a):
    """alkaid-admin top started on a new pseudo-terminal that is its controlling
    terminal; returns (process, master fd, slave fd, terminal attributes before)."""
    import fcntl
    import pty
    import termios
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    cmd = [str(BIN / "alkaid-admin"), "--host", "127.0.0.1", "--port", str(a.admin_port),
           "--user", ADMIN, "--ca", str(a.root / "config" / "tls" / "cert.pem"), "top"]
    env = dict(os.environ, ALKAID_ADMIN_PASSWORD=ADMIN_PW, TERM="xterm")

    def child_setup():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env,
                         preexec_fn=child_setup)
    return p, master, slave, before


def _read_pty(master, until, timeout=15.0):
    import select
    out = b""
    end = time.time() + timeout
    while time.time() < end and not until(out):
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def _close_pty(p, master, slave):
    if p.poll() is None:
        p.kill()
        p.wait(10)
    os.close(master)
    os.close(slave)


@pytest.mark.parametrize("key", [b"q", b"Q"])
def test_top_on_a_terminal_refreshes_and_quits_on_q(site, key):
    import termios
    a = site
    p, master, slave, before = _top_on_pty(a)
    try:
        # a frame a second: wait for the third, so rates (per second) are shown
        out = _read_pty(master, lambda o: o.count(b"delivery held:") >= 3 and
                        o.endswith(b"\n"))
        assert out.count(b"Alkaid System Overview") >= 3, out
        assert b"(q quits)" in out and b"\033[?25l" in out and b"\033[H\033[2J" in out
        frame = out.rsplit(b"\033[H\033[2J", 1)[1].decode()
        for word in ["smtpd", "pop3imapd", "controld", "running", "SMTP", "IMAP", "POP3",
                     "Messages in", "Queue:"]:
            assert word in frame, (word, frame)
        # raw mode while it runs: no echo, no line buffering
        during = termios.tcgetattr(slave)
        assert not during[3] & (termios.ICANON | termios.ECHO)
        # the admin session is one of the live ones it shows
        admin_line = [ln for ln in frame.splitlines() if ln.startswith("admin")]
        assert admin_line and admin_line[0].split()[1] != "0", frame
        assert admin_line[0].split()[2] != "-", frame   # its bytes are counted too
        os.write(master, key)
        assert p.wait(5) == 0
        tail = _read_pty(master, lambda o: b"\033[?25h" in o, timeout=3)
        assert b"\033[?25h" in tail, tail   # the cursor is shown again
        after = termios.tcgetattr(slave)
        assert after[3] == before[3], "local modes not restored"
        assert after[6] == before[6], "control characters not restored"
    finally:
        _close_pty(p, master, slave)


def test_top_interrupted_or_server_gone_restores_the_terminal(site):
    import termios
    a = site
    # Ctrl-C: the terminal's interrupt character, sent through the pty
    p, master, slave, before = _top_on_pty(a)
    try:
        _read_pty(master, lambda o: b"Alkaid System Overview" in o)
        os.write(master, b"\x03")
        rc = p.wait(5)
        assert rc == -2, rc   # it dies of SIGINT, as a well-behaved tool does
        assert termios.tcgetattr(slave)[3] == before[3]
    finally:
        _close_pty(p, master, slave)
    # the server goes away while top runs: an error, exit 75, the terminal restored
    p, master, slave, before = _top_on_pty(a)
    try:
        _read_pty(master, lambda o: b"Alkaid System Overview" in o)
        a.stop("controld")
        rc = p.wait(10)
        assert rc == 75, rc
        out = _read_pty(master, lambda o: b"alkaid-admin:" in o, timeout=3)
        assert b"alkaid-admin:" in out, out
        assert termios.tcgetattr(slave)[3] == before[3]
    finally:
        _close_pty(p, master, slave)


def test_top_suspended_with_ctrl_z_gives_the_terminal_back(site):
    """Under an interactive shell with job control: ^Z stops top with the terminal in
    its normal modes (the shell's stty sees icanon and echo), fg resumes the display,
    and q ends it with the terminal as it was."""
    import pty
    import select
    a = site
    pid, fd = pty.fork()
    if pid == 0:  # the child: an interactive bash on the new terminal
        os.environ.update(PS1="PROMPT$ ", TERM="xterm", ALKAID_ADMIN_PASSWORD=ADMIN_PW)
        os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])

    buf = [b""]

    def wait_for(pred, timeout=10.0):
        end = time.time() + timeout
        while time.time() < end and not pred(buf[0]):
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    buf[0] += os.read(fd, 65536)
                except OSError:
                    break
        ok = pred(buf[0])
        seen, buf[0] = buf[0], b""
        assert ok, seen[-2000:]
        return seen

    modes = (b"echo \"M=[$(stty -a | tr ' ;' '\\n\\n' | grep -x -- '-\\?\\(icanon\\|echo\\)'"
             b" | tr '\\n' ' ')]\"\n")
    normal = b"M=[icanon echo ]"
    try:
        wait_for(lambda o: o.rstrip().endswith(b"PROMPT$"))
        cmd = "%s --host 127.0.0.1 --port %d --user %s --ca %s top\n" % (
            BIN / "alkaid-admin", a.admin_port, ADMIN, a.root / "config" / "tls" / "cert.pem")
        os.write(fd, cmd.encode())
        wait_for(lambda o: o.count(b"delivery held:") >= 2)
        os.write(fd, b"\x1a")
        wait_for(lambda o: b"Stopped" in o and o.rstrip().endswith(b"PROMPT$"))
        os.write(fd, modes)
        wait_for(lambda o: normal in o)
        os.write(fd, b"fg\n")
        wait_for(lambda o: o.count(b"delivery held:") >= 2)
        os.write(fd, b"q")
        wait_for(lambda o: b"\033[?25h" in o and o.rstrip().endswith(b"PROMPT$"))
        os.write(fd, modes)
        wait_for(lambda o: normal in o)
        os.write(fd, b"exit\n")
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
