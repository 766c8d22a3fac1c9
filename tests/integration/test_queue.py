"""test_queue.py - outbound delivery: the FORWARD queue, the SMTP client, bounces

A real alkaid-smtpd on a fresh root accepts mail for remote domains from 127.0.0.1
(RelayIPs) and delivers it to scriptable SMTP sinks (smtpsink.py) listening on
127.0.0.N:25 or [::1]:25, found through a test DNS server (the dns_server fixture,
dnsserver.py). The tests look at what an administrator and a sender would see: what the
receiving server got on the wire, the files in mail/FORWARD/, the DSNs in the sender's
mailbox, `alkaid-user queue ...` and `alkaid-smtpd --ctl ...`.

Timeouts and retry waits are set to a few seconds, and every result is polled for with
a deadline (wait_for), so each test takes a few seconds at most.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BIN, free_port, read_queue_file
from queue_helpers import (Dsn, SinkFactory, dsns, failed_files, next_ip, queue_dir,
                           queue_empty, queue_list, queue_names, read_envelope, wait_for)

ALICE = "alice@example.test"
HOSTNAME = "mail.example.test"


# ---- set-up ------------------------------------------------------------------------------

class Dns:
    """Records for the test DNS server, in the words of the tests."""

    def __init__(self, server):
        self.server = server

    def mx(self, domain, *mxs):
        """mx("remote.test", (10, "mx1.remote.test"), (20, "mx2.remote.test"))"""
        for pref, host in mxs:
            self.server.add(domain, "MX", (pref, host))

    def a(self, name, *ips):
        for ip in ips:
            self.server.add(name, "A", ip)

    def aaaa(self, name, *ips):
        for ip in ips:
            self.server.add(name, "AAAA", ip)

    def null_mx(self, domain):
        self.server.add(domain, "MX", (0, ""))

    def servfail(self, name):
        self.server.servfail(name)

    def timeout(self, name):
        self.server.timeout(name)

    def clear(self, name):
        """Forgets everything about name (records and failure modes)."""
        key = name.rstrip(".").lower()
        with self.server._lock:
            self.server.records.pop(key, None)
            self.server.special.pop(key, None)

    def route(self, domain, ip, mxname=None):
        """domain MX 10 mx.<domain>, mx.<domain> A/AAAA ip. Returns the MX name."""
        mxname = mxname or "mx." + domain
        self.mx(domain, (10, mxname))
        if ":" in ip:
            self.aaaa(mxname, ip)
        else:
            self.a(mxname, ip)
        return mxname


@pytest.fixture
def smtp_sink():
    """Factory: smtp_sink(host=None, port=25, **options) -> a started SmtpSink on the next
    127.0.0.N:25 (see smtpsink.py for the options); all stopped after the test."""
    f = SinkFactory()
    yield f
    f.close()


@pytest.fixture
def dns(dns_server):
    return Dns(dns_server)


BASE = {
    ("Queue", "Hold"): "0",
    ("SMTP", "RelayIPs"): "127.0.0.1",
    ("DNS", "Timeout"): "1",
    ("DNS", "Tries"): "1",
    ("Queue", "RetrySchedule"): "2s",
    ("Queue", "ConnectTimeout"): "2",
    ("Queue", "CommandTimeout"): "2",
    ("Queue", "DataTimeout"): "3",
    ("Queue", "ScanInterval"): "60",
    ("Queue", "DelayWarning"): "0",
}


@pytest.fixture
def q(alkaid_root, dns, dns_server):
    """A prepared root set up for outbound delivery through the test DNS server; smtpd
    not started yet (tests set what they need, then q.start("smtpd"))."""
    a = alkaid_root
    for (sec, key), val in BASE.items():
        a.set(sec, key, val)
    a.set("DNS", "Servers", "127.0.0.1:%d" % dns_server.port)
    a.dns = dns
    return a


_n = [0]


def message(subject="queue test", body="Hello there.\r\n", to="bob@remote.test",
            sender=ALICE, extra=""):
    _n[0] += 1
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <q%d.%s@example.test>\r\n"
            "%s\r\n%s" % (sender, to, subject, _n[0], os.urandom(4).hex(), extra, body)).encode()


def send(a, rcpts, sender=ALICE, msg=None, subject="queue test"):
    """Submits one message through smtpd's port 25 (relaying for 127.0.0.1)."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    msg = msg if msg is not None else message(subject, to=rcpts[0], sender=sender or "x@y")
    with a.smtp() as s:
        refused = s.sendmail(sender, rcpts, msg)
    assert refused == {}, refused
    return msg


def envelopes(a):
    out = []
    for name in queue_names(a):
        try:
            out.append(read_envelope(queue_dir(a) / name))
        except FileNotFoundError:
            pass
    return out


def attempted(a, n=1):
    """True once every queued message has ATTEMPTS >= n (and there is one)."""
    envs = envelopes(a)
    return bool(envs) and all(int(e.get("ATTEMPTS", ["0"])[0]) >= n for e in envs)


def queue_ids(a):
    return [n.rsplit(".", 1)[0] for n in queue_names(a)]


def user_cli(a, *args):
    return subprocess.run([str(BIN / "alkaid-user"), "--root", str(a.root), *args],
                          capture_output=True, text=True, timeout=30)


def smtp_log(a):
    return a.log("smtp")


# ---- delivery ------------------------------------------------------------------------------

def test_delivers_to_mx_at_once_and_removes_queue_file(q, smtp_sink):
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    t0 = time.time()
    msg = send(q, "bob@remote.test")
    [t] = sink.wait_delivered(1, timeout=5)
    assert time.time() - t0 < 3, "not tried at once"
    assert t.mail_from == ALICE
    assert t.rcpts == ["bob@remote.test"]
    assert t.ehlo == HOSTNAME
    assert t.message.startswith(b"Received: "), t.message[:200]
    assert t.message.endswith(msg)
    assert not re.search(rb"^Return-Path:", t.message, re.M | re.I)
    wait_for(lambda: queue_empty(q), 5, what="queue file removed")
    assert failed_files(q) == []
    assert dsns(q, ALICE) == []
    log = wait_for(lambda: "bob@remote.test" in smtp_log(q) and smtp_log(q), 5,
                   what="delivery logged")
    assert sink.host in log or "mx.remote.test" in log, log[-2000:]


def test_helo_name_setting(q, smtp_sink):
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "HeloName", "out.example.test")
    q.start("smtpd")
    send(q, "bob@remote.test")
    [t] = sink.wait_delivered(1)
    assert t.ehlo == "out.example.test"
    assert t.conn.ehlo_verb == "EHLO"


def test_helo_fallback_when_ehlo_refused(q, smtp_sink):
    sink = smtp_sink(helo_only=True, tls=False)
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    msg = send(q, "bob@remote.test")
    [t] = sink.wait_delivered(1)
    assert t.conn.ehlo_verb == "HELO"
    assert t.ehlo == HOSTNAME
    assert t.message.endswith(msg)
    # no ESMTP parameters may be sent to a HELO-only server
    assert t.mail_params == ""


def test_multiline_replies_are_understood(q, smtp_sink):
    sink = smtp_sink(multiline=True, rcpt_reject={"gone@remote.test"})
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    send(q, ["bob@remote.test", "gone@remote.test"])
    [t] = sink.wait_delivered(1)
    assert t.rcpts == ["bob@remote.test"]
    [d] = wait_for(lambda: dsns(q, ALICE, "failed"), 10, what="bounce")
    r = d.recipient("gone@remote.test")
    assert r["status"] == "5.1.1"
    assert "Recipient address rejected" in r["diagnostic-code"]


def test_dot_stuffing_and_crlf_on_the_wire(q, smtp_sink):
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    body = (".starts with a dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n . space dot\r\n"
            "...\r\nlast line\r\n")
    msg = send(q, "bob@remote.test", msg=message("dots", body=body))
    [t] = sink.wait_delivered(1)
    assert t.message.endswith(msg), t.message[-300:]
    assert b"\r\n...starts with a dot\r\n" not in t.raw_data
    assert b"\r\n..starts with a dot\r\n...two dots\r\n..\r\nafter a lone dot\r\n . space dot" \
           b"\r\n....\r\nlast line\r\n" in t.raw_data, t.raw_data[-300:]
    assert not re.search(rb"(?<!\r)\n", t.raw_data), "bare LF on the wire"
    assert not re.search(rb"\r(?!\n)", t.raw_data), "bare CR on the wire"


