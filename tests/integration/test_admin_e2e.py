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
    snap = admin(a, "top", "--count", "1").stdout
    assert "smtpd" in snap and "Queue" in snap


def test_wrong_password_and_non_admin(site):
    a = site
    r = admin(a, "domain", "list", password="nope-nope", check=False)
    assert r.returncode == 3, (r.returncode, r.stderr)
    alice = "alice@" + DOMAIN
    r = admin(a, "domain", "list", user=alice, password=USERS[alice], check=False)
    assert r.returncode == 3 and "alkaid-admin:" in r.stderr, (r.returncode, r.stderr)


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
