"""Real IMAP clients against alkaid-pop3imapd: mbsync (isync) syncing a whole account
both ways, and curl's imap:// and imaps:// URLs (RFC 5092).

mbsync keeps a local Maildir and the server in step: new messages, flags and deletions
travel both ways, folders are created on either side. After every sync both sides must
hold the same messages (by Message-ID) with the same flags in every folder.
"""
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import USERS, Literal, crlf, imap_quote, imap_tls

ALICE = "alice@example.test"
MBSYNC = shutil.which("mbsync")
CURL = shutil.which("curl")

# IMAP system flag <-> Maildir info letter
FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S",
                "\\Deleted": "T"}


def msg(subject, msgid, body="body\r\n"):
    return crlf("From: Sender <sender@example.org>\nTo: alice@example.test\n"
                "Subject: %s\nDate: Mon, 02 Mar 2026 10:00:00 +0000\n"
                "Message-ID: <%s>\n\n" % (subject, msgid)) + crlf(body)


def append(c, mailbox, data, flags=""):
    r = c.command("APPEND", imap_quote(mailbox), "(%s)" % flags, Literal(data))
    assert r.status == "OK", r
    return r


def msgid_of(data):
    m = re.search(rb"^Message-ID:\s*<([^>]+)>", data, re.M | re.I)
    return m.group(1).decode() if m else None


# ---- the two sides as {folder: {message-id: set of flag letters}} ------------------

def server_state(alkaid):
    c = imap_tls(alkaid)
    out = {}
    r = c.ok("LIST", '""', '"*"')
    for t in r.lines("LIST"):
        attrs = {a.lower() for a in t[2]}
        name = t[4].decode() if isinstance(t[4], bytes) else t[4]
        if "\\noselect" in attrs:
            continue
        c.select(name, examine=True)
        f = {}
        if c.ok("SEARCH", "ALL").search():       # FETCH 1:* needs a message
            f = c.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        box = {}
        for v in f.values():
            hdr = [x for k, x in v.items() if k.startswith("BODY")][0]
            mid = msgid_of(hdr)
            letters = "".join(sorted(FLAG_LETTERS[_norm(fl)]
                                     for fl in v["FLAGS"] if _norm(fl) in FLAG_LETTERS))
            assert mid not in box, "duplicate %s in %s" % (mid, name)
            box[mid] = letters
        out[name] = box
    c.logout()
    return out


def _norm(flag):
    return "\\" + flag[1:].capitalize() if flag.startswith("\\") else flag


def local_state(maildir):
    out = {}
    maildir = Path(maildir)
    for d in sorted(maildir.rglob("cur")):
        folder = d.parent
        name = str(folder.relative_to(maildir))
        box = {}
        for sub in ("cur", "new"):
            for p in sorted((folder / sub).iterdir()):
                if p.name.startswith("."):
                    continue
                mid = msgid_of(p.read_bytes())
                info = p.name.split(":2,", 1)[1] if ":2," in p.name else ""
                letters = "".join(sorted(ch for ch in info if ch in "DFRST"))
                if "T" in letters:
                    continue          # trashed: about to be expunged
                assert mid not in box, "duplicate %s in local %s" % (mid, name)
                box[mid] = letters
        out[name] = box
    return out


