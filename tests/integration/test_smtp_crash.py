"""test_smtp_crash.py - nothing acknowledged is lost when alkaid-smtpd is killed

Several sender threads send messages in a loop while the test kills alkaid-smtpd with
SIGKILL at random moments and starts it again at once. A sender records a message as
acknowledged only when the final 250 after DATA has arrived. Afterwards every
acknowledged message must be in each of its recipients' mailboxes, whole; no stored file
may be partial; temp/ must be emptied by the next start.

Copies of messages that were never acknowledged (the server had delivered them when it
was killed, before the client read the 250) are allowed and only reported.
"""
import email
import os
import random
import smtplib
import socket
import threading
import time
import uuid

from conftest import free_port, read_queue_file, stored_messages, temp_files

ALICE = "alice@example.test"
BOB = "bob@example.test"
SENDERS = 6
RUN_SECONDS = 20
MAX_KILLS = 15
REMOTE1 = "carol@remote.test"
REMOTE2 = "dave@remote.test"
RCPT_CHOICES = [(ALICE,), (BOB,), (ALICE, BOB), (ALICE,), (BOB,), (ALICE, BOB),
                (ALICE, REMOTE1), (REMOTE2,)]


def make_message(token, sender_no, rnd):
    # sizes from a few hundred bytes to ~200 KB, so that kills land in the middle of DATA
    n = rnd.choice([1, 5, 50, 500, 3000])
    lines = "".join("%s line %05d of the message body\r\n" % (token, i) for i in range(n))
    return ("From: <sender%d@remote.test>\r\nTo: <%s>\r\nSubject: crash %s\r\n"
            "Message-ID: <%s@remote.test>\r\n\r\n%sEND-%s\r\n"
            % (sender_no, ALICE, token, token, lines, token)).encode()


class Sender(threading.Thread):
    def __init__(self, no, port, stop):
        super().__init__(daemon=True)
        self.no = no
        self.port = port
        self.stop = stop
        self.rnd = random.Random(1000 + no)
        self.sent = {}      # token -> (rcpts, message bytes), every attempt
        self.acked = {}     # token -> rcpts, only after the final 250
        self.refused = []   # (token, code, text) for 4xx/5xx replies
        self.errors = 0
        self.unexpected = []

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = smtplib.SMTP("127.0.0.1", self.port, timeout=5)
                    conn.ehlo("sender%d.remote.test" % self.no)
                token = uuid.uuid4().hex
                rcpts = self.rnd.choice(RCPT_CHOICES)
                msg = make_message(token, self.no, self.rnd)
                self.sent[token] = (rcpts, msg)
                refused = conn.sendmail("sender%d@remote.test" % self.no, list(rcpts), msg)
                # sendmail returns only after the 250 to the end of data
                if refused:
                    self.unexpected.append((token, refused))
                self.acked[token] = rcpts
                if self.rnd.random() < 0.3:
                    conn.quit()
                    conn = None
            except smtplib.SMTPRecipientsRefused as e:
                self.unexpected.append((token, e.recipients))
                conn = self.drop(conn)
            except (smtplib.SMTPResponseException) as e:
                if isinstance(e, smtplib.SMTPConnectError) or e.smtp_code == 421:
                    self.errors += 1  # a server going away
                else:
                    self.refused.append((e.smtp_code, e.smtp_error))
                conn = self.drop(conn)
            except (smtplib.SMTPServerDisconnected, ConnectionError, socket.timeout,
                    TimeoutError, OSError) as e:
                # (smtplib's exceptions are OSErrors too: this clause comes last)
                self.errors += 1
                conn = self.drop(conn)
                if isinstance(e, ConnectionRefusedError):
                    time.sleep(0.02)
        if conn is not None:
            try:
                conn.quit()
            except Exception:
                pass

    @staticmethod
    def drop(conn):
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
        return None


def queued(alkaid):
    """Every queue file (waiting or in transmission): {path: (envelope, message)}."""
    d = alkaid.root / "mail" / "FORWARD"
    out = {}
    for p in sorted(d.glob("*.tmp")) + sorted(d.glob("*.tm$")):
        out[str(p)] = read_queue_file(p)
    return out