def test_bare_lf_in_submitted_message_becomes_crlf(q, smtp_sink):
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    c = q.raw(q.smtp_port)
    assert c.reply()[0] == 220
    for cmd, want in (("EHLO client.test", 250), ("MAIL FROM:<%s>" % ALICE, 250),
                      ("RCPT TO:<bob@remote.test>", 250), ("DATA", 354)):
        c.send(cmd + "\r\n")
        code, text, _ = c.reply()
        assert code == want, (cmd, text)
    c.send(b"Subject: bare lf\nTo: <bob@remote.test>\n\nline one\nline two\n..dot line\r\n"
           b"line four\n\r\n.\r\n")
    code, text, _ = c.reply()
    assert code == 250, text
    c.close()
    [t] = sink.wait_delivered(1)
    # a bare LF is no SMTP line end (docs/security.md), so "..dot line" after one was not
    # un-stuffed by smtpd: it is stored as it came and must be stuffed again on the wire
    assert t.message.endswith(b"Subject: bare lf\r\nTo: <bob@remote.test>\r\n\r\nline one\r\n"
                              b"line two\r\n..dot line\r\nline four\r\n\r\n"), t.message
    assert b"\r\nline two\r\n...dot line\r\n" in t.raw_data
    assert not re.search(rb"(?<!\r)\n", t.raw_data)


def _write_queue_file(a, sender, rcpts, msg, created=None):
    """Puts a queue file into mail/FORWARD/ as another program would (docs/storage.md)."""
    now = int(created or time.time())
    qid = "%d.M%06dP%dQ1.%s" % (now, 123456, os.getpid(), HOSTNAME)
    env = ["ALKAID-QUEUE 1", "ID " + qid, "CREATED %d" % now, "FROM <%s>" % sender]
    env += ["RCPT <%s>" % r for r in rcpts]
    env += ["ATTEMPTS 0", "NEXT-TRY 0", "SIZE %d" % len(msg)]
    data = ("\n".join(env) + "\n\n").encode() + msg + b"ALKAID-END\n"
    d = queue_dir(a)
    d.mkdir(parents=True, exist_ok=True)
    (d / (qid + ".new")).write_bytes(data)
    os.rename(d / (qid + ".new"), d / (qid + ".tmp"))
    return qid


def test_queue_file_with_bare_lf_and_dots_is_sent_canonical(q, smtp_sink):
    """Whatever the stored message holds, the wire has CRLF only and dot-stuffing."""
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    stored = b"Subject: odd file\nTo: <bob@remote.test>\n\n.x\n.\nmixed\r\nend"
    _write_queue_file(q, ALICE, ["bob@remote.test"], stored)
    q.start("smtpd")
    [t] = sink.wait_delivered(1)
    assert t.message == b"Subject: odd file\r\nTo: <bob@remote.test>\r\n\r\n.x\r\n.\r\nmixed\r\n" \
                        b"end\r\n", t.message
    assert t.raw_data.endswith(b"\r\n\r\n..x\r\n..\r\nmixed\r\nend\r\n"), t.raw_data
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


def test_scan_picks_up_files_written_by_others(q, smtp_sink):
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "ScanInterval", "1")
    q.start("smtpd")
    msg = b"Subject: dropped in\r\n\r\nfrom another program\r\n"
    _write_queue_file(q, ALICE, ["bob@remote.test"], msg)
    [t] = sink.wait_delivered(1, timeout=5)
    assert t.message == msg
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


def test_large_message_with_many_dot_lines(q, smtp_sink):
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    lines = []
    for i in range(40000):
        lines.append(("." * (i % 4)) + "line %d " % i + "x" * (i % 97))
    body = "\r\n".join(lines) + "\r\n"
    msg = send(q, "bob@remote.test", msg=message("large", body=body))
    assert len(msg) > 2_000_000
    [t] = sink.wait_delivered(1, timeout=15)
    assert t.message.endswith(msg)
    assert not re.search(rb"(?<!\r)\n", t.raw_data)
    assert t.raw_data.count(b"\r\n.") == sum(1 for ln in lines if ln.startswith("."))
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


def test_no_esmtp_parameters_the_server_did_not_offer(q, smtp_sink):
    sink = smtp_sink(size=None, eightbitmime=False)
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    send(q, "bob@remote.test")
    [t] = sink.wait_delivered(1)
    assert t.mail_params == "", t.mail_params


def test_eight_bit_message_delivered_unchanged(q, smtp_sink):
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    body = "Grüße aus Köln – ½ €\r\n".encode("utf-8")
    msg = message("8bit", extra="Content-Type: text/plain; charset=utf-8\r\n"
                                "Content-Transfer-Encoding: 8bit\r\n").replace(
        b"Hello there.\r\n", body)
    with q.smtp() as s:
        s.ehlo()
        assert s.sendmail(ALICE, ["bob@remote.test"], msg, mail_options=["BODY=8BITMIME"]) == {}
    [t] = sink.wait_delivered(1)
    assert t.message.endswith(msg)
    assert "BODY=8BITMIME" in t.mail_params.upper()


def test_several_recipients_same_domain_one_transaction(q, smtp_sink):
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    rcpts = ["bob@remote.test", "carol@remote.test", "dave@remote.test"]
    send(q, rcpts)
    [t] = sink.wait_delivered(1)
    assert sorted(t.rcpts) == rcpts
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    time.sleep(0.3)
    assert len(sink.transactions) == 1


def test_recipients_at_two_domains_go_to_their_own_mx(q, smtp_sink):
    s1, s2 = smtp_sink(), smtp_sink()
    q.dns.route("remote.test", s1.host)
    q.dns.route("other.test", s2.host)
    q.start("smtpd")
    send(q, ["bob@remote.test", "carol@other.test", "dan@remote.test"])
    [t1] = s1.wait_delivered(1)
    [t2] = s2.wait_delivered(1)
    assert sorted(t1.rcpts) == ["bob@remote.test", "dan@remote.test"]
    assert t2.rcpts == ["carol@other.test"]
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


def test_refused_recipient_bounced_others_delivered(q, smtp_sink):
    sink = smtp_sink(rcpt_reject={"gone@remote.test"})
    mx = q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    msg = send(q, ["bob@remote.test", "gone@remote.test", "carol@remote.test"],
               msg=message("to be bounced", to="bob@remote.test"))
    [t] = sink.wait_delivered(1)
    assert sorted(t.rcpts) == ["bob@remote.test", "carol@remote.test"]
    [d] = wait_for(lambda: dsns(q, ALICE, "failed"), 10, what="bounce in alice's mailbox")
    # RFC 3464 structure
    assert d.sender.lower().replace("<", "").replace(">", "").split()[-1] == \
        "mailer-daemon@" + HOSTNAME, d.sender
    assert d.subject.startswith("Undelivered Mail Returned to Sender"), d.subject
    assert d.content_type == "multipart/report"
    assert d.report_type == "delivery-status"
    assert d.part_types[:2] == ["text/plain", "message/delivery-status"], d.part_types
    assert d.part_types[2] in ("text/rfc822-headers", "message/rfc822-headers",
                               "message/rfc822"), d.part_types
    assert d.text and "gone@remote.test" in d.text
    assert d.per_message["reporting-mta"].replace(" ", "") == "dns;" + HOSTNAME
    assert "arrival-date" in d.per_message
    assert len(d.recipients) == 1, d.recipients
    r = d.recipient("gone@remote.test")
    assert r["final-recipient"].replace(" ", "").lower() == "rfc822;gone@remote.test"
    assert r["action"].lower() == "failed"
    assert r["status"] == "5.1.1"
    assert r["remote-mta"].replace(" ", "").lower().startswith("dns;"), r
    assert mx in r["remote-mta"] or sink.host in r["remote-mta"], r
    assert r["diagnostic-code"].replace(" ", "").lower().startswith("smtp;"), r
    assert "550" in r["diagnostic-code"] and "User unknown" in r["diagnostic-code"], r
    assert b"Subject: to be bounced" in d.headers
    assert msg.split(b"\r\n\r\n", 1)[1] not in d.headers  # headers only
    # the failed copy is kept, nothing stays in the queue
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    failed = failed_files(q)
    assert len(failed) == 1, failed
    env = read_envelope(failed[0])
    assert "<gone@remote.test>" in env.get("RCPT", []), env
    # the DSN itself is not sent anywhere else
    assert len(sink.transactions) == 1


