"""test_user_cli.py - alkaid-user run for real against a fresh root

Runs the built tool ($ALKAID_BIN/alkaid-user, default <repo>/build/bin) the way an
administrator would, and checks what they would see: output lines, exit codes (0 done,
1 refused, 2 usage, 75 temporary failure), the files it makes under the root, and that a
password never shows up anywhere.

SECURITY: covers the password prompt (no echo, asked twice), --purge not following a
symbolic link out of a mailbox, and names that would escape mail/ being refused.
"""

import os
import pty
import select
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("ALKAID_BIN", REPO / "build" / "bin"))
TOOL = BIN_DIR / "alkaid-user"


@pytest.fixture
def root(tmp_path):
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"{TOOL} is not built (set ALKAID_BIN or build into build/bin)")
    return tmp_path / "root"


def run(root, *args, input=None, env=None, use_root=True):
    e = {k: v for k, v in os.environ.items() if k != "ALKAID_ROOT"}
    if env:
        e.update(env)
    argv = [str(TOOL)] + (["--root", str(root)] if use_root else []) + list(args)
    return subprocess.run(argv, input=input, capture_output=True, text=True, env=e,
                          timeout=60)


def ok(root, *args, **kw):
    p = run(root, *args, **kw)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p


def refused(root, *args, code=1, **kw):
    p = run(root, *args, **kw)
    assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.startswith("alkaid-user: "), p.stderr
    return p


def db(root):
    return sqlite3.connect(root / "config" / "accounts.db")


def show(root, address):
    out = ok(root, "show", address).stdout
    fields = {}
    for line in out.splitlines():
        key, _, value = line.partition(": ")
        fields[key] = value
    return fields


def test_new_root_is_set_up(root):
    p = ok(root, "domain", "list")
    assert p.stdout == ""
    assert (root / "config" / "alkaid.ini").is_file()
    dbfile = root / "config" / "accounts.db"
    assert stat.S_IMODE(dbfile.stat().st_mode) == 0o600
    with db(root) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 3
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_root_from_environment(root):
    ok(root, "domain", "add", "example.com", use_root=False, env={"ALKAID_ROOT": str(root)})
    assert "example.com" in ok(root, "domain", "list").stdout
    p = refused(root, "domain", "list", code=2, use_root=False)
    assert "ALKAID_ROOT" in p.stderr


def test_domains(root):
    p = ok(root, "domain", "add", "Example.COM")
    assert "example.com" in p.stdout
    assert (root / "mail" / "example.com").is_dir()
    assert "already exists" in refused(root, "domain", "add", "example.com").stderr
    for bad in ["bad..name", "x-.com", "a/b.com", "*", "example.*", "forward", "a b.com"]:
        refused(root, "domain", "add", bad)
    refused(root, "domain", "add", "--", "-x.com")  # after "--" it is a name, and invalid
    ok(root, "domain", "add", "other.org")
    lines = ok(root, "domain", "list").stdout.splitlines()
    assert [line.split() for line in lines] == [["example.com", "0", "-", "local"],
                                                ["other.org", "0", "-", "local"]]
    ok(root, "domain", "del", "other.org")
    assert "no such domain" in refused(root, "domain", "del", "other.org").stderr

    ok(root, "add", "bob@example.com", "--password", "pw")
    p = refused(root, "domain", "del", "example.com")
    assert "1 account" in p.stderr and "--force" in p.stderr
    p = ok(root, "domain", "del", "example.com", "--force")
    assert "mailboxes kept" in p.stdout
    assert (root / "mail" / "example.com" / "bob").is_dir()
    assert ok(root, "domain", "list").stdout == ""
    assert ok(root, "list").stdout == ""