def test_sigkill_loses_nothing_acknowledged(alkaid_root):
    a = alkaid_root
    # remote recipients are queued in mail/FORWARD/; a smarthost that is not there keeps
    # them queued (temporary failures) should a queue runner try them during the test
    a.set("SMTP", "RelayIPs", "127.0.0.1")
    a.set("SMTP", "Smarthost", "127.0.0.1:%d" % free_port())
    a.start("smtpd")
    stop = threading.Event()
    senders = [Sender(i, a.smtp_port, stop) for i in range(SENDERS)]
    for s in senders:
        s.start()
    rnd = random.Random(42)
    kills = 0
    start_failures = []
    t_end = time.time() + RUN_SECONDS
    try:
        while time.time() < t_end and kills < MAX_KILLS:
            time.sleep(rnd.uniform(0.3, 1.5))
            a.kill("smtpd")
            kills += 1
            try:
                a.start("smtpd")
            except Exception as e:  # report it, and try once more so the run goes on
                start_failures.append(repr(e))
                a.procs.pop("smtpd", None)
                a.start("smtpd")
        # the last kill with the senders still busy: whatever it leaves in temp/ must be
        # gone after the next start
        time.sleep(rnd.uniform(0.3, 1.0))
        a.kill("smtpd")
        kills += 1
    finally:
        stop.set()
        for s in senders:
            s.join(15)
    assert not any(s.is_alive() for s in senders), "a sender hung"
    left_in_temp = temp_files(a)
    (a.root / "temp" / "1.M1P1Q1.stale.tmp").write_bytes(b"Return-Path: <>\r\npartial")
    a.start("smtpd")
    assert temp_files(a) == [], "temp/ not cleaned at start: %r" % temp_files(a)
    assert a.stop("smtpd") == 0

    assert not start_failures, "smtpd did not restart after SIGKILL: %r" % start_failures
    sent, acked = {}, {}
    refused, unexpected = [], []
    for s in senders:
        sent.update(s.sent)
        acked.update(s.acked)
        refused += s.refused
        unexpected += s.unexpected
    assert not unexpected, "recipients refused: %r" % unexpected[:5]
    # a temporary failure is allowed (the message was not acknowledged), a permanent one not
    assert not [r for r in refused if r[0] >= 500], "transactions refused: %r" % refused[:5]
    assert kills >= 10
    assert len(acked) >= 50, "only %d messages acknowledged in %d s" % (len(acked), RUN_SECONDS)

    # every stored file is a whole message we sent
    stored = stored_messages(a)
    copies = {}  # (mailbox, token) -> count
    partial = []
    for path, data in stored.items():
        mailbox = path.rsplit("/", 1)[0]
        msg = email.message_from_bytes(data)
        mid = msg.get("Message-ID", "")
        token = mid.strip("<>").split("@")[0]
        if token not in sent:
            partial.append("%s: unknown or damaged header (Message-ID %r)" % (path, mid))
            continue
        expected = sent[token][1]
        if not data.startswith(b"Return-Path: <") or not data.endswith(expected):
            partial.append("%s: %d bytes, not the whole message of %d bytes"
                           % (path, len(data), len(expected)))
            continue
        copies[(mailbox, token)] = copies.get((mailbox, token), 0) + 1
    assert not partial, "partial or damaged files:\n" + "\n".join(partial[:10])

    lost = []
    for token, rcpts in acked.items():
        for r in rcpts:
            if not r.endswith("@example.test"):
                continue
            mailbox = "example.test/" + r.split("@")[0]
            if copies.get((mailbox, token), 0) == 0:
                lost.append("%s for %s" % (token, r))
    assert not lost, "%d acknowledged deliveries lost (of %d messages), e.g. %r" % (
        len(lost), len(acked), lost[:5])

    dup_acked = [k for k, n in copies.items() if n > 1 and k[1] in acked]
    assert not dup_acked, "an acknowledged message stored twice in one mailbox: %r" % dup_acked[:5]
    extra = sorted({tok for (_, tok) in copies if tok not in acked})
    print("\ncrash test: %d kills, %d messages sent, %d acknowledged, %d stored files, "
          "%d unacknowledged messages stored anyway, %d left in temp/ by the last kill"
          % (kills, len(sent), len(acked), len(stored), len(extra), len(left_in_temp)))
    # the queue: complete files only, one per acknowledged message with remote recipients
    in_queue = {}  # (rcpt, token) -> count
    for path, (env, body) in queued(a).items():
        mid = email.message_from_bytes(body).get("Message-ID", "")
        token = mid.strip("<>").split("@")[0]
        assert token in sent, "%s: unknown message %r" % (path, mid)
        assert body.endswith(sent[token][1]), "%s: not the whole message" % path
        for r in env["RCPT"]:
            in_queue[(r.strip("<>"), token)] = in_queue.get((r.strip("<>"), token), 0) + 1
    damaged = a.root / "mail" / "FORWARD" / "damaged"
    assert not damaged.exists() or os.listdir(damaged) == [], os.listdir(damaged)
    leftovers = [p.name for p in (a.root / "mail" / "FORWARD").iterdir()
                 if p.is_file() and not p.name.endswith((".tmp", ".tm$"))]
    assert leftovers == [], "work files left in mail/FORWARD/: %r" % leftovers[:5]
    remote_acked = [(t, r) for t, rcpts in acked.items() for r in rcpts
                    if not r.endswith("@example.test")]
    lost_remote = [(r, t) for t, r in remote_acked if in_queue.get((r, t), 0) == 0]
    assert not lost_remote, "%d acknowledged remote deliveries not queued, e.g. %r" % (
        len(lost_remote), lost_remote[:5])
    tempfails = [r for r in refused if r[0] < 500]
    print("remote: %d acknowledged, %d queue files, %d temporary failures %r"
          % (len(remote_acked), len(in_queue), len(tempfails), tempfails[:2]))
    assert remote_acked, ("no message with a remote recipient was ever acknowledged; "
                          "temporary failures: %d, e.g. %r" % (len(tempfails), tempfails[:2]))
    # no hidden work files left in the mailboxes either (deliveries are link/rename only)
    hidden = [p for p in (a.root / "mail").rglob(".*") if p.is_file()]
    print("hidden files in mailboxes: %r" % [str(p) for p in hidden][:5])