def test_tempfailed_recipient_stays_queued_and_is_retried(q, smtp_sink):
    sink = smtp_sink(rcpt_tempfail={"later@remote.test"})
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    msg = send(q, ["bob@remote.test", "later@remote.test"])
    [t] = sink.wait_delivered(1)
    assert t.rcpts == ["bob@remote.test"]
    # the queue file is rewritten with the undelivered recipient only
    env = wait_for(lambda: [e for e in envelopes(q) if int(e["ATTEMPTS"][0]) >= 1], 5,
                   what="queue file rewritten")[0]
    assert env["RCPT"] == ["<later@remote.test>"], env
    assert int(env["NEXT-TRY"][0]) > time.time() - 1
    [name] = queue_names(q)
    read_queue_file(queue_dir(q) / name)  # still a complete file
    sink.rcpt_tempfail.clear()
    [_, t2] = sink.wait_delivered(2, timeout=10)
    assert t2.rcpts == ["later@remote.test"]
    assert t2.message == t.message
    assert t2.message.endswith(msg)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert dsns(q, ALICE) == []


def test_mixed_results_delivered_refused_tempfailed(q, smtp_sink):
    sink = smtp_sink(rcpt_reject={"gone@remote.test"}, rcpt_tempfail={"later@remote.test"})
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    send(q, ["bob@remote.test", "gone@remote.test", "later@remote.test"])
    [t] = sink.wait_delivered(1)
    assert t.rcpts == ["bob@remote.test"]
    [d] = wait_for(lambda: dsns(q, ALICE, "failed"), 10, what="bounce")
    assert [r["final-recipient"].split(";")[-1].strip() for r in d.recipients] == \
        ["gone@remote.test"]
    env = wait_for(lambda: [e for e in envelopes(q) if int(e["ATTEMPTS"][0]) >= 1], 5,
                   what="queue file rewritten")[0]
    assert env["RCPT"] == ["<later@remote.test>"], env
    assert len(queue_names(q)) == 1, queue_names(q)
    sink.rcpt_tempfail.clear()
    [_, t2] = sink.wait_delivered(2, timeout=10)
    assert t2.rcpts == ["later@remote.test"]
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert len(dsns(q, ALICE)) == 1


@pytest.mark.parametrize("how", ["rcpt-550", "other-domain-nxdomain"])
def test_partly_refused_message_not_sent_again_after_restart(q, smtp_sink, how):
    """Once every recipient has its outcome, nothing of the message is left to send:
    a restart must not send it again (duplicates)."""
    sink = smtp_sink(rcpt_reject={"gone@remote.test"})
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    gone = "gone@remote.test" if how == "rcpt-550" else "gone@nowhere.test"
    send(q, ["bob@remote.test", gone])
    sink.wait_delivered(1)
    wait_for(lambda: dsns(q, ALICE, "failed"), 10, what="bounce")
    time.sleep(0.5)
    q.stop("smtpd")
    left = queue_names(q)
    q.start("smtpd")
    time.sleep(2)
    assert len(sink.delivered) == 1, "sent again after a restart: %r (queue had %r)" % (
        sink.delivered, left)
    assert len(dsns(q, ALICE)) == 1
    assert left == [], "left in mail/FORWARD/ after every recipient was done: %r" % left


def test_recipient_limit_452_rest_sent_later(q, smtp_sink):
    sink = smtp_sink(rcpt_limit=2)
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "RetrySchedule", "1s")
    q.start("smtpd")
    rcpts = ["r%d@remote.test" % i for i in range(5)]
    send(q, rcpts)
    wait_for(lambda: sink.delivered_rcpts() == rcpts and queue_empty(q), 15,
             what="all 5 recipients delivered (got %r)" % sink.delivered_rcpts())
    assert len(sink.delivered_rcpts()) == 5  # each exactly once
    assert dsns(q, ALICE) == []


def test_domain_case_does_not_split_transaction(q, smtp_sink):
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    send(q, ["bob@remote.test", "carol@REMOTE.Test"])
    [t] = sink.wait_delivered(1)
    assert sorted(r.lower() for r in t.rcpts) == ["bob@remote.test", "carol@remote.test"]
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert len(sink.transactions) == 1


def test_pipelining_only_when_offered(q, smtp_sink):
    piped, plain = smtp_sink(), smtp_sink(pipelining=False)
    q.dns.route("piped.test", piped.host)
    q.dns.route("plain.test", plain.host)
    q.start("smtpd")
    send(q, ["a@piped.test", "b@piped.test", "c@piped.test"], msg=message(to="a@piped.test"))
    send(q, ["a@plain.test", "b@plain.test", "c@plain.test"], msg=message(to="a@plain.test"))
    [t1] = piped.wait_delivered(1)
    [t2] = plain.wait_delivered(1)
    assert not t2.conn.pipelined, "pipelined to a server without PIPELINING: %r" % \
        t2.conn.commands
    assert t1.conn.pipelined, "PIPELINING offered but not used: %r" % t1.conn.commands


def test_server_closing_cached_connection(q, smtp_sink):
    """A peer that closes the connection after each message (as idle timeouts do): the
    next message still goes out, without a bounce."""
    sink = smtp_sink(close_after_txn=True)
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    for i in range(3):
        send(q, "r%d@remote.test" % i, msg=message("m%d" % i))
        sink.wait_delivered(i + 1, timeout=8)
        time.sleep(0.3)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert dsns(q, ALICE) == []


def test_several_messages_reuse_one_connection(q, smtp_sink):
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    # (the default, 20, would let a burst of 20 messages open 20 connections at once)
    q.set("Queue", "ConnectionsPerDomain", "5")
    q.start("smtpd")
    with q.smtp() as s:
        for i in range(20):
            assert s.sendmail(ALICE, ["r%d@remote.test" % i], message("m%d" % i)) == {}
    sink.wait_delivered(20, timeout=15)
    assert sorted(sink.delivered_rcpts()) == sorted("r%d@remote.test" % i for i in range(20))
    n = len(sink.connections)
    assert sink.max_active <= 5, "%d connections at once to one destination " \
        "(ConnectionsPerDomain=5)" % sink.max_active
    assert n < 20, "every message had its own connection (%d)" % n
    assert max(len(c.transactions) for c in sink.connections) >= 2
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


def test_max_messages_per_connection_and_connections_per_domain(q, smtp_sink):
    sink = smtp_sink(delays={"dot": 0.2})
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "MaxMessagesPerConnection", "3")
    q.set("Queue", "ConnectionsPerDomain", "2")
    q.start("smtpd")
    with q.smtp() as s:
        for i in range(12):
            assert s.sendmail(ALICE, ["r%d@remote.test" % i], message("m%d" % i)) == {}
    sink.wait_delivered(12, timeout=15)
    assert max(len(c.transactions) for c in sink.connections) <= 3
    assert sink.max_active <= 2, "%d connections at once" % sink.max_active
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


# ---- temporary and permanent failures -------------------------------------------------------

TEMP_FAILURES = {
    "refused-greeting": dict(replies={"connect": (421, "4.3.2 Service not available")}),
    "drop-at-connect": dict(drop_at="connect"),
    "mail-451": dict(replies={"mail": (451, "4.3.0 Try again later")}),
    "rcpt-450-all": dict(replies={"rcpt": (450, "4.2.0 Mailbox busy")}),
    "data-451": dict(replies={"data": (451, "4.3.0 Not now")}),
    "dot-451": dict(replies={"dot": (451, "4.3.0 Queue full")}),
    "drop-after-dot": dict(drop_at="dot"),
    "drop-at-mail": dict(drop_at="mail"),
}


@pytest.mark.parametrize("case", sorted(TEMP_FAILURES))
def test_temporary_failure_is_retried(q, smtp_sink, case):
    sink = smtp_sink(**TEMP_FAILURES[case])
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    msg = send(q, "bob@remote.test")
    wait_for(lambda: attempted(q, 1), 8, what="first attempt counted")
    assert sink.delivered == []
    [env] = envelopes(q)
    assert env["RCPT"] == ["<bob@remote.test>"]
    assert dsns(q, ALICE) == []
    sink.replies.clear()
    sink.drop_at = None
    [t] = sink.wait_delivered(1, timeout=10)
    assert t.message.endswith(msg)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert dsns(q, ALICE) == []
    assert failed_files(q) == []