def maildir_add(maildir, folder, data, flags=""):
    d = Path(maildir) / folder
    for sub in ("cur", "new", "tmp"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    name = "%d.%d_%d.localhost" % (time.time(), os.getpid(), time.time_ns() % 10 ** 9)
    if flags:
        (d / "cur" / (name + ":2," + flags)).write_bytes(data)
    else:
        (d / "new" / name).write_bytes(data)


def maildir_find(maildir, folder, msgid):
    for sub in ("cur", "new"):
        for p in (Path(maildir) / folder / sub).iterdir():
            if msgid_of(p.read_bytes()) == msgid:
                return p
    raise AssertionError("%s not in local %s" % (msgid, folder))


def maildir_set_flags(path, letters):
    base = path.name.split(":2,", 1)[0]
    new = path.parent.parent / "cur" / (base + ":2," + "".join(sorted(letters)))
    os.rename(path, new)
    return new


def mbsync_config(alkaid, tmp, ssl_type="IMAPS"):
    maildir = tmp / "Mail"
    maildir.mkdir(exist_ok=True)
    port = alkaid.imaps_port if ssl_type == "IMAPS" else alkaid.imap_port
    cert = alkaid.root / "config" / "tls" / "cert.pem"
    assert cert.exists(), cert
    cfg = tmp / "mbsyncrc"
    cfg.write_text("""\
IMAPAccount alkaid
Host 127.0.0.1
Port {port}
User {user}
Pass {pw}
SSLType {ssl}
CertificateFile {cert}
SystemCertificates no
Timeout 20
PipelineDepth 5

IMAPStore remote
Account alkaid

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel alkaid
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
Remove None
Sync All
SyncState *
CopyArrivalDate yes
""".format(port=port, user=ALICE, pw=USERS[ALICE], ssl=ssl_type, cert=cert,
           maildir=maildir))
    return cfg, maildir


def run_mbsync(cfg):
    r = subprocess.run([MBSYNC, "-V", "-c", str(cfg), "-a"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, "mbsync failed (%d):\n%s\n%s" % (r.returncode, r.stdout,
                                                               r.stderr)
    # mbsync warns (and still exits 0) when the server says something it did not expect
    warnings = [l for l in (r.stdout + r.stderr).splitlines()
                if re.search(r"warning|error|unexpected|lost track", l, re.I)]
    assert not warnings, "mbsync complained:\n" + "\n".join(warnings)
    if os.environ.get("IMAP_TEST_VERBOSE"):
        print(r.stdout, r.stderr)
    return r


def assert_agree(alkaid, maildir):
    srv = server_state(alkaid)
    loc = local_state(maildir)
    # every server folder exists locally and the other way round, same content
    assert set(srv) == set(loc), ("folders differ", sorted(srv), sorted(loc))
    for name in srv:
        assert srv[name] == loc[name], (name, srv[name], loc[name])
    return srv


# =====================================================================================
# mbsync
# =====================================================================================

@pytest.mark.skipif(MBSYNC is None, reason="mbsync (isync) not installed")
def test_mbsync_whole_account_both_ways(alkaid, tmp_path):
    s = alkaid.smtp()
    for i in range(3):
        s.sendmail("x@example.org", [ALICE], msg("inbox %d" % i, "in%d@example.org" % i))
    s.quit()
    c = imap_tls(alkaid)
    c.ok("CREATE", "Work/2026")
    append(c, "Work", msg("work 0", "w0@example.org"), "\\Seen \\Flagged")
    append(c, "Work", msg("work 1", "w1@example.org"))
    append(c, "Work/2026", msg("deep", "deep@example.org"), "\\Answered \\Seen")
    append(c, "Sent", msg("sent", "sent@example.org"), "\\Seen")
    c.logout()
    cfg, maildir = mbsync_config(alkaid, tmp_path)
    # local side already has a folder and a message of its own
    maildir_add(maildir, "Local", msg("local", "local@example.org"), "S")
    maildir_add(maildir, "INBOX", msg("local inbox", "lin@example.org"))

    run_mbsync(cfg)
    state = assert_agree(alkaid, maildir)
    assert set(state["INBOX"]) == {"in0@example.org", "in1@example.org", "in2@example.org",
                                   "lin@example.org"}
    assert state["Work"] == {"w0@example.org": "FS", "w1@example.org": ""}
    assert state["Work/2026"] == {"deep@example.org": "RS"}
    assert state["Local"] == {"local@example.org": "S"}
    assert {"Sent", "Drafts", "Trash", "Junk"} <= set(state)

    # changes on both sides
    p = maildir_find(maildir, "INBOX", "in0@example.org")
    maildir_set_flags(p, "S")                                         # local: seen
    maildir_find(maildir, "Work", "w1@example.org").unlink()          # local: deleted
    maildir_add(maildir, "Work", msg("new local", "newlocal@example.org"), "F")
    maildir_add(maildir, "Local/Sub", msg("sub", "sub@example.org"))  # local: new folder
    c = imap_tls(alkaid)
    c.select("INBOX")
    uid = {}
    f = c.ok("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])").fetches()
    for v in f.values():
        uid[msgid_of([x for k, x in v.items() if k.startswith("BODY")][0])] = v["UID"]
    c.ok("UID", "STORE", uid["in1@example.org"], "+FLAGS", "(\\Flagged)")  # server: flag
    c.ok("UID", "STORE", uid["in2@example.org"], "+FLAGS", "(\\Deleted)")  # server: delete
    c.ok("EXPUNGE")
    append(c, "INBOX", msg("new remote", "newremote@example.org"))
    c.ok("CREATE", "Remote")
    append(c, "Remote", msg("remote", "remote@example.org"), "\\Seen")
    c.select("Sent")
    c.ok("STORE", "1", "+FLAGS", "(\\Answered)")
    c.logout()

    run_mbsync(cfg)
    state = assert_agree(alkaid, maildir)
    assert state["INBOX"] == {"in0@example.org": "S", "in1@example.org": "F",
                              "lin@example.org": "", "newremote@example.org": ""}, state["INBOX"]
    assert state["Work"] == {"w0@example.org": "FS", "newlocal@example.org": "F"}, state["Work"]
    assert state["Remote"] == {"remote@example.org": "S"}
    assert state["Local/Sub"] == {"sub@example.org": ""}
    assert state["Sent"] == {"sent@example.org": "RS"}

    # a sync with nothing to do changes nothing
    run_mbsync(cfg)
    assert assert_agree(alkaid, maildir) == state
    # after a restart of the server (UIDs and UIDVALIDITY persistent) still nothing
    alkaid.stop("pop3imapd")
    alkaid.start("pop3imapd")
    run_mbsync(cfg)
    assert assert_agree(alkaid, maildir) == state
    # no message was uploaded or downloaded twice
    for box in state.values():
        assert len(box) == len(set(box))


@pytest.mark.skipif(MBSYNC is None, reason="mbsync (isync) not installed")
def test_mbsync_starttls_and_many_messages(alkaid, tmp_path):
    c = imap_tls(alkaid)
    for i in range(150):
        append(c, "INBOX", msg("bulk %d" % i, "bulk%d@example.org" % i,
                               body="line\r\n" * (i % 40)), "\\Seen" if i % 3 == 0 else "")
    c.logout()
    cfg, maildir = mbsync_config(alkaid, tmp_path, ssl_type="STARTTLS")
    run_mbsync(cfg)
    state = assert_agree(alkaid, maildir)
    assert len(state["INBOX"]) == 150
    # delete a third locally, flag another third, sync, agree
    for i in range(150):
        p = maildir_find(maildir, "INBOX", "bulk%d@example.org" % i)
        if i % 3 == 1:
            p.unlink()
        elif i % 3 == 2:
            maildir_set_flags(p, "F")
    run_mbsync(cfg)
    state = assert_agree(alkaid, maildir)
    assert len(state["INBOX"]) == 100
    assert sum(1 for v in state["INBOX"].values() if v == "F") == 50


# =====================================================================================
# curl
# =====================================================================================

def curl(*args, input=None):
    r = subprocess.run([CURL, "-s", "-S", "-k", "--max-time", "30", *args],
                       capture_output=True, input=input, timeout=60)
    return r


def _url(alkaid, path="", tls=True):
    if tls:
        return "imaps://127.0.0.1:%d/%s" % (alkaid.imaps_port, path)
    return "imap://127.0.0.1:%d/%s" % (alkaid.imap_port, path)


USERPW = "%s:%s" % (ALICE, USERS[ALICE])


@pytest.fixture
def curl_box(alkaid):
    assert CURL, "curl not installed"
    s = alkaid.smtp()
    for i in range(3):
        s.sendmail("x@example.org", [ALICE], msg("curl %d" % i, "curl%d@example.org" % i,
                                                  body="curl body %d\r\n" % i))
    s.quit()
    return alkaid


def test_curl_list_mailboxes_imaps_and_starttls(curl_box):
    r = curl("-u", USERPW, _url(curl_box))
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    for name in ("INBOX", "Sent", "Drafts", "Trash", "Junk"):
        assert re.search(r'^\* LIST \([^)]*\) "/" "?%s"?\r?$' % name, out, re.M), out
    r = curl("--ssl-reqd", "-u", USERPW, _url(curl_box, tls=False))
    assert r.returncode == 0, r.stderr
    assert "INBOX" in r.stdout.decode()


def test_curl_refuses_plaintext_login(curl_box):
    """Without STARTTLS the server offers no way to log in (LOGINDISABLED)."""
    r = curl("-u", USERPW, _url(curl_box, "INBOX;UID=1", tls=False))
    assert r.returncode != 0, r.stdout
    assert b"curl body" not in r.stdout


def test_curl_fetch_by_uid_section_and_index(curl_box):
    files = curl_box.messages(ALICE)
    r = curl("-u", USERPW, _url(curl_box, "INBOX;UID=1"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == files[0], r.stdout[:300]
    r = curl("-u", USERPW, _url(curl_box, "INBOX;UID=2;SECTION=TEXT"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"curl body 1\r\n"
    r = curl("-u", USERPW, _url(curl_box, "INBOX;UID=3;SECTION=HEADER.FIELDS%20(SUBJECT)"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Subject: curl 2\r\n\r\n"
    r = curl("-u", USERPW, _url(curl_box, "INBOX;MAILINDEX=2"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == files[1]
    r = curl("-u", USERPW, _url(curl_box, "INBOX;UID=1;PARTIAL=0.10"))
    if r.returncode == 0:
        assert r.stdout == files[0][:10]
    r = curl("-u", USERPW, _url(curl_box, "INBOX;UID=99"))
    assert b"curl body" not in r.stdout


def test_curl_search_examine_and_custom_commands(curl_box):
    r = curl("-u", USERPW, _url(curl_box, "INBOX?SUBJECT%20%22curl%201%22"))
    assert r.returncode == 0, r.stderr
    assert re.search(rb"^\* SEARCH 2\r?$", r.stdout, re.M), r.stdout
    r = curl("-u", USERPW, _url(curl_box, "INBOX?ALL"))
    assert re.search(rb"^\* SEARCH 1 2 3\r?$", r.stdout, re.M), r.stdout
    r = curl("-u", USERPW, "-X", "EXAMINE INBOX", _url(curl_box))
    assert r.returncode == 0, r.stderr
    assert b"* 3 EXISTS" in r.stdout, r.stdout
    r = curl("-u", USERPW, "-X", "STATUS INBOX (MESSAGES UNSEEN)", _url(curl_box))
    assert r.returncode == 0, r.stderr
    assert re.search(rb"\* STATUS \"?INBOX\"? \(MESSAGES 3 UNSEEN 3\)", r.stdout), r.stdout
    r = curl("-u", USERPW, "-X", "LSUB \"\" *", _url(curl_box))
    assert r.returncode == 0, r.stderr
    r = curl("-u", USERPW, "-X", "NAMESPACE", _url(curl_box))
    assert b'* NAMESPACE (("" "/")) NIL NIL' in r.stdout, r.stdout
    r = curl("-u", USERPW, "-X", "CREATE FromCurl", _url(curl_box))
    assert r.returncode == 0, r.stderr
    r = curl("-u", USERPW, "-X", "FETCH 1:* (FLAGS)", _url(curl_box, "INBOX"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(b"FETCH (FLAGS") == 3, r.stdout


def test_curl_upload_appends(curl_box, tmp_path):
    data = msg("uploaded by curl", "upload@example.org", body="hello from curl\r\n")
    f = tmp_path / "m.eml"
    f.write_bytes(data)
    r = curl("-u", USERPW, "-T", str(f), _url(curl_box, "Sent"))
    assert r.returncode == 0, r.stderr
    c = imap_tls(curl_box)
    c.select("Sent")
    got = c.fetch("1:*", "(BODY.PEEK[])")
    assert [v["BODY[]"] for v in got.values()] == [data]
    c.logout()
    r = curl("-u", USERPW, "-T", str(f), _url(curl_box, "NoSuchFolder"))
    assert r.returncode != 0


def test_curl_wrong_password(curl_box):
    r = curl("-u", "%s:wrong" % ALICE, _url(curl_box, "INBOX;UID=1"))
    assert r.returncode != 0
    assert b"curl body" not in r.stdout
