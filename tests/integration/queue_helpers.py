"""queue_helpers.py - fixtures and helpers for the outbound delivery tests (test_queue.py)

    def test_x(smtp_sink):                                 # a SinkFactory
        sink = smtp_sink(rcpt_reject={"x@remote.test"})   # started on the next 127.0.0.N:25
        sink = smtp_sink("::1")                            # IPv6
        ...                                                # all stopped after the test

Addresses: each sink takes the next free address of 127.0.0.2 ... 127.0.0.20 (cycling
over the run; sinks close their sockets with SO_REUSEADDR, so a later test can take the
same one again). next_ip() hands out one without starting anything (for "nothing
listens there").
"""
import email
import email.policy
import itertools
import json
import re
import socket
import time
from pathlib import Path

from smtpsink import SmtpSink

_ips = itertools.cycle(["127.0.0.%d" % i for i in range(2, 21)])
_in_use = set()


def _port_free(ip, port=25):
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(fam) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
            return True
        except OSError:
            return False


def next_ip():
    """The next 127.0.0.N (2..20) with nothing listening on port 25, not handed out to a
    running sink of this test."""
    for _ in range(60):
        ip = next(_ips)
        if ip not in _in_use and _port_free(ip):
            return ip
    raise RuntimeError("no free 127.0.0.N:25")


def wait_for(predicate, timeout=10.0, interval=0.05, what=None):
    """Polls predicate() until it returns something true; returns that value. Raises
    AssertionError (naming `what`) after timeout."""
    end = time.time() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.time() >= end:
            raise AssertionError("timed out after %ss waiting for %s" %
                                 (timeout, what or getattr(predicate, "__name__", predicate)))
        time.sleep(interval)


class SinkFactory:
    """sinks(host=None, port=25, **options) -> a started SmtpSink; close() stops them all.
    The smtp_sink fixture of test_queue.py is one of these."""

    def __init__(self):
        self.sinks = []

    def __call__(self, host=None, port=25, **kw):
        host = host or next_ip()
        s = SmtpSink(host, port, **kw)
        s.start()
        _in_use.add(host)
        self.sinks.append(s)
        return s

    def close(self):
        for s in self.sinks:
            s.stop()
            _in_use.discard(s.host)
        self.sinks = []


# ---- the queue directory --------------------------------------------------------------

def queue_dir(alkaid):
    return alkaid.root / "mail" / "FORWARD"


def queue_names(alkaid, suffixes=(".tmp", ".tm$", ".hold")):
    """Names of the queue files directly in mail/FORWARD/ with one of the suffixes."""
    d = queue_dir(alkaid)
    if not d.exists():
        return []
    return sorted(p.name for p in d.iterdir() if p.is_file() and p.name.endswith(suffixes))


def failed_files(alkaid):
    d = queue_dir(alkaid) / "failed"
    return sorted(d.iterdir()) if d.exists() else []


def queue_empty(alkaid):
    return queue_names(alkaid) == []


def read_envelope(path):
    """The envelope of a queue file as {KEY: [values]} (no completeness check)."""
    data = Path(path).read_bytes()
    head = data.split(b"\n\n", 1)[0].decode(errors="replace").split("\n")
    env = {}
    for line in head[1:]:
        k, _, v = line.partition(" ")
        env.setdefault(k, []).append(v)
    return env


def queue_list(alkaid):
    """`alkaid-user queue list --json` parsed."""
    r = alkaid.user("queue", "list", "--json")
    return json.loads(r.stdout)


# ---- messages and DSNs ------------------------------------------------------------------

class Dsn:
    """A delivery status notification, parsed."""

    def __init__(self, raw):
        self.raw = raw
        self.msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        self.subject = str(self.msg["Subject"] or "")
        self.sender = str(self.msg["From"] or "")
        self.content_type = self.msg.get_content_type()
        self.report_type = self.msg.get_param("report-type")
        self.text = None
        self.per_message = {}
        self.recipients = []
        self.headers = None
        self.part_types = []
        if not self.msg.is_multipart():
            return
        for part in self.msg.get_payload():
            ct = part.get_content_type()
            self.part_types.append(ct)
            if ct == "text/plain" and self.text is None:
                self.text = part.get_payload(decode=True).decode(errors="replace")
            elif ct == "message/delivery-status":
                blocks = part.get_payload()
                if isinstance(blocks, str):  # not parsed: do it by hand
                    blocks = [email.message_from_string(b.strip() + "\n")
                              for b in re.split(r"\r?\n\r?\n", blocks) if b.strip()]
                fields = [{k.lower(): str(v) for k, v in b.items()} for b in blocks]
                if fields:
                    self.per_message = fields[0]
                    self.recipients = fields[1:]
            elif ct in ("text/rfc822-headers", "message/rfc822-headers", "message/rfc822"):
                p = part.get_payload(decode=True)
                if p is None:
                    p = part.get_payload()
                    p = p[0].as_bytes() if isinstance(p, list) else str(p).encode()
                self.headers = p

    def recipient(self, addr):
        for r in self.recipients:
            if addr.lower() in r.get("final-recipient", "").lower():
                return r
        raise AssertionError("no Final-Recipient %s in %r" % (addr, self.recipients))

    def __repr__(self):
        return "<Dsn %r %r>" % (self.subject, self.recipients)


def is_bounce(raw):
    return b"multipart/report" in raw[:4000] and b"delivery-status" in raw


def dsns(alkaid, address, kind=None):
    """The DSNs in a local mailbox; kind "failed" or "delayed" filters on Action."""
    out = []
    for raw in alkaid.messages(address):
        if not is_bounce(raw):
            continue
        d = Dsn(raw)
        if kind and not any(r.get("action", "").lower() == kind for r in d.recipients):
            continue
        out.append(d)
    return out