@pytest.mark.parametrize("stage", ["connect", "mail", "data", "dot"])
def test_stall_past_command_timeout_is_temporary(q, smtp_sink, stage):
    sink = smtp_sink(stall_at=stage)
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "CommandTimeout", "2")
    q.set("Queue", "DataTimeout", "2")
    q.start("smtpd")
    t0 = time.time()
    msg = send(q, "bob@remote.test")
    sink.wait(lambda s: s.stalls >= 1, 5)
    wait_for(lambda: attempted(q, 1), 8, what="the attempt to time out")
    took = time.time() - t0
    assert 1.5 < took < 7, "gave up after %.1fs with CommandTimeout=2" % took
    assert sink.delivered == []
    sink.stall_at = None
    [t] = sink.wait_delivered(1, timeout=10)
    assert t.message.endswith(msg)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert dsns(q, ALICE) == []


def test_connection_refused_is_temporary(q, smtp_sink):
    ip = next_ip()  # nothing listens there yet
    q.dns.route("remote.test", ip)
    q.start("smtpd")
    msg = send(q, "bob@remote.test")
    wait_for(lambda: attempted(q, 1), 8, what="first attempt counted")
    assert dsns(q, ALICE) == []
    sink = smtp_sink(ip)
    [t] = sink.wait_delivered(1, timeout=10)
    assert t.message.endswith(msg)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


PERM_FAILURES = {
    "mail-550": ({"mail": (550, "5.7.1 Sender refused by policy")}, "5.7.1", "Sender refused"),
    "rcpt-550": ({"rcpt": (550, "5.1.1 No such user here")}, "5.1.1", "No such user"),
    "data-554": ({"data": (554, "5.6.0 Not taking data")}, "5.6.0", "Not taking data"),
    "dot-554": ({"dot": (554, "5.7.1 Message looks like spam")}, "5.7.1", "looks like spam"),
    "dot-550-no-enhanced": ({"dot": (550, "Rejected for reasons")}, "5.", "Rejected for reasons"),
}


@pytest.mark.parametrize("case", sorted(PERM_FAILURES))
def test_permanent_failure_bounces_to_local_sender(q, smtp_sink, case):
    replies, status, text = PERM_FAILURES[case]
    sink = smtp_sink(replies=replies)
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    send(q, "bob@remote.test", msg=message("perm " + case))
    [d] = wait_for(lambda: dsns(q, ALICE, "failed"), 10, what="bounce")
    assert d.subject.startswith("Undelivered Mail Returned to Sender")
    r = d.recipient("bob@remote.test")
    assert r["action"].lower() == "failed"
    assert r["status"].startswith(status), r
    assert text in r["diagnostic-code"], r
    assert b"Subject: perm " + case.encode() in d.headers
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert len(failed_files(q)) == 1
    assert sink.delivered == []
    # tried once: a permanent failure is not retried
    n = len(sink.connections)
    time.sleep(2.5)
    assert len(sink.connections) == n


def test_bounce_to_remote_sender_is_queued_with_null_sender(q, smtp_sink):
    sink = smtp_sink(rcpt_reject={"gone@remote.test"})
    home = smtp_sink()
    q.dns.route("remote.test", sink.host)
    q.dns.route("sender.test", home.host)
    q.start("smtpd")
    send(q, "gone@remote.test", sender="someone@sender.test",
         msg=message("remote sender", sender="someone@sender.test", to="gone@remote.test"))
    [t] = home.wait_delivered(1, timeout=10)
    assert t.mail_from == ""
    assert t.rcpts == ["someone@sender.test"]
    d = Dsn(t.message)
    assert d.subject.startswith("Undelivered Mail Returned to Sender")
    assert d.content_type == "multipart/report"
    assert "mailer-daemon@" + HOSTNAME in d.sender.lower()
    assert d.recipient("gone@remote.test")["status"] == "5.1.1"
    assert b"Subject: remote sender" in d.headers
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert sink.delivered == []


def test_no_bounce_for_null_sender(q, smtp_sink):
    sink = smtp_sink(rcpt_reject={"gone@remote.test"})
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    send(q, "gone@remote.test", sender="", msg=message("a bounce itself", sender="MAILER-DAEMON@x.test",
                                                         to="gone@remote.test"))
    wait_for(lambda: sink.transactions, 5, what="the attempt")
    wait_for(lambda: queue_empty(q), 5, what="message dropped")
    time.sleep(1)
    assert len(sink.transactions) == 1, sink.transactions
    assert queue_empty(q)
    assert dsns(q, ALICE) == []
    assert "gone@remote.test" in smtp_log(q)


# ---- routing -------------------------------------------------------------------------------

def test_bounce_to_unroutable_sender_is_dropped(q, smtp_sink):
    """A DSN that cannot be delivered itself (sender domain NXDOMAIN) ends there: no
    DSN about the DSN, nothing left in the queue."""
    sink = smtp_sink(rcpt_reject={"gone@remote.test"})
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    send(q, "gone@remote.test", sender="someone@nowhere-sender.test",
         msg=message("double bounce", sender="someone@nowhere-sender.test",
                     to="gone@remote.test"))
    wait_for(lambda: sink.transactions, 5, what="the attempt")
    wait_for(lambda: queue_empty(q) and len(failed_files(q)) >= 1, 10,
             what="original and DSN done")
    time.sleep(1)
    assert queue_empty(q)
    assert len(sink.transactions) == 1
    assert dsns(q, ALICE) == []


def test_bounce_to_unknown_local_sender_is_dropped(q, smtp_sink):
    sink = smtp_sink(rcpt_reject={"gone@remote.test"})
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    send(q, "gone@remote.test", sender="ghost@example.test",
         msg=message("from a ghost", sender="ghost@example.test", to="gone@remote.test"))
    wait_for(lambda: sink.transactions, 5, what="the attempt")
    wait_for(lambda: queue_empty(q) and failed_files(q), 10, what="message done")
    time.sleep(1)
    assert queue_empty(q)
    assert len(sink.transactions) == 1
    assert q.procs["smtpd"].poll() is None


def test_domain_literal_ipv6(q, smtp_sink):
    sink = smtp_sink("::1")
    q.start("smtpd")
    rcpt = "bob@[IPv6:::1]"
    send(q, rcpt, msg=message("literal v6", to="bob@example.invalid"))
    [t] = sink.wait_delivered(1)
    assert [r.lower() for r in t.rcpts] == [rcpt.lower()]  # the domain part has no case


def test_nxdomain_bounces_with_5_1_2(q):
    q.start("smtpd")  # nothing in DNS for nowhere.test
    send(q, "bob@nowhere.test", msg=message("nx", to="bob@nowhere.test"))
    [d] = wait_for(lambda: dsns(q, ALICE, "failed"), 10, what="bounce")
    r = d.recipient("bob@nowhere.test")
    assert r["status"] == "5.1.2", r
    assert "remote-mta" not in r
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert len(failed_files(q)) == 1


def test_domain_without_mx_or_address_bounces(q):
    q.dns.server.add("txtonly.test", "TXT", "v=spf1 -all")
    q.start("smtpd")
    send(q, "bob@txtonly.test", msg=message("no address", to="bob@txtonly.test"))
    [d] = wait_for(lambda: dsns(q, ALICE, "failed"), 10, what="bounce")
    assert d.recipient("bob@txtonly.test")["status"].startswith("5.1."), d.recipients
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


def test_domain_literal_goes_to_that_address(q, smtp_sink):
    sink = smtp_sink()
    q.start("smtpd")
    rcpt = "bob@[%s]" % sink.host
    send(q, rcpt, msg=message("literal", to=rcpt))
    [t] = sink.wait_delivered(1)
    assert t.rcpts == [rcpt]
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