def test_user_lifecycle(root):
    ok(root, "domain", "add", "example.com")
    p = ok(root, "add", "Bob@Example.com", "--password", "s3cret-pw", "--admin", "--quota",
           "500M")
    assert "bob@example.com" in p.stdout
    mbox = root / "mail" / "example.com" / "bob"
    assert mbox.is_dir()
    assert stat.S_IMODE(mbox.stat().st_mode) == 0o700
    assert "already exists" in refused(root, "add", "bob@example.com", "--password", "x").stderr

    # A password from stdin (not a terminal): one line.
    ok(root, "add", "carol@example.com", input="carol-pw\n")

    (mbox / "1.eml").write_bytes(b"x" * 100)
    (mbox / ".1.eml.part").write_bytes(b"y" * 1000)
    (mbox / "Sent").mkdir()
    (mbox / "Sent" / "2.eml").write_bytes(b"z" * 23)
    f = show(root, "bob@example.com")
    assert f["address"] == "bob@example.com"
    assert f["type"] == "user"
    assert f["admin"] == "yes"
    assert f["quota"] == "500M"
    assert f["forward"] == "none"
    assert f["mailbox"] == str(mbox)
    assert f["size"] == "123 bytes"
    assert f["messages"] == "2"

    with db(root) as c:
        hashes = [r[0] for r in c.execute("SELECT password_hash FROM accounts")]
    assert all(h.startswith("$scram-sha-256$") for h in hashes)
    old_hash = hashes[0]

    ok(root, "passwd", "bob@example.com", input="new-pw\n")
    with db(root) as c:
        new_hash = c.execute("SELECT password_hash FROM accounts WHERE localpart = 'bob'"
                             ).fetchone()[0]
    assert new_hash != old_hash
    assert "empty password" in refused(root, "passwd", "bob@example.com", input="\n").stderr
    assert "empty password" in refused(root, "passwd", "bob@example.com", input="").stderr

    p = ok(root, "set", "bob@example.com", "--no-admin", "--quota", "2G")
    assert "admin no" in p.stdout and "2G" in p.stdout
    ok(root, "set", "carol@example.com", "--admin", "--quota", "1024K")
    lines = [line.split() for line in ok(root, "list").stdout.splitlines()]
    assert lines == [["bob@example.com", "user", "no", "2G"],
                     ["carol@example.com", "user", "yes", "1M"]]
    assert ok(root, "list", "example.com").stdout == ok(root, "list").stdout
    ok(root, "set", "bob@example.com", "--quota", "0")
    assert show(root, "bob@example.com")["quota"] == "unlimited"
    ok(root, "set", "bob@example.com", "--quota", "300")
    assert show(root, "bob@example.com")["quota"] == "300M"

    p = ok(root, "del", "bob@example.com")
    assert "kept" in p.stdout and "--purge" in p.stdout
    assert mbox.is_dir()
    assert "no such account" in refused(root, "show", "bob@example.com").stderr

    # --purge removes the mailbox, but never what a symbolic link in it points to.
    outside = root / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    cmbox = root / "mail" / "example.com" / "carol"
    (cmbox / "link").symlink_to(outside)
    (cmbox / "filelink").symlink_to(outside / "precious")
    (cmbox / "Folder" / "Sub").mkdir(parents=True)
    (cmbox / "Folder" / "Sub" / "3.eml").write_text("m")
    p = ok(root, "del", "carol@example.com", "--purge")
    assert "removed" in p.stdout
    assert not cmbox.exists()
    assert (outside / "precious").read_text() == "keep me"


def test_password_never_shown(root):
    ok(root, "domain", "add", "example.com")
    secret = "Very-Secret-Pw-123"
    outputs = []
    for args in (["add", "bob@example.com", "--password", secret],
                 ["show", "bob@example.com"], ["list"], ["domain", "list"],
                 ["passwd", "bob@example.com", "--password", secret]):
        p = ok(root, *args)
        outputs.append(p.stdout + p.stderr)
    assert not any(secret in o for o in outputs)
    raw = (root / "config" / "accounts.db").read_bytes()
    assert secret.encode() not in raw


