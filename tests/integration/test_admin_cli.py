"""alkaid-admin and alkaid-user --remote against a fake admin port (fake_admin.py).

Each test checks the exact request line the client sent, what it prints, and its exit
code.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import free_port
from fake_admin import ADMIN, NOT_ADMIN, PASSWORD, FakeAdmin

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("ALKAID_BIN", REPO / "build" / "bin"))
ADMIN_TOOL = BIN_DIR / "alkaid-admin"
USER_TOOL = BIN_DIR / "alkaid-user"


@pytest.fixture
def fake(tmp_path):
    if not ADMIN_TOOL.exists():
        pytest.fail(f"{ADMIN_TOOL} is not built")
    f = FakeAdmin(tmp_path)
    yield f
    f.stop()


def admin(fake, *args, password=PASSWORD, tls=None, user=ADMIN, input=None, env=None,
          port=None):
    argv = [str(ADMIN_TOOL), "--host", "127.0.0.1", "--port", str(port or fake.port),
            "--user", user, "--timeout", "10"]
    argv += tls if tls is not None else ["--ca", str(fake.cert)]
    e = {k: v for k, v in os.environ.items() if k != "ALKAID_ADMIN_PASSWORD"}
    if password is not None:
        e["ALKAID_ADMIN_PASSWORD"] = password
    e.update(env or {})
    return subprocess.run(argv + list(args), capture_output=True, text=True, env=e,
                          input=input if input is not None else "", timeout=60)


def ok(fake, *args, **kw):
    r = admin(fake, *args, **kw)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r


def last(fake):
    return fake.commands()[-1]


def test_login_and_quoting(fake):
    r = ok(fake, "domain", "list")
    assert r.stdout.split() == ["example.test", "0", "-", "local"], r.stdout
    # the password has a space and a quote: sent as a quoted string
    assert fake.lines[0] == 'LOGIN admin@example.test "admin secret \\"1\\""'
    assert fake.lines[-1] == "QUIT"
    assert last(fake) == "DOMAIN LIST"


def test_password_option_and_wrong_password(fake):
    r = admin(fake, "--password", PASSWORD, "domain", "list", password=None)
    assert r.returncode == 0, r.stderr
    r = admin(fake, "domain", "list", password="wrong")
    assert r.returncode == 3
    assert r.stderr.startswith("alkaid-admin: ") and "AUTH" in r.stderr
    r = admin(fake, "domain", "list", user=NOT_ADMIN)
    assert r.returncode == 3 and "DENIED" in r.stderr
    r = admin(fake, "domain", "list", password=None)
    assert r.returncode == 2 and "no password" in r.stderr


def test_domain_commands(fake):
    r = ok(fake, "domain", "add", "new.test")
    assert last(fake) == "DOMAIN ADD new.test" and r.stdout == "added domain new.test\n"
    r = ok(fake, "domain", "del", "new.test", "--force")
    assert last(fake) == "DOMAIN DEL new.test FORCE" and "deleted domain new.test" in r.stdout
    r = admin(fake, "domain", "del", "nope.test")
    assert r.returncode == 1
    assert r.stderr.startswith("alkaid-admin: no such domain: nope.test")
    r = admin(fake, "domain", "add", "example.test")
    assert r.returncode == 1 and "already exists" in r.stderr


def test_user_commands(fake):
    r = ok(fake, "user", "list")
    assert last(fake) == "USER LIST"
    assert "alice@example.test" in r.stdout and "2G" in r.stdout
    ok(fake, "user", "list", "example.test")
    assert last(fake) == "USER LIST example.test"
    r = ok(fake, "user", "show", "alice@example.test")
    assert last(fake) == "USER SHOW alice@example.test"
    assert "address: alice@example.test\n" in r.stdout and "quota: 2G\n" in r.stdout
    assert "size: 1234 bytes" in r.stdout
    r = ok(fake, "user", "add", "carol@example.test", "--password", "pw with space",
           "--admin", "--quota", "500M")
    assert last(fake) == 'USER ADD carol@example.test "pw with space" ADMIN QUOTA 500M'
    assert r.stdout == "added user carol@example.test\n"
    # the new password from stdin when not on a terminal
    ok(fake, "user", "passwd", "carol@example.test", input="new-pass\n")
    assert last(fake) == "USER PASSWD carol@example.test new-pass"
    ok(fake, "user", "set", "carol@example.test", "--no-admin", "--quota", "1G")
    assert last(fake) == "USER SET carol@example.test NOADMIN QUOTA 1G"
    ok(fake, "user", "del", "carol@example.test", "--purge")
    assert last(fake) == "USER DEL carol@example.test PURGE"
    r = admin(fake, "user", "set", "alice@example.test")
    assert r.returncode == 2
    r = admin(fake, "user", "show", "zed@example.test")
    assert r.returncode == 1 and "no such account" in r.stderr


def test_alias_forward_catchall(fake):
    ok(fake, "alias", "add", "team@example.test", "alice", "bob@example.test")
    assert last(fake) == "ALIAS ADD team@example.test alice bob@example.test"
    ok(fake, "alias", "del", "team@example.test", "alice")
    assert last(fake) == "ALIAS DEL team@example.test alice"
    ok(fake, "alias", "del", "team@example.test")
    assert last(fake) == "ALIAS DEL team@example.test"
    r = ok(fake, "forward", "alice@example.test", "a@remote.test", "--keep")
    assert last(fake) == "FORWARD alice@example.test a@remote.test KEEP"
    assert "keeping a copy" in r.stdout
    ok(fake, "forward", "alice@example.test", "--off")
    assert last(fake) == "FORWARD alice@example.test OFF"
    ok(fake, "catchall", "example.test", "null")
    assert last(fake) == "CATCHALL example.test null"
    ok(fake, "catchall", "example.test", "--off")
    assert last(fake) == "CATCHALL example.test OFF"
    assert admin(fake, "forward", "alice@example.test").returncode == 2


def test_queue_commands(fake):
    r = ok(fake, "queue", "list")
    assert last(fake) == "QUEUE LIST"
    assert "1700000000.ab12" in r.stdout and "<y@remote.test>: 451 try later" in r.stdout
    assert r.stdout.endswith("1 message.\n")
    r = ok(fake, "queue", "show", "1700000000.ab12")
    assert last(fake) == "QUEUE SHOW 1700000000.ab12"
    assert "State: held" in r.stdout and "Subject: hi\n" in r.stdout
    for op in ("retry", "delete", "hold", "release"):
        ok(fake, "queue", op, "1700000000.ab12")
        assert last(fake) == "QUEUE %s 1700000000.ab12" % op.upper()
    ok(fake, "queue", "retry", "--all")
    assert last(fake) == "QUEUE RETRY ALL"
    assert admin(fake, "queue", "retry").returncode == 2


def test_config_status_reload_restart_log(fake):
    r = ok(fake, "config", "get", "SMTP")
    assert last(fake) == "CONFIG GET SMTP"
    assert "[SMTP] Port = 2525   (default: 25)\n" in r.stdout
    assert "[SMTP] MaxSize = 50M\n" in r.stdout
    r = ok(fake, "config", "set", "SMTP", "Banner", 'Hello "world" \\ ok')
    assert last(fake) == 'CONFIG SET SMTP Banner "Hello \\"world\\" \\\\ ok"'
    assert "smtpd: OK reloaded" in r.stdout
    r = ok(fake, "status")
    assert last(fake) == "STATUS"
    assert "smtpd: running, pid 101" in r.stdout and "controld: not running" in r.stdout
    r = ok(fake, "reload", "smtpd")
    assert last(fake) == "RELOAD smtpd" and "smtpd: OK reloaded" in r.stdout
    r = ok(fake, "restart", "pop3imapd")
    assert last(fake) == "RESTART pop3imapd" and r.stdout == "restarted pop3imapd\n"
    r = ok(fake, "log", "smtp", "2")
    assert last(fake) == "LOG smtp 2"
    # an escape sequence from the server is not passed to the terminal
    assert r.stdout == "line 0 \\x1b[31m\nline 1 \\x1b[31m\n"


def test_json_output(fake):
    r = ok(fake, "--json", "domain", "list")
    assert json.loads(r.stdout) == {"domains": ["example.test"]}
    r = ok(fake, "user", "show", "alice@example.test", "--json")
    assert json.loads(r.stdout)["quota"] == 2 << 30
    r = ok(fake, "--json", "domain", "add", "j.test")
    assert json.loads(r.stdout) == {"done": True}


@pytest.mark.parametrize("code,exit", [("NOTFOUND", 1), ("EXISTS", 1), ("INVALID", 1),
                                       ("DENIED", 1), ("SYNTAX", 2), ("BUSY", 75),
                                       ("UNAVAILABLE", 75), ("TIMEOUT", 75)])
def test_error_codes(fake, code, exit):
    fake.force["DOMAIN ADD"] = "-ERR %s the server's words" % code
    r = admin(fake, "domain", "add", "x.test")
    assert r.returncode == exit, r.stderr
    assert r.stderr.startswith("alkaid-admin: the server's words")
    assert r.stdout == ""


def test_error_code_with_escapes_is_printed_escaped(fake):
    """The -ERR code is the server's text too: "(server: -ERR CODE)" must not pass a
    terminal escape through (docs/admin.md: control characters are printed escaped)."""
    fake.force["DOMAIN ADD"] = "-ERR \x1b[2J\x1b]0;x\x07 the server's words"
    r = admin(fake, "domain", "add", "x.test")
    assert r.returncode == 1, r.stderr
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr, repr(r.stderr)
    assert "(server: -ERR \\x1b[2J\\x1b]0;x\\x07)" in r.stderr, repr(r.stderr)


def test_locked(fake):
    fake.force["LOGIN"] = "-ERR LOCKED too many failures; try later"
    r = admin(fake, "domain", "list")
    assert r.returncode == 3 and "too many failures" in r.stderr


def test_refuses_line_breaks_client_side(fake):
    r = admin(fake, "config", "set", "SMTP", "Banner", "evil\r\nDOMAIN DEL example.test")
    assert r.returncode == 2 and "line break" in r.stderr
    assert not any(l.startswith("CONFIG") or l.startswith("DOMAIN") for l in fake.lines)


def test_connection_refused(fake):
    r = admin(fake, "domain", "list", port=free_port())
    assert r.returncode == 69 and r.stderr.startswith("alkaid-admin: cannot connect")


def test_tls_verification(fake, tmp_path):
    # without --ca the self-signed certificate does not verify against the system CAs
    r = admin(fake, "domain", "list", tls=[])
    assert r.returncode == 69 and "certificate" in r.stderr
    assert fake.lines == []
    # --ca with a different certificate fails too
    other = tmp_path / "other"
    other.mkdir()
    from fake_admin import make_cert
    other_cert, _ = make_cert(other)
    r = admin(fake, "domain", "list", tls=["--ca", str(other_cert)])
    assert r.returncode == 69
    # --insecure works, with a warning
    r = admin(fake, "domain", "list", tls=["--insecure"])
    assert r.returncode == 0 and "warning" in r.stderr and "--insecure" in r.stderr
    # --ca with the right certificate also checks the name: "localhost" is in it,
    # "127.0.0.2" is not
    r = admin(fake, "domain", "list", tls=["--ca", str(fake.cert)])
    assert r.returncode == 0 and r.stderr == ""
    r = subprocess.run([str(ADMIN_TOOL), "--host", "localhost", "--port", str(fake.port),
                        "--user", ADMIN, "--ca", str(fake.cert), "domain", "list"],
                       env={**os.environ, "ALKAID_ADMIN_PASSWORD": PASSWORD},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_ca_file_that_cannot_be_read(fake, tmp_path):
    missing = tmp_path / "no-such-cert.pem"
    r = admin(fake, "domain", "list", tls=["--ca", str(missing)])
    assert r.returncode == 69, r.stderr
    assert str(missing) in r.stderr and "No such file or directory" in r.stderr, r.stderr
    assert fake.lines == []
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    r = admin(fake, "domain", "list", tls=["--ca", str(garbage)])
    assert r.returncode == 69 and str(garbage) in r.stderr, r.stderr
    assert "unknown error" not in r.stderr, r.stderr


def test_top_count(fake):
    r = ok(fake, "top", "--count", "2")
    assert fake.commands() == ["STATUS", "STATUS"]
    snaps = r.stdout.split("Alkaid System Overview")
    assert len(snaps) == 3
    first, second = snaps[1], snaps[2]
    assert "smtpd        running" in first and "controld     not running" in first
    assert "1d 01:01:01" in first  # pop3imapd's uptime
    # the first snapshot has no rates; the second has them (bytes_in grows 1000/call)
    smtp1 = [l for l in first.splitlines() if l.startswith("SMTP")][0].split()
    smtp2 = [l for l in second.splitlines() if l.startswith("SMTP")][0].split()
    assert smtp1 == ["SMTP", "3", "1000", "500", "-", "-"]
    assert smtp2[:4] == ["SMTP", "3", "2000", "1000"]
    assert 500 < float(smtp2[4]) < 1100
    imap = [l for l in second.splitlines() if l.startswith("IMAP")][0].split()
    assert imap[:4] == ["IMAP", "2", "30", "40"]
    msgs = [l for l in second.splitlines() if l.startswith("Messages in")][0].split()
    assert msgs[2] == "10"
    assert "Queue: 7 files, 6 queued, 1 sending, delivery held: no" in second


def test_top_one_snapshot_json(fake):
    r = ok(fake, "--json", "top")
    assert len(r.stdout.splitlines()) == 1
    assert json.loads(r.stdout)["services"]["smtpd"]["pid"] == 101


def test_usage(fake):
    r = admin(fake, "frobnicate")
    assert r.returncode == 2 and r.stderr.startswith("alkaid-admin: unknown command")
    r = admin(fake, "domain", "add")
    assert r.returncode == 2
    r = admin(fake, "domain", "list", "--purge")
    assert r.returncode == 2
    assert fake.lines == []


# ---- alkaid-user --remote ----

def remote(fake, *args, input=None):
    argv = [str(USER_TOOL), "--remote", "127.0.0.1:%d" % fake.port, "--admin-user", ADMIN,
            "--ca", str(fake.cert)]
    e = dict(os.environ, ALKAID_ADMIN_PASSWORD=PASSWORD)
    e.pop("ALKAID_ROOT", None)
    return subprocess.run(argv + list(args), capture_output=True, text=True, env=e,
                          input=input if input is not None else "", timeout=60)


def test_user_remote(fake):
    r = remote(fake, "domain", "add", "r.test")
    assert r.returncode == 0, r.stderr
    assert last(fake) == "DOMAIN ADD r.test" and r.stdout.startswith("added domain r.test")
    r = remote(fake, "add", "dave@r.test", "--password", "dave pw", "--quota", "2G")
    assert r.returncode == 0, r.stderr
    assert last(fake) == 'USER ADD dave@r.test "dave pw" QUOTA 2G'
    assert r.stdout.startswith("added user dave@r.test")
    r = remote(fake, "show", "alice@example.test")
    assert r.returncode == 0 and "address: alice@example.test\ntype: user\n" in r.stdout
    r = remote(fake, "list")
    assert r.returncode == 0 and "alice@example.test" in r.stdout
    r = remote(fake, "del", "nobody@r.test")
    assert r.returncode == 1 and r.stderr.startswith("alkaid-user: no such account")
    r = remote(fake, "forward", "alice@example.test", "x@remote.test", "--keep")
    assert r.returncode == 0 and last(fake) == "FORWARD alice@example.test x@remote.test KEEP"
    r = remote(fake, "queue", "list", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["id"] == "1700000000.ab12"
    fake.force["DOMAIN"] = "-ERR BUSY the store is busy"
    r = remote(fake, "domain", "list")
    assert r.returncode == 75