def test_null_mx_bounces_with_5_1_10(q):
    q.dns.null_mx("nomail.test")
    q.dns.a("nomail.test", "127.0.0.2")
    q.start("smtpd")
    send(q, "bob@nomail.test", msg=message("null mx", to="bob@nomail.test"))
    [d] = wait_for(lambda: dsns(q, ALICE, "failed"), 10, what="bounce")
    assert d.recipient("bob@nomail.test")["status"] == "5.1.10"
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


@pytest.mark.parametrize("how", ["servfail", "timeout"])
def test_dns_failure_is_temporary(q, smtp_sink, how):
    sink = smtp_sink()
    getattr(q.dns, how)("flaky.test")
    q.start("smtpd")
    msg = send(q, "bob@flaky.test", msg=message("dns " + how, to="bob@flaky.test"))
    wait_for(lambda: attempted(q, 1), 8, what="first attempt counted")
    assert dsns(q, ALICE) == []
    assert sink.connections == []
    q.dns.clear("flaky.test")
    q.dns.route("flaky.test", sink.host)
    [t] = sink.wait_delivered(1, timeout=10)
    assert t.message.endswith(msg)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert dsns(q, ALICE) == []


def test_no_mx_falls_back_to_address_record(q, smtp_sink):
    sink = smtp_sink()
    q.dns.a("plain.test", sink.host)
    q.start("smtpd")
    send(q, "bob@plain.test", msg=message(to="bob@plain.test"))
    [t] = sink.wait_delivered(1)
    assert t.rcpts == ["bob@plain.test"]


def test_ipv6_tried_before_ipv4(q, smtp_sink):
    v6, v4 = smtp_sink("::1"), smtp_sink()
    q.dns.mx("dual.test", (10, "mx.dual.test"))
    q.dns.a("mx.dual.test", v4.host)
    q.dns.aaaa("mx.dual.test", "::1")
    q.start("smtpd")
    send(q, "bob@dual.test", msg=message(to="bob@dual.test"))
    v6.wait_delivered(1)
    assert v4.connections == []


def test_mx_preference_order(q, smtp_sink):
    best, second = smtp_sink(), smtp_sink()
    q.dns.mx("remote.test", (20, "mx2.remote.test"), (10, "mx1.remote.test"))
    q.dns.a("mx1.remote.test", best.host)
    q.dns.a("mx2.remote.test", second.host)
    q.start("smtpd")
    send(q, "bob@remote.test")
    best.wait_delivered(1)
    assert second.connections == []


def test_falls_back_to_second_mx_when_first_refuses(q, smtp_sink):
    second = smtp_sink()
    q.dns.mx("remote.test", (10, "mx1.remote.test"), (20, "mx2.remote.test"))
    q.dns.a("mx1.remote.test", next_ip())  # connection refused
    q.dns.a("mx2.remote.test", second.host)
    q.start("smtpd")
    t0 = time.time()
    send(q, "bob@remote.test")
    second.wait_delivered(1, timeout=5)
    assert time.time() - t0 < 4, "fallback waited for a retry"


def test_falls_back_to_second_mx_when_first_tempfails(q, smtp_sink):
    first = smtp_sink(replies={"connect": (421, "4.3.2 Too busy")})
    second = smtp_sink()
    q.dns.mx("remote.test", (10, "mx1.remote.test"), (20, "mx2.remote.test"))
    q.dns.a("mx1.remote.test", first.host)
    q.dns.a("mx2.remote.test", second.host)
    q.start("smtpd")
    send(q, "bob@remote.test")
    second.wait_delivered(1, timeout=5)
    assert len(first.connections) >= 1


def test_mx_host_without_address_skipped(q, smtp_sink):
    second = smtp_sink()
    q.dns.mx("remote.test", (10, "ghost.remote.test"), (20, "mx2.remote.test"))
    q.dns.a("mx2.remote.test", second.host)  # ghost.remote.test: NXDOMAIN
    q.start("smtpd")
    send(q, "bob@remote.test")
    second.wait_delivered(1, timeout=5)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert dsns(q, ALICE) == []


def test_5xx_greeting_skips_to_next_mx(q, smtp_sink):
    first = smtp_sink(replies={"connect": (554, "5.7.1 No service for you")})
    second = smtp_sink()
    q.dns.mx("remote.test", (10, "mx1.remote.test"), (20, "mx2.remote.test"))
    q.dns.a("mx1.remote.test", first.host)
    q.dns.a("mx2.remote.test", second.host)
    q.start("smtpd")
    send(q, "bob@remote.test")
    second.wait_delivered(1, timeout=5)
    assert len(first.connections) >= 1 and first.transactions == []
    assert dsns(q, ALICE) == []


def test_connect_timeout_goes_on_to_next_mx(q, smtp_sink):
    second = smtp_sink()
    q.dns.mx("remote.test", (10, "mx1.remote.test"), (20, "mx2.remote.test"))
    q.dns.a("mx1.remote.test", "10.255.255.1")  # black hole (or unreachable)
    q.dns.a("mx2.remote.test", second.host)
    q.set("Queue", "ConnectTimeout", "1")
    q.start("smtpd")
    t0 = time.time()
    send(q, "bob@remote.test")
    second.wait_delivered(1, timeout=6)
    assert time.time() - t0 < 4


def test_every_address_of_an_mx_is_tried(q, smtp_sink):
    sink = smtp_sink()
    q.dns.mx("remote.test", (10, "mx.remote.test"))
    q.dns.a("mx.remote.test", next_ip(), sink.host)  # first address refuses
    q.start("smtpd")
    t0 = time.time()
    send(q, "bob@remote.test")
    sink.wait_delivered(1, timeout=5)
    assert time.time() - t0 < 4


def test_ipv6_only_mx(q, smtp_sink):
    sink = smtp_sink("::1")
    q.dns.mx("six.test", (10, "mx.six.test"))
    q.dns.aaaa("mx.six.test", "::1")
    q.start("smtpd")
    msg = send(q, "bob@six.test", msg=message("over v6", to="bob@six.test"))
    [t] = sink.wait_delivered(1)
    assert t.conn.peer == "::1"
    assert t.message.endswith(msg)


def test_aaaa_refusing_falls_back_to_a(q, smtp_sink):
    """Both address families of one MX are tried before the attempt counts as failed."""
    sink = smtp_sink()
    q.dns.mx("dual.test", (10, "mx.dual.test"))
    q.dns.aaaa("mx.dual.test", "::1")  # nothing on [::1]:25 in this test
    q.dns.a("mx.dual.test", sink.host)
    q.start("smtpd")
    send(q, "bob@dual.test", msg=message(to="bob@dual.test"))
    sink.wait_delivered(1, timeout=5)


def test_equal_preference_mx_both_used(q, smtp_sink):
    a, b = smtp_sink(), smtp_sink()
    domains = ["eq%d.test" % i for i in range(12)]
    for d in domains:
        q.dns.mx(d, (10, "mxa.eq.test"), (10, "mxb.eq.test"))
    q.dns.a("mxa.eq.test", a.host)
    q.dns.a("mxb.eq.test", b.host)
    q.start("smtpd")
    for d in domains:
        send(q, "bob@" + d, msg=message(to="bob@" + d))
    wait_for(lambda: len(a.delivered) + len(b.delivered) >= len(domains), 15,
             what="all delivered")
    assert a.delivered and b.delivered, "only one of two equal MX hosts used: %d / %d" % (
        len(a.delivered), len(b.delivered))


def test_equal_preference_mx_first_refusing_uses_other(q, smtp_sink):
    sink = smtp_sink()
    q.dns.mx("remote.test", (10, "mxa.remote.test"), (10, "mxb.remote.test"))
    q.dns.a("mxa.remote.test", next_ip())
    q.dns.a("mxb.remote.test", sink.host)
    q.start("smtpd")
    with q.smtp() as s:
        for i in range(4):
            assert s.sendmail(ALICE, ["r%d@remote.test" % i], message("m%d" % i)) == {}
    sink.wait_delivered(4, timeout=6)


# ---- hostile or odd peers ---------------------------------------------------------------------