def _pty_run(root, args, answers):
    """Runs the tool with a terminal as stdin; answers each prompt in turn."""
    master, slave = pty.openpty()
    e = {k: v for k, v in os.environ.items() if k != "ALKAID_ROOT"}
    p = subprocess.Popen([str(TOOL), "--root", str(root)] + args, stdin=slave,
                         stdout=subprocess.PIPE, stderr=slave, env=e)
    os.close(slave)
    seen = b""
    deadline = time.time() + 30
    pending = list(answers)
    while time.time() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if pending and seen.rstrip().endswith(b":"):
                time.sleep(0.1)  # the prompt is written before echo goes off
                os.write(master, pending.pop(0).encode() + b"\n")
        elif p.poll() is not None:
            break
    out = p.stdout.read().decode()
    p.wait(timeout=30)
    os.close(master)
    return p.returncode, out, seen.decode(errors="replace")


def test_password_prompt(root):
    ok(root, "domain", "add", "example.com")
    code, out, term = _pty_run(root, ["add", "bob@example.com"], ["tty-pw-1", "tty-pw-1"])
    assert code == 0, (out, term)
    assert "tty-pw-1" not in term  # not echoed
    assert term.count("assword") == 2
    code, out, term = _pty_run(root, ["passwd", "bob@example.com"], ["aaa-1", "bbb-2"])
    assert code == 1
    assert "do not match" in term


def test_aliases_forwards_catchall(root):
    ok(root, "domain", "add", "example.com")
    ok(root, "add", "tod@example.com", "--password", "x")
    ok(root, "add", "stacia@example.com", "--password", "x")

    p = ok(root, "alias", "add", "all@example.com", "tod", "stacia@example.com",
           "niclas@skyweb.se")
    assert "tod@example.com stacia@example.com niclas@skyweb.se" in p.stdout
    f = show(root, "all@example.com")
    assert f["type"] == "alias"
    assert f["members"] == "tod@example.com stacia@example.com niclas@skyweb.se"
    # alias add on an existing alias adds members; "null" discards.
    p = ok(root, "alias", "add", "all@example.com", "ghost", "null")
    assert "ghost@example.com is at a local domain but is not an account" in p.stderr
    assert show(root, "all@example.com")["members"].split() == [
        "tod@example.com", "stacia@example.com", "niclas@skyweb.se", "ghost@example.com", "null"]
    ok(root, "alias", "del", "all@example.com", "ghost")
    assert "ghost" not in show(root, "all@example.com")["members"]
    assert "not a member" in refused(root, "alias", "del", "all@example.com", "nobody").stderr
    lines = ok(root, "list").stdout.splitlines()
    assert lines[0].split() == ["all@example.com", "alias", "-", "-"]
    ok(root, "alias", "add", "support@example.com", "null")
    assert show(root, "support@example.com")["members"] == "null"

    assert "is a user" in refused(root, "alias", "add", "tod@example.com", "x@y.z").stderr
    assert "is an alias" in refused(root, "forward", "all@example.com", "x@y.z").stderr
    assert "is an alias" in refused(root, "passwd", "all@example.com", "--password",
                                    "x").stderr
    assert "is an alias" in refused(root, "set", "all@example.com", "--admin").stderr
    for bad in ["a b@c.com", "<x@y.com>", "x@y@z.com", "all@example.com"]:
        refused(root, "alias", "add", "all@example.com", bad)

    ok(root, "alias", "del", "all@example.com")
    assert "no such account" in refused(root, "show", "all@example.com").stderr
    assert "not an alias" in refused(root, "alias", "del", "tod@example.com").stderr

    p = ok(root, "forward", "tod@example.com", "tod@elsewhere.net", "stacia", "--keep")
    assert "keeping a copy" in p.stdout
    f = show(root, "tod@example.com")
    assert f["forward"] == "tod@elsewhere.net stacia@example.com"
    assert f["keep-copy"] == "yes"
    ok(root, "forward", "tod@example.com", "tod@elsewhere.net")
    f = show(root, "tod@example.com")
    assert f["forward"] == "tod@elsewhere.net"
    assert f["keep-copy"] == "no"
    ok(root, "forward", "tod@example.com", "--off")
    assert show(root, "tod@example.com")["forward"] == "none"
    refused(root, "forward", "tod@example.com", code=2)
    refused(root, "forward", "tod@example.com", "x@y.z", "--off", code=2)

    ok(root, "catchall", "example.com", "null")
    assert ok(root, "domain", "list").stdout.split() == ["example.com", "3", "null", "local"]
    p = refused(root, "show", "nobody@example.com")
    assert "catch-all" in p.stderr
    ok(root, "catchall", "example.com", "postmaster")
    assert ok(root, "domain", "list").stdout.split()[2] == "postmaster@example.com"
    ok(root, "catchall", "example.com", "--off")
    assert ok(root, "domain", "list").stdout.split()[2] == "-"
    refused(root, "catchall", "example.com", "bad address")
    refused(root, "catchall", "nosuch.org", "null")


