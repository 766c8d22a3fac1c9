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
import imaplib
import os
import poplib
import random
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
# The daemons started here are not systemd units, even when the test run itself is one
# (controld refuses to restart services by itself under systemd).
os.environ.pop("INVOCATION_ID", None)

DOMAIN = "example.test"
USERS = {"alice@example.test": "alice-secret-1", "bob@example.test": "bob-secret-2"}


_ports_given = set()
_port_rng = random.Random(os.getpid() ^ int(time.time()))


def free_port():
    """A port nothing listens on, below the kernel's ephemeral range (so a client
    connection made elsewhere in the run cannot take it as its source port before the
    daemon binds it), never the same twice in one run."""
    try:
        lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    for _ in range(1000):
        port = _port_rng.randrange(10000, max(lo, 10001))
        if port in _ports_given:
            continue
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    raise RuntimeError("no free port below %d" % lo)


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
            # remote mail stays in mail/FORWARD/ where the tests look at it; the outbound
            # delivery tests (test_queue.py) turn this off
            ("Queue", "Hold"): "1",
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
        ports = {"smtpd": [self.smtp_port],
                 "pop3imapd": [self.pop3_port, self.imap_port]}.get(service)
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

    def imap(self):
        """imaplib on the plain IMAP port (STARTTLS is the caller's business)."""
        return imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=30)

    def imaps(self):
        return imaplib.IMAP4_SSL("127.0.0.1", self.imaps_port, timeout=30,
                                 ssl_context=client_tls_context())

    def imap_login(self, address="alice@example.test"):
        """An IMAP4_SSL session logged in as address."""
        m = self.imaps()
        m.login(address, USERS[address])
        return m

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
        # the services write their logs in batches, at most 0.1 s late (src/common/log.c)
        time.sleep(0.2)
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
    """Names of the files in temp/ (hidden ones included) that hold anything. smtpd keeps
    up to 64 spent TEMP files, emptied, for the next messages (docs/storage.md)."""
    d = alkaid.root / "temp"
    if not d.exists():
        return []
    return sorted(n for n in os.listdir(d)
                  if not (d / n).is_file() or (d / n).stat().st_size > 0)


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


# ---- helpers for the IMAP tests (test_imap*.py) -------------------------------------

import re as _re


class ImapError(AssertionError):
    pass


class Literal:
    """An IMAP literal argument for ImapClient.command(): synchronizing unless plus=True
    (LITERAL+, RFC 7888)."""

    def __init__(self, data, plus=False):
        self.data = data.encode() if isinstance(data, str) else data
        self.plus = plus


class ImapResult:
    """The outcome of one tagged command: status ("OK"/"NO"/"BAD"), the tagged line's
    text, the untagged responses (raw bytes, literals inline) and the parsed ones."""

    def __init__(self, tag, status, text, untagged):
        self.tag, self.status, self.text, self.untagged = tag, status, text, untagged

    @property
    def code(self):
        """The response code of the tagged line, e.g. "APPENDUID 123 4" (or None)."""
        m = _re.match(r"\[([^\]]*)\]", self.text)
        return m.group(1) if m else None

    def parsed(self):
        return [imap_parse(u) for u in self.untagged]

    def lines(self, kind):
        """The untagged responses whose first word (or word after a number) is kind,
        parsed, e.g. lines("FETCH") -> [["*", "1", "FETCH", [...]], ...]."""
        out = []
        for u in self.untagged:
            t = imap_parse(u)
            if len(t) > 1 and isinstance(t[1], str) and t[1].upper() == kind.upper():
                out.append(t)
            elif len(t) > 2 and isinstance(t[2], str) and t[2].upper() == kind.upper():
                out.append(t)
        return out

    def numbers(self, kind):
        """Numbers of "* n EXISTS"-style responses (kind = EXISTS, EXPUNGE, RECENT)."""
        return [int(t[1]) for t in self.lines(kind) if len(t) > 2 and t[1].isdigit()]

    def fetches(self):
        """{seq: {ATTR: value}} from the FETCH responses (several merged)."""
        out = {}
        for t in self.lines("FETCH"):
            seq = int(t[1])
            items = t[3]
            d = out.setdefault(seq, {})
            for i in range(0, len(items) - 1, 2):
                d[items[i].upper() if isinstance(items[i], str) else items[i]] = items[i + 1]
        return out

    def search(self):
        """The numbers of the SEARCH response (sorted), ignoring a (MODSEQ n) part."""
        nums = []
        for t in self.lines("SEARCH"):
            nums += [int(x) for x in t[2:] if isinstance(x, str) and x.isdigit()]
        return sorted(nums)

    def __repr__(self):
        return "<%s %s %s | %r>" % (self.tag, self.status, self.text, self.untagged[:20])