def test_control_characters_in_reply_do_not_reach_dsn_or_log(q, smtp_sink):
    evil = "5.1.1 no\x1b[31m such\x00 user\rInjected-Header: evil\x7f end"
    sink = smtp_sink(replies={"rcpt": (550, evil)})
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    send(q, "bob@remote.test")
    [d] = wait_for(lambda: dsns(q, ALICE, "failed"), 10, what="bounce")
    diag = d.recipient("bob@remote.test")["diagnostic-code"]
    assert "such" in diag and "end" in diag, diag
    for bad in ("\x1b", "\x00", "\r", "\x7f"):
        assert bad not in diag, (bad, diag)
    assert not re.search(rb"(^|\n|\r)Injected-Header:", d.raw), "header injected into the DSN"
    assert not re.search(rb"\r(?!\n)", d.raw)
    log = smtp_log(q)
    assert "\x1b" not in log and "\x00" not in log


@pytest.mark.parametrize("case", ["ehlo-200-lines", "greeting-20k-line", "garbage-reply"])
def test_hostile_peer_does_not_hurt_smtpd(q, smtp_sink, case):
    kw = {"ehlo-200-lines": dict(extra_extensions=["X-FILLER-%d" % i for i in range(200)]),
          "greeting-20k-line": dict(replies={"connect": (220, "x" * 20000)}),
          "garbage-reply": dict(replies={"mail": (250, "\xff\xfe" * 50)})}[case]
    sink = smtp_sink(**kw)
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    send(q, "bob@remote.test")
    wait_for(lambda: sink.delivered or attempted(q, 1) or dsns(q, ALICE), 10,
             what="the attempt to end")
    assert q.procs["smtpd"].poll() is None, "smtpd died"
    # it still works
    with q.smtp() as s:
        assert s.noop()[0] == 250


def test_stalled_peer_does_not_block_other_deliveries_or_reload(q, smtp_sink):
    slow, fast = smtp_sink(stall_at="dot"), smtp_sink()
    q.dns.route("slow.test", slow.host)
    q.dns.route("fast.test", fast.host)
    q.set("Queue", "DataTimeout", "120")
    q.start("smtpd")
    send(q, "a@slow.test", msg=message(to="a@slow.test"))
    slow.wait(lambda s: s.stalls >= 1, 5)
    send(q, "b@fast.test", msg=message(to="b@fast.test"))
    fast.wait_delivered(1, timeout=5)
    t0 = time.time()
    r = q.ctl("smtpd", "RELOAD")
    assert r.returncode == 0, r.stderr
    assert time.time() - t0 < 3, "RELOAD took %.1fs" % (time.time() - t0)
    send(q, "c@fast.test", msg=message(to="c@fast.test"))
    fast.wait_delivered(2, timeout=5)


STOP_WAIT = 8


@pytest.mark.parametrize("stage", ["connect", "dot"])
def test_stop_during_transmission_is_prompt(q, smtp_sink, stage):
    """SIGTERM while a delivery thread waits for the peer (greeting: CommandTimeout; the
    reply to the final dot: DataTimeout) stops smtpd at once, the file kept for later."""
    sink = smtp_sink(stall_at=stage)
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "CommandTimeout", "120")
    q.set("Queue", "DataTimeout", "120")
    q.start("smtpd")
    send(q, "bob@remote.test")
    sink.wait(lambda s: s.stalls >= 1, 5)
    p = q.procs.pop("smtpd")
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    try:
        code = p.wait(STOP_WAIT)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise AssertionError("smtpd did not stop within %ss of SIGTERM while a delivery "
                             "waited for the peer (stalled at %s, timeouts 120 s)" %
                             (STOP_WAIT, stage))
    assert code == 0
    assert time.time() - t0 < 5, "stop took %.1fs" % (time.time() - t0)
    [name] = queue_names(q)
    read_queue_file(queue_dir(q) / name)  # complete, will be sent again


# ---- SIZE ------------------------------------------------------------------------------------

def test_size_announced_and_oversized_message_fails_without_being_sent(q, smtp_sink):
    sink = smtp_sink(size=3000)
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    small = send(q, "bob@remote.test", msg=message("small"))
    [t] = sink.wait_delivered(1)
    m = re.search(r"SIZE=(\d+)", t.mail_params, re.I)
    assert m, "no SIZE= in MAIL FROM: %r" % t.mail_params
    assert int(m.group(1)) >= len(small)
    send(q, "bob@remote.test", msg=message("big", body=("y" * 70 + "\r\n") * 80))
    [d] = wait_for(lambda: dsns(q, ALICE, "failed"), 10, what="bounce for the big message")
    r = d.recipient("bob@remote.test")
    assert r["status"].startswith("5."), r
    assert [x for x in sink.transactions if x.raw_data is not None] == [t], \
        "the oversized message was transmitted"
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


# ---- TLS ---------------------------------------------------------------------------------------

def test_opportunistic_starttls_used_when_offered(q, smtp_sink):
    sink = smtp_sink(tls="self")
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    send(q, "bob@remote.test")
    [t] = sink.wait_delivered(1)
    assert t.tls
    assert t.conn.tls_version in ("TLSv1.2", "TLSv1.3")
    assert t.ehlo == HOSTNAME  # EHLO again after STARTTLS


def test_tls_may_failed_handshake_retried_without_tls(q, smtp_sink):
    sink = smtp_sink(tls="self", tls_broken=True)
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    t0 = time.time()
    send(q, "bob@remote.test")
    [t] = sink.wait_delivered(1, timeout=8)
    assert not t.tls
    assert sink.tls_failures
    assert time.time() - t0 < 2, "waited for a retry instead of going on without TLS"
    assert dsns(q, ALICE) == []


def test_tls_may_starttls_refused_goes_on_in_cleartext(q, smtp_sink):
    sink = smtp_sink(tls="self", replies={"starttls": (454, "4.7.0 TLS not available")})
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    send(q, "bob@remote.test")
    [t] = sink.wait_delivered(1, timeout=8)
    assert not t.tls
    assert dsns(q, ALICE) == []


def test_tls_none_does_not_use_starttls(q, smtp_sink):
    sink = smtp_sink(tls="self")
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "TLS", "none")
    q.start("smtpd")
    send(q, "bob@remote.test")
    [t] = sink.wait_delivered(1)
    assert not t.tls
    assert not any(c.startswith("STARTTLS") for c in t.conn.commands)


def test_tls_require_without_starttls_is_not_sent_in_cleartext(q, smtp_sink):
    sink = smtp_sink(tls=False)
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "TLS", "require")
    q.start("smtpd")
    send(q, "bob@remote.test")
    wait_for(lambda: attempted(q, 1), 8, what="first attempt counted")
    assert sink.transactions == [], "sent in cleartext"
    assert len(sink.connections) >= 1
    assert dsns(q, ALICE, "failed") == []  # temporary
    # once the peer offers STARTTLS it goes through
    sink.stop()
    sink.tls = "self"
    sink.start()
    [t] = sink.wait_delivered(1, timeout=10)
    assert t.tls


def test_tls_policy_per_domain(q, smtp_sink):
    strict, lax = smtp_sink(tls=False), smtp_sink(tls=False)
    q.dns.route("strict.test", strict.host)
    q.dns.route("lax.test", lax.host)
    q.set("Queue", "TLSPolicy", "strict.test=require")
    q.start("smtpd")
    send(q, ["a@strict.test", "b@lax.test"], msg=message(to="a@strict.test"))
    [t] = lax.wait_delivered(1)
    assert not t.tls
    wait_for(lambda: attempted(q, 1), 8, what="attempt to strict.test counted")
    assert strict.transactions == []
    [env] = envelopes(q)
    assert env["RCPT"] == ["<a@strict.test>"]


def test_tls_verify_refuses_self_signed(q, smtp_sink):
    sink = smtp_sink(tls="self", cert_names=["mx.remote.test"])
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "TLS", "verify")
    q.start("smtpd")
    send(q, "bob@remote.test")
    wait_for(lambda: attempted(q, 1) or dsns(q, ALICE, "failed"), 8,
             what="the attempt to end")
    assert sink.transactions == [], "sent after a certificate that does not verify"
    assert len(sink.connections) >= 1


def test_tls_verify_with_test_ca_delivers(q, smtp_sink):
    sink = smtp_sink(tls="ca", cert_names=["mx.remote.test"])
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "TLS", "verify")
    q.set("Queue", "CAFile", sink.ca_file)
    q.start("smtpd")
    send(q, "bob@remote.test")
    [t] = sink.wait_delivered(1, timeout=5)
    assert t.tls


