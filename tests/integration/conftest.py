"""Shared fixtures for Alkaid's integration tests.

Each test gets a fresh root in a temporary directory, free loopback ports, the real
daemons (run in the foreground as child processes) and a demo domain with two users.
Binaries come from $ALKAID_BIN (default: <repo>/build/bin).

    def test_x(alkaid):                 # smtpd + pop3imapd running
        alkaid.smtp()                   # smtplib.SMTP connected to port 25's stand-in
        alkaid.pop3()                   # poplib.POP3 connected
        alkaid.user("add", "x@example.test", "--password", "pw")
        alkaid.messages("alice@example.test")   # list of bytes, oldest first
"""
import os
import poplib
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("ALKAID_BIN", REPO / "build" / "bin"))

DOMAIN = "example.test"
USERS = {"alice@example.test": "alice-secret-1", "bob@example.test": "bob-secret-2"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("daemon exited with %s" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("port %d not listening" % port)


def set_ini(path, section, key, value):
    """Sets [section] key=value in an INI file, keeping everything else."""
    lines = Path(path).read_text().splitlines()
    out, in_sec, done = [], False, False
    for line in lines:
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            if in_sec and not done:
                out.append("%s=%s" % (key, value))
                done = True
            in_sec = s[1:-1].lower() == section.lower()
        elif in_sec and not done and "=" in s and not s.startswith(";"):
            if s.split("=", 1)[0].strip().lower() == key.lower():
                out.append("%s=%s" % (key, value))
                done = True
                continue
        out.append(line)
    if not done:
        if not in_sec:
            out.append("[%s]" % section)
        out.append("%s=%s" % (key, value))
    Path(path).write_text("\n".join(out) + "\n")


def client_tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Alkaid:
    """A root with its services. Ports are attributes: smtp_port, submission_port, ..."""

    def __init__(self, root):
        self.root = Path(root)
        self.procs = {}
        self.smtp_port = free_port()
        self.submission_port = free_port()
        self.smtps_port = free_port()
        self.pop3_port = free_port()
        self.pop3s_port = free_port()
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.admin_port = free_port()
        self.web_port = free_port()
        self.ini = self.root / "config" / "alkaid.ini"

    # --- set-up ---------------------------------------------------------------------
    def prepare(self, overrides=None):
        """Creates the root (through alkaid-user, as a user would) and sets test ports."""
        self.user("domain", "list")
        settings = {
            ("System", "Hostname"): "mail.example.test",
            ("SMTP", "Bind"): "127.0.0.1",
            ("SMTP", "Port"): self.smtp_port,
            ("SMTP", "SubmissionPort"): self.submission_port,
            ("SMTP", "TLSPort"): self.smtps_port,
            ("SMTP", "MinFreeSpace"): "0",
            ("POP3", "Bind"): "127.0.0.1",
            ("POP3", "Port"): self.pop3_port,
            ("POP3", "TLSPort"): self.pop3s_port,
            ("IMAP", "Bind"): "127.0.0.1",
            ("IMAP", "Port"): self.imap_port,
            ("IMAP", "TLSPort"): self.imaps_port,
            ("Control", "AdminPort"): self.admin_port,
            ("Control", "WebPort"): self.web_port,
            # fast password hashing keeps the suite quick; the default is 10000
            ("Security", "PasswordIterations"): "4096",
        }
        settings.update(overrides or {})
        for (sec, key), val in settings.items():
            set_ini(self.ini, sec, key, val)
        self.user("domain", "add", DOMAIN)
        for addr, pw in USERS.items():
            self.user("add", addr, "--password", pw)

    def set(self, section, key, value):
        set_ini(self.ini, section, key, value)

    def user(self, *args, check=True, input=None):
        r = subprocess.run([str(BIN / "alkaid-user"), "--root", str(self.root), *args],
                           capture_output=True, text=True, input=input, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("alkaid-user %s failed (%d): %s%s" %
                                 (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    # --- daemons --------------------------------------------------------------------
    def start(self, service, wait=True):
        """Starts alkaid-<service> in the foreground; waits until its ports answer."""
        log = open(self.root / ("%s.stderr" % service), "ab")
        p = subprocess.Popen([str(BIN / ("alkaid-" + service)), "--root", str(self.root),
                              "--foreground"], stdout=log, stderr=subprocess.STDOUT)
        self.procs[service] = p
        if wait:
            self.wait_ready(service)
        return p

    def wait_ready(self, service, timeout=15.0):
        p = self.procs[service]
        ports = {"smtpd": [self.smtp_port], "pop3imapd": [self.pop3_port]}.get(service)
        if ports:
            for port in ports:
                wait_port(port, timeout=timeout, proc=p)
        else:
            sock = self.root / "run" / ("%s.sock" % service)
            end = time.time() + timeout
            while not sock.exists():
                if p.poll() is not None or time.time() > end:
                    raise RuntimeError("%s did not start" % service)
                time.sleep(0.05)

    def stop(self, service, sig=signal.SIGTERM, timeout=20.0):
        p = self.procs.pop(service, None)
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise AssertionError("%s did not stop within %ss" % (service, timeout))
        return p.returncode

    def kill(self, service):
        return self.stop(service, sig=signal.SIGKILL)

    def stop_all(self):
        codes = {}
        for name in list(self.procs):
            codes[name] = self.stop(name)
        return codes

    def ctl(self, service, command):
        r = subprocess.run([str(BIN / ("alkaid-" + service)), "--root", str(self.root),
                            "--ctl", command], capture_output=True, text=True, timeout=30)
        return r

    # --- clients --------------------------------------------------------------------
    def smtp(self, port=None, **kw):
        return smtplib.SMTP("127.0.0.1", port or self.smtp_port, timeout=30, **kw)

    def submission(self):
        return smtplib.SMTP("127.0.0.1", self.submission_port, timeout=30)

    def smtps(self):
        return smtplib.SMTP_SSL("127.0.0.1", self.smtps_port, timeout=30,
                                context=client_tls_context())

    def pop3(self):
        return poplib.POP3("127.0.0.1", self.pop3_port, timeout=30)

    def pop3s(self):
        return poplib.POP3_SSL("127.0.0.1", self.pop3s_port, timeout=30,
                               context=client_tls_context())

    def raw(self, port, timeout=10):
        """A plain socket to a port, with a helper to read replies."""
        return RawClient(port, timeout)

    # --- looking at the result ----------------------------------------------------
    def mailbox_dir(self, address):
        local, domain = address.lower().rsplit("@", 1)
        return self.root / "mail" / domain.replace("*", "%") / local

    def messages(self, address):
        d = self.mailbox_dir(address)
        if not d.exists():
            return []
        names = sorted(n for n in os.listdir(d) if n.endswith(".eml") and not n.startswith("."))
        return [(d / n).read_bytes() for n in names]

    def queue_files(self):
        d = self.root / "mail" / "FORWARD"
        return sorted(d.glob("*.tmp")) if d.exists() else []

    def log(self, channel):
        d = self.root / "log" / channel
        return "".join(p.read_text(errors="replace") for p in sorted(d.glob("*.log")))


class RawClient:
    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; buffered: %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode(errors="replace")

    def reply(self):
        """One SMTP reply (all its lines); returns (code, text of the last line, all lines)."""
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if len(ln) < 4 or ln[3] != "-":
                return int(ln[:3]), ln[4:], lines

    def closed(self, timeout=5):
        """True if the server closes the connection (after any pending data)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def _sanitizer_reports(root):
    bad = []
    for p in Path(root).glob("*.stderr"):
        text = p.read_text(errors="replace")
        if "ERROR: AddressSanitizer" in text or "runtime error:" in text or \
                "ERROR: LeakSanitizer" in text:
            bad.append("%s:\n%s" % (p.name, text[-4000:]))
    return bad


@pytest.fixture
def alkaid_root(tmp_path):
    """A prepared root with test ports and the demo users, nothing running."""
    a = Alkaid(tmp_path / "root")
    a.prepare()
    yield a
    a.stop_all()
    bad = _sanitizer_reports(a.root)
    assert not bad, "sanitizer reports:\n" + "\n".join(bad)


@pytest.fixture
def alkaid(alkaid_root):
    """smtpd and pop3imapd running on a prepared root."""
    alkaid_root.start("smtpd")
    alkaid_root.start("pop3imapd")
    return alkaid_root


# ---- helpers for the SMTP tests (test_smtp*.py) -------------------------------------

def smtp_session(alkaid, port=None, helo="client.example.test", timeout=10):
    """A RawClient past the 220 greeting and EHLO; returns (client, EHLO reply lines)."""
    c = alkaid.raw(port or alkaid.smtp_port, timeout=timeout)
    code, text, _ = c.reply()
    assert code == 220, text
    c.send("EHLO %s\r\n" % helo)
    code, text, lines = c.reply()
    assert code == 250, lines
    return c, lines


def stored_messages(alkaid):
    """Every message file in every mailbox (the queue excluded): {relative path: bytes}."""
    mail = alkaid.root / "mail"
    out = {}
    if not mail.exists():
        return out
    for p in sorted(mail.rglob("*.eml")):
        rel = p.relative_to(mail)
        if rel.parts[0] == "FORWARD" or any(part.startswith(".") for part in rel.parts):
            continue
        out[str(rel)] = p.read_bytes()
    return out


def temp_files(alkaid):
    """Names of the files left in temp/ (hidden ones included)."""
    d = alkaid.root / "temp"
    return sorted(os.listdir(d)) if d.exists() else []


def read_queue_file(path):
    """Parses a mail/FORWARD/<id>.tmp file (src/common/spool.h): returns (envelope, message)
    where envelope maps each key to the list of its values. Raises AssertionError when the
    file is not complete (magic, SIZE, end marker)."""
    data = Path(path).read_bytes()
    assert data.startswith(b"ALKAID-QUEUE 1\n"), data[:40]
    head, sep, rest = data.partition(b"\n\n")
    assert sep, "no end of envelope"
    env = {}
    for line in head.decode().split("\n")[1:]:
        key, _, value = line.partition(" ")
        env.setdefault(key, []).append(value)
    size = int(env["SIZE"][0])
    assert rest[size:] == b"ALKAID-END\n", "end marker missing or size wrong: %r" % rest[size:][:40]
    return env, rest[:size]