def test_wildcard_domain(root):
    ok(root, "domain", "add", "*.Example.org")
    assert (root / "mail" / "%.example.org").is_dir()
    p = refused(root, "add", "bob@mail.example.org", "--password", "x")
    assert "*.example.org" in p.stderr
    ok(root, "add", "bob@*.example.org", "--password", "x")
    assert (root / "mail" / "%.example.org" / "bob").is_dir()
    f = show(root, "Bob@Mail.Example.org")
    assert f["address"] == "bob@*.example.org"
    assert f["matched"] == "bob@mail.example.org"
    ok(root, "domain", "add", "*.deep.example.org")
    refused(root, "show", "bob@x.deep.example.org")


def test_refusals_and_usage(root):
    ok(root, "domain", "add", "example.com")
    for args in (["show", "nobody@example.com"], ["del", "nobody@example.com"],
                 ["passwd", "nobody@example.com", "--password", "x"],
                 ["set", "nobody@example.com", "--admin"], ["list", "nosuch.org"],
                 ["add", "bob@nosuch.org", "--password", "x"],
                 ["add", "../x@example.com", "--password", "x"],
                 ["add", ".bob@example.com", "--password", "x"],
                 ["add", "bob@exa/mple.com", "--password", "x"],
                 ["add", "noatsign", "--password", "x"]):
        refused(root, *args)
    assert not (root / "mail" / "x").exists()
    for args in ([], ["bogus"], ["domain"], ["domain", "frob", "x"], ["add"],
                 ["add", "a@example.com", "b@example.com"], ["list", "--purge"],
                 ["add", "a@example.com", "--quota", "lots"],
                 ["add", "a@example.com", "--quota", "5T"], ["add", "a@example.com", "--bogus"],
                 ["set", "a@example.com"], ["set", "a@example.com", "--admin", "--no-admin"],
                 ["add", "a@example.com", "--password"], ["catchall", "example.com"]):
        p = refused(root, *args, code=2)
        assert "usage:" in p.stderr
        assert len(p.stderr.splitlines()) <= 3
    p = ok(root, "--help")
    assert "alkaid-user" in p.stdout and "catchall" in p.stdout


def test_tempfail_when_store_locked(root):
    ok(root, "domain", "add", "example.com")
    c = sqlite3.connect(root / "config" / "accounts.db", isolation_level=None)
    c.execute("BEGIN IMMEDIATE")
    try:
        start = time.time()
        p = refused(root, "domain", "add", "other.org", code=75)
        assert time.time() - start >= 4  # waited for the busy timeout first
        assert "try again" in p.stderr
        # Reading still works while another writer holds the lock (WAL).
        assert "example.com" in ok(root, "domain", "list").stdout
    finally:
        c.execute("ROLLBACK")
        c.close()
    ok(root, "domain", "add", "other.org")