def test_tls_verify_wrong_name_not_sent(q, smtp_sink):
    sink = smtp_sink(tls="ca", cert_names=["some-other-host.test"])
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "TLSPolicy", "remote.test=verify")
    q.set("Queue", "CAFile", sink.ca_file)
    q.start("smtpd")
    send(q, "bob@remote.test")
    wait_for(lambda: attempted(q, 1) or dsns(q, ALICE, "failed"), 8,
             what="the attempt to end")
    assert sink.transactions == []


# ---- smarthost --------------------------------------------------------------------------------

def _smarthost(q, smtp_sink, **kw):
    port = free_port()
    sink = smtp_sink("127.0.0.1", port, **kw)
    q.set("SMTP", "Smarthost", "127.0.0.1:%d" % port)
    return sink


def test_smarthost_gets_all_remote_mail(q, smtp_sink):
    relay = _smarthost(q, smtp_sink)
    q.start("smtpd")  # no DNS records at all for these domains
    msg = send(q, ["a@nowhere-1.test", "b@nowhere-2.test"])
    relay.wait_delivered(1)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert relay.delivered_rcpts() == ["a@nowhere-1.test", "b@nowhere-2.test"]
    assert all(t.mail_from == ALICE for t in relay.delivered)
    assert relay.delivered[0].message.endswith(msg)


def test_smarthost_by_name(q, smtp_sink):
    port = free_port()
    relay = smtp_sink("127.0.0.1", port)
    q.dns.a("relay.example.net", "127.0.0.1")
    q.set("SMTP", "Smarthost", "relay.example.net:%d" % port)
    q.start("smtpd")
    send(q, "bob@remote.test")
    [t] = relay.wait_delivered(1)
    assert t.rcpts == ["bob@remote.test"]


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_smarthost_auth_over_tls(q, smtp_sink, mech):
    relay = _smarthost(q, smtp_sink, tls="self", auth={"relayuser": "relay pass 1"},
                       auth_mechs=(mech,))
    q.set("SMTP", "SmarthostUser", "relayuser")
    q.set("SMTP", "SmarthostPassword", "relay pass 1")
    q.start("smtpd")
    send(q, "bob@remote.test")
    [t] = relay.wait_delivered(1)
    assert t.tls
    assert t.auth_user == "relayuser"
    assert t.conn.auth_mech == mech
    assert "relay pass 1" not in smtp_log(q)


def test_smarthost_auth_not_sent_without_tls(q, smtp_sink):
    relay = _smarthost(q, smtp_sink, tls=False, auth={"relayuser": "pw"})
    q.set("SMTP", "SmarthostUser", "relayuser")
    q.set("SMTP", "SmarthostPassword", "pw")
    q.start("smtpd")
    send(q, "bob@remote.test")
    wait_for(lambda: attempted(q, 1), 8, what="first attempt counted")
    assert relay.auth_attempts == [], "password sent in cleartext"
    assert relay.transactions == []
    assert dsns(q, ALICE, "failed") == []


def test_smarthost_auth_cleartext_when_tls_none(q, smtp_sink):
    relay = _smarthost(q, smtp_sink, tls="self", auth={"relayuser": "pw"})
    q.set("SMTP", "SmarthostUser", "relayuser")
    q.set("SMTP", "SmarthostPassword", "pw")
    q.set("SMTP", "SmarthostTLS", "none")
    q.start("smtpd")
    send(q, "bob@remote.test")
    [t] = relay.wait_delivered(1)
    assert not t.tls
    assert t.auth_user == "relayuser"


def test_relay_from_only_applies_to_smarthost(q, smtp_sink):
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    q.set("SMTP", "RelayFrom", "relay@example.test")
    q.start("smtpd")
    send(q, "bob@remote.test")
    [t] = sink.wait_delivered(1)
    assert t.mail_from == ALICE


def test_smarthost_login_refused_keeps_mail_queued(q, smtp_sink):
    relay = _smarthost(q, smtp_sink, tls="self", auth={"relayuser": "right"})
    q.set("SMTP", "SmarthostUser", "relayuser")
    q.set("SMTP", "SmarthostPassword", "wrong")
    q.start("smtpd")
    send(q, "bob@remote.test")
    wait_for(lambda: attempted(q, 1), 8, what="first attempt counted")
    assert relay.auth_attempts and relay.transactions == []
    assert dsns(q, ALICE) == []
    relay.auth["relayuser"] = "wrong"
    relay.wait_delivered(1, timeout=10)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert dsns(q, ALICE) == []


def test_smarthost_relay_from_and_bounce_keeps_null_sender(q, smtp_sink):
    relay = _smarthost(q, smtp_sink, rcpt_reject={"gone@remote.test"})
    q.set("SMTP", "RelayFrom", "relay@example.test")
    q.start("smtpd")
    send(q, ["bob@remote.test", "gone@remote.test"], sender="someone@sender.test",
         msg=message("relayfrom", sender="someone@sender.test"))
    relay.wait_delivered(2, timeout=10)
    first, dsn = relay.delivered
    assert first.mail_from == "relay@example.test"
    assert first.rcpts == ["bob@remote.test"]
    assert b"From: <someone@sender.test>" in first.message  # header unchanged
    assert dsn.mail_from == ""
    assert dsn.rcpts == ["someone@sender.test"]
    assert Dsn(dsn.message).recipient("gone@remote.test")["status"] == "5.1.1"


def test_reload_switches_to_smarthost(q, smtp_sink):
    mx = smtp_sink()
    q.dns.route("remote.test", mx.host)
    q.start("smtpd")
    send(q, "bob@remote.test")
    mx.wait_delivered(1)
    relay = _smarthost(q, smtp_sink)
    r = q.ctl("smtpd", "RELOAD")
    assert r.returncode == 0, r.stderr
    send(q, "carol@remote.test")
    [t] = relay.wait_delivered(1, timeout=5)
    assert t.rcpts == ["carol@remote.test"]
    assert len(mx.delivered) == 1


# ---- delay warnings and giving up ------------------------------------------------------------

def test_delay_warning_sent_once(q, smtp_sink):
    sink = smtp_sink(rcpt_tempfail={"bob@remote.test"})
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "DelayWarning", "1s")
    q.set("Queue", "RetrySchedule", "1s")
    q.start("smtpd")
    send(q, "bob@remote.test", msg=message("slow one"))
    [d] = wait_for(lambda: dsns(q, ALICE, "delayed"), 10, what="delay warning")
    assert d.subject.startswith("Delayed Mail"), d.subject
    assert d.content_type == "multipart/report"
    r = d.recipient("bob@remote.test")
    assert r["action"].lower() == "delayed"
    assert r["status"].startswith("4."), r
    assert b"Subject: slow one" in d.headers
    # more failed attempts, still one warning
    n = int(envelopes(q)[0]["ATTEMPTS"][0])
    wait_for(lambda: attempted(q, n + 2), 8, what="two more attempts")
    assert len(dsns(q, ALICE, "delayed")) == 1
    # remembered across a restart
    q.stop("smtpd")
    q.start("smtpd")
    n = int(envelopes(q)[0]["ATTEMPTS"][0])
    wait_for(lambda: attempted(q, n + 2), 8, what="two more attempts after a restart")
    assert len(dsns(q, ALICE, "delayed")) == 1
    assert dsns(q, ALICE, "failed") == []
    sink.rcpt_tempfail.clear()
    sink.wait_delivered(1, timeout=5)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert len(dsns(q, ALICE)) == 1


def test_gives_up_after_give_up_after(q, smtp_sink):
    sink = smtp_sink(rcpt_tempfail={"bob@remote.test"})
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "GiveUpAfter", "60")
    q.start("smtpd")
    send(q, "bob@remote.test", msg=message("never arrives"))
    wait_for(lambda: attempted(q, 1), 8, what="first attempt counted")
    q.stop("smtpd")
    [name] = queue_names(q)
    path = queue_dir(q) / name
    data = path.read_bytes()
    old = int(time.time()) - 3 * 86400
    data = re.sub(rb"\nCREATED \d+\n", b"\nCREATED %d\n" % old, data, count=1)
    data = re.sub(rb"\nNEXT-TRY \d+\n", b"\nNEXT-TRY 0\n", data, count=1)
    path.write_bytes(data)
    q.start("smtpd")
    [d] = wait_for(lambda: dsns(q, ALICE, "failed"), 10, what="bounce after giving up")
    assert d.subject.startswith("Undelivered Mail Returned to Sender")
    r = d.recipient("bob@remote.test")
    assert r["action"].lower() == "failed"
    assert re.match(r"[45]\.\d+\.\d+$", r["status"]), r
    assert "temporarily unavailable" in r.get("diagnostic-code", ""), r
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert len(failed_files(q)) == 1
    assert sink.delivered == []