class ImapClient:
    """A raw IMAP client: commands as text, responses kept as bytes (literals inline,
    exactly as on the wire), a small parser for their structure (imap_parse)."""

    def __init__(self, port, tls=False, timeout=15, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock)
        self.buf = bytearray()
        self.n = 0
        self.greeting = self.readline()

    # --- wire ---
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed; buffered: %r" % bytes(self.buf[:200]))
        self.buf += chunk

    def readline(self):
        """One line without its CRLF (bytes)."""
        start = 0
        while True:
            i = self.buf.find(b"\r\n", start)
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            start = max(0, len(self.buf) - 1)
            self._fill()

    def readexact(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_response(self):
        """One response: a line, and for each literal it announces the literal's octets
        and the rest of the line (bytes, CRLFs kept between the pieces)."""
        out = b""
        while True:
            line = self.readline()
            out += line
            m = _re.search(rb"\{(\d+)\+?\}$", line)
            if not m:
                return out
            out += b"\r\n" + self.readexact(int(m.group(1)))

    def closed(self, timeout=5):
        """True if the server closes the connection (reading whatever comes first)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # --- commands ---
    def next_tag(self):
        self.n += 1
        return "t%d" % self.n

    def command(self, *parts, tag=None, check=None):
        """Sends one command built from parts (str pieces joined by spaces, Literal
        objects as literals) and reads up to its tagged response. check="OK" asserts
        the status."""
        tag = tag or self.next_tag()
        untagged = []
        pending = tag.encode()
        for p in parts:
            if isinstance(p, Literal):
                pending += b" {%d%s}\r\n" % (len(p.data), b"+" if p.plus else b"")
                self.send(pending)
                if not p.plus:
                    while True:
                        r = self.read_response()
                        if r.startswith(b"+"):
                            break
                        if r.startswith(tag.encode() + b" "):
                            st, _, text = r[len(tag) + 1:].decode(errors="replace").partition(" ")
                            res = ImapResult(tag, st, text, untagged)
                            if check and st != check:
                                raise ImapError("%s: expected %s, got %r" % (parts, check, res))
                            return res
                        untagged.append(r)
                pending = p.data
            else:
                pending += b" " + (p.encode() if isinstance(p, str) else p)
        self.send(pending + b"\r\n")
        return self.read_until_tagged(tag, untagged, check, parts)

    def read_until_tagged(self, tag, untagged=None, check=None, what=None):
        untagged = [] if untagged is None else untagged
        tb = tag.encode() + b" "
        while True:
            r = self.read_response()
            if r.startswith(tb):
                st, _, text = r[len(tb):].decode(errors="replace").partition(" ")
                res = ImapResult(tag, st, text, untagged)
                if check and st != check:
                    raise ImapError("%s: expected %s, got %r" % (what, check, res))
                return res
            untagged.append(r)

    def ok(self, *parts):
        return self.command(*parts, check="OK")

    def login(self, user="alice@example.test", password=None):
        return self.ok("LOGIN", imap_quote(user), imap_quote(password or USERS[user]))

    def starttls(self):
        r = self.ok("STARTTLS")
        self.sock = client_tls_context().wrap_socket(self.sock)
        self.buf = bytearray()
        return r

    def select(self, mailbox="INBOX", examine=False, extra=None):
        parts = ["EXAMINE" if examine else "SELECT", imap_quote(mailbox)]
        if extra:
            parts.append(extra)
        return self.ok(*parts)

    def fetch(self, seqset, items, uid=False):
        return self.ok(*(["UID"] if uid else []), "FETCH", seqset, items).fetches()

    def search(self, *criteria, uid=False):
        return self.ok(*(["UID"] if uid else []), "SEARCH", *criteria).search()

    def idle_start(self):
        tag = self.next_tag()
        self.send(tag + " IDLE\r\n")
        r = self.read_response()
        assert r.startswith(b"+"), r
        return tag

    def idle_done(self, tag):
        self.send("DONE\r\n")
        return self.read_until_tagged(tag, check="OK", what="IDLE")

    def logout(self):
        try:
            r = self.command("LOGOUT")
        finally:
            self.close()
        return r


def imap_quote(s):
    """s as an IMAP quoted string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


_ATOM_END = b" ()[]{\r\n\""


def imap_parse(data):
    """Parses one response into a list: atoms as str, strings (quoted or literal) as
    bytes, NIL as None, parenthesised lists as lists. An atom with '[' (BODY[...]<n>) is
    kept whole. The status text after OK/NO/BAD/BYE/PREAUTH is not tokenised: it becomes
    one str."""
    n = len(data)

    def parse_list(pos, depth):
        items = []
        while pos < n:
            c = data[pos:pos + 1]
            if c == b" ":
                pos += 1
            elif c == b"(":
                sub, pos = parse_list(pos + 1, depth + 1)
                items.append(sub)
            elif c == b")":
                if depth == 0:
                    raise ValueError("unbalanced ')' at %d in %r" % (pos, data[:200]))
                return items, pos + 1
            elif c == b'"':
                pos += 1
                s = bytearray()
                while True:
                    if pos >= n:
                        raise ValueError("unterminated quoted string in %r" % data[:200])
                    ch = data[pos:pos + 1]
                    if ch == b"\\":
                        s += data[pos + 1:pos + 2]
                        pos += 2
                    elif ch == b'"':
                        pos += 1
                        break
                    else:
                        s += ch
                        pos += 1
                items.append(bytes(s))
            elif c in (b"{", b"~") and _re.match(rb"~?\{\d+\+?\}\r\n", data[pos:pos + 30]):
                m = _re.match(rb"~?\{(\d+)\+?\}\r\n", data[pos:pos + 30])
                size = int(m.group(1))
                start = pos + m.end()
                if start + size > n:
                    raise ValueError("short literal in %r" % data[:200])
                items.append(data[start:start + size])
                pos = start + size
            else:
                start = pos
                while pos < n and data[pos:pos + 1] not in (b" ", b"(", b")", b"\r", b"\n", b"[") :
                    pos += 1
                if pos < n and data[pos:pos + 1] == b"[":
                    end = data.find(b"]", pos)
                    if end < 0:
                        raise ValueError("missing ']' in %r" % data[:200])
                    pos = end + 1
                    while pos < n and data[pos:pos + 1] not in (b" ", b"(", b")", b"\r", b"\n"):
                        pos += 1
                atom = data[start:pos].decode("latin-1")
                if atom == "":
                    raise ValueError("unexpected %r at %d in %r" % (c, pos, data[:200]))
                items.append(None if atom.upper() == "NIL" else atom)
                if depth == 0 and len(items) == 2 and \
                        atom.upper() in ("OK", "NO", "BAD", "BYE", "PREAUTH"):
                    rest = data[pos:].lstrip(b" ").decode(errors="replace")
                    items.append(rest)
                    return items, n
        if depth:
            raise ValueError("missing ')' in %r" % data[:200])
        return items, pos

    items, _ = parse_list(0, 0)
    return items


def imap_plain(alkaid, login=True, user="alice@example.test"):
    """An ImapClient on port 143 after STARTTLS (and LOGIN)."""
    c = ImapClient(alkaid.imap_port)
    c.starttls()
    if login:
        c.login(user)
    return c


def imap_tls(alkaid, login=True, user="alice@example.test", timeout=15):
    """An ImapClient on the implicit-TLS port (logged in as user)."""
    c = ImapClient(alkaid.imaps_port, tls=True, timeout=timeout)
    if login:
        c.login(user)
    return c


_drop_counter = [0]


def drop_message(alkaid, address, data, folder=None, when=None):
    """Puts a message file straight into a mailbox folder as a delivery would (hidden
    temporary name, then rename to a "<id>.eml" name that sorts after the others).
    when: the file's mtime (Unix time). Returns the path."""
    d = alkaid.mailbox_dir(address)
    if folder and folder.upper() != "INBOX":
        d = d / folder
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    _drop_counter[0] += 1
    now = time.time()
    name = "%010d.M%06dP%dQ%d.droptest.eml" % (int(now), int((now % 1) * 1e6), os.getpid(),
                                               _drop_counter[0])
    tmp = d / (".%s.part" % name)
    tmp.write_bytes(data)
    if when is not None:
        os.utime(tmp, (when, when))
    os.rename(tmp, d / name)
    return d / name


def crlf(text):
    """Text with every line end made CRLF (bytes)."""
    if isinstance(text, str):
        text = text.encode()
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def proc_memory_kb(proc, key="VmHWM"):
    """A figure from /proc/<pid>/status of a daemon (kB)."""
    for line in Path("/proc/%d/status" % proc.pid).read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


@pytest.fixture
def dns_server():
    """A DnsServer (tests/integration/dnsserver.py) on 127.0.0.1 and a free port, started;
    stopped after the test. Fill it with add() / servfail() / timeout() / refused()."""
    from dnsserver import DnsServer
    srv = DnsServer(free_port()).start()
    yield srv
    srv.stop()