# ---- queue administration ----------------------------------------------------------------------

def _waiting(q, n=1, rcpts=("bob@remote.test",), schedule="1h"):
    """smtpd started with a destination that refuses connections; n messages queued and
    tried once. Returns the address the sink should later listen on."""
    ip = next_ip()
    q.dns.route("remote.test", ip)
    q.set("Queue", "RetrySchedule", schedule)
    q.start("smtpd")
    for i in range(n):
        send(q, list(rcpts), msg=message("waiting %d" % i, to=rcpts[0]))
    wait_for(lambda: len(queue_names(q)) == n and attempted(q, 1), 8,
             what="%d messages tried once" % n)
    return ip


def test_queue_list_text_and_json(q):
    _waiting(q, 1, rcpts=("bob@remote.test", "carol@remote.test"))
    [qid] = queue_ids(q)
    [e] = queue_list(q)
    assert set(e) >= {"id", "state", "size", "attempts", "next_try", "created", "sender",
                      "recipients"}, e
    assert e["id"] == qid
    assert e["state"] == "waiting"
    assert e["attempts"] >= 1
    assert e["next_try"] > time.time() + 600
    assert abs(e["created"] - time.time()) < 60
    assert e["size"] > 100
    assert ALICE in e["sender"]
    assert sorted(r.strip("<>") for r in e["recipients"]) == ["bob@remote.test",
                                                             "carol@remote.test"]
    out = q.user("queue", "list").stdout
    [line] = [ln for ln in out.splitlines() if qid in ln]
    assert "waiting" in line and ALICE in line and "bob@remote.test" in line, line


def test_queue_show(q):
    _waiting(q, 1)
    [qid] = queue_ids(q)
    out = q.user("queue", "show", qid).stdout
    assert ALICE in out and "bob@remote.test" in out
    assert "Subject: waiting 0" in out
    assert "Hello there." not in out  # envelope and headers, not the body


def test_queue_unknown_id(q):
    q.start("smtpd")
    for cmd in (["show"], ["retry"], ["delete"], ["hold"], ["release"]):
        r = user_cli(q, "queue", *cmd, "1234567890.M1P1Q1.nosuch.test")
        assert r.returncode != 0, (cmd, r.stdout)
        msg = (r.stderr + r.stdout).lower()
        assert "unknown command" not in msg and "usage" not in msg, (cmd, r.stderr)
        assert "1234567890.m1p1q1.nosuch.test" in msg or "no such" in msg or \
            "not found" in msg or "not in the queue" in msg, (cmd, r.stderr)


def test_queue_retry_id_and_all(q, smtp_sink):
    ip = _waiting(q, 3)
    sink = smtp_sink(ip)
    ids = queue_ids(q)
    q.user("queue", "retry", ids[0])
    sink.wait_delivered(1, timeout=5)
    wait_for(lambda: len(queue_names(q)) == 2, 5, what="one message gone")
    assert len(sink.delivered) == 1
    q.user("queue", "retry", "--all")
    sink.wait_delivered(3, timeout=5)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


def test_queue_delete(q, smtp_sink):
    ip = _waiting(q, 2)
    doomed, kept = queue_ids(q)
    q.user("queue", "delete", doomed)
    assert [e["id"] for e in queue_list(q)] == [kept]
    assert not any(n.startswith(doomed) for n in queue_names(q))
    sink = smtp_sink(ip)
    q.user("queue", "retry", "--all")
    sink.wait_delivered(1, timeout=5)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    time.sleep(0.5)
    assert len(sink.delivered) == 1
    assert dsns(q, ALICE) == []


def test_queue_hold_and_release(q, smtp_sink):
    ip = _waiting(q, 1)
    [qid] = queue_ids(q)
    q.user("queue", "hold", qid)
    assert queue_names(q) == [qid + ".hold"]
    [e] = queue_list(q)
    assert e["state"] == "held"
    # still held after a restart
    q.stop("smtpd")
    q.start("smtpd")
    assert queue_names(q) == [qid + ".hold"]
    sink = smtp_sink(ip)
    assert q.ctl("smtpd", "FLUSH").returncode == 0
    # a message sent now goes out; the held one does not
    send(q, "marker@remote.test", msg=message("marker", to="marker@remote.test"))
    [t] = sink.wait_delivered(1, timeout=5)
    assert t.rcpts == ["marker@remote.test"]
    time.sleep(0.5)
    assert len(sink.delivered) == 1
    assert queue_names(q) == [qid + ".hold"]
    q.user("queue", "release", qid)
    [_, t2] = sink.wait_delivered(2, timeout=5)
    assert t2.rcpts == ["bob@remote.test"]
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


def test_ctl_flush_tries_waiting_messages_now(q, smtp_sink):
    ip = _waiting(q, 2)
    sink = smtp_sink(ip)
    r = q.ctl("smtpd", "STATUS")
    assert r.returncode == 0 and "outbound" in r.stdout, r.stdout
    r = q.ctl("smtpd", "FLUSH")
    assert r.returncode == 0, r.stderr
    sink.wait_delivered(2, timeout=5)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


def test_ctl_hold_stops_delivery_until_release(q, smtp_sink):
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    r = q.ctl("smtpd", "HOLD")
    assert r.returncode == 0, r.stderr
    send(q, "bob@remote.test")
    send(q, "carol@remote.test")
    time.sleep(2)
    assert sink.connections == []
    assert len(queue_names(q)) == 2
    r = q.ctl("smtpd", "RELEASE")
    assert r.returncode == 0, r.stderr
    sink.wait_delivered(2, timeout=5)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


# ---- restarts and crashes --------------------------------------------------------------------

def test_restart_with_full_queue_delivers_everything(q, smtp_sink):
    ip = _waiting(q, 3, schedule="2s")
    assert q.stop("smtpd") == 0
    sink = smtp_sink(ip)
    assert len(queue_names(q)) == 3
    q.start("smtpd")
    sink.wait_delivered(3, timeout=8)
    assert sorted(t.message.split(b"Subject: ")[1].split(b"\r\n")[0] for t in sink.delivered) \
        == [b"waiting 0", b"waiting 1", b"waiting 2"]
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")


def test_kill_during_transmission_delivers_after_restart(q, smtp_sink):
    sink = smtp_sink(stall_at="dot")
    q.dns.route("remote.test", sink.host)
    q.set("Queue", "DataTimeout", "60")
    q.start("smtpd")
    msg = send(q, "bob@remote.test")
    sink.wait(lambda s: s.stalls >= 1, 5)
    names = wait_for(lambda: [n for n in queue_names(q) if n.endswith(".tm$")], 3,
                     what="<id>.tm$ while transmitting")
    assert len(names) == 1
    [e] = queue_list(q)
    assert e["state"] == "sending", e
    q.kill("smtpd")
    sink.stall_at = None
    q.start("smtpd")
    t = sink.wait_delivered(1, timeout=10)[0]
    assert t.message.endswith(msg)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")
    assert len(sink.delivered) in (1, 2)


def test_ctl_status_counts_today(q, smtp_sink):
    """ctl STATUS "today": messages accepted, recipients sent out and local deliveries
    of the current (local) day."""
    sink = smtp_sink()
    q.dns.route("remote.test", sink.host)
    q.start("smtpd")
    send(q, ["bob@remote.test", "carol@remote.test"])
    send(q, "alice@example.test", sender="x@remote.test")
    sink.wait_delivered(1, timeout=5)
    wait_for(lambda: queue_empty(q), 5, what="queue emptied")

    def today():
        r = q.ctl("smtpd", "STATUS")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["today"]

    wait_for(lambda: today()["messages_out"] == 2, 5, what="2 recipients sent today")
    t = today()
    assert t["date"] == time.strftime("%Y-%m-%d")
    assert t["messages_in"] == 2 and t["local_deliveries"] == 1, t
