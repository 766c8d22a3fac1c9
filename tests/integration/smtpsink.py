"""smtpsink.py - a scriptable SMTP server for the receiving side of outbound delivery tests

Pure Python (socketserver, ssl); one thread per connection. A sink binds one address and
port (127.0.0.N:25 or [::1]:25 in the queue tests), accepts everything by default, and
can be told to misbehave at any stage. Every behaviour is an attribute read when the
stage is reached, so a test may change it while the sink runs (e.g. tempfail first, then
accept).

    sink = SmtpSink("127.0.0.5", 25, rcpt_reject={"nobody@remote.test"}).start()
    ...
    sink.wait_transactions(1)
    t = sink.delivered[0]          # Transaction: mail_from, rcpts, raw_data, message, tls...
    sink.stop()

Stages (for drop_at / stall_at / replies): "connect" (before the greeting), "ehlo"
(EHLO and HELO), "starttls", "auth", "mail", "rcpt", "data" (the DATA command), "dot"
(after the final dot, before its reply), "rset", "quit".

Certificates: tls="self" makes a self-signed certificate for cert_names; tls="ca" makes a
test CA (sink.ca_file) and a certificate signed by it for cert_names. Both with
`openssl req`, into a temporary directory removed by stop().
"""
import base64
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time

STAGES = ("connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "dot", "rset", "quit")


class Transaction:
    """One MAIL ... final-reply transaction as the sink saw it."""

    def __init__(self, conn):
        self.conn = conn                    # the Connection it belongs to
        self.ehlo = conn.ehlo
        self.tls = conn.tls
        self.auth_user = conn.auth_user
        self.mail_from = None               # the address inside <> ("" for the null path)
        self.mail_params = ""               # what followed the > on the MAIL line
        self.rcpts = []                     # accepted recipients (addresses, no <>)
        self.rcpts_tried = []               # every RCPT TO address, accepted or not
        self.raw_data = None                # bytes between 354 and the ".\r\n" line, as sent
        self.message = None                 # raw_data un-dot-stuffed
        self.reply = None                   # (code, text) given after the final dot
        self.delivered = False              # final reply was 2xx

    def __repr__(self):
        return "<Transaction from=%r rcpts=%r tls=%s size=%s reply=%s>" % (
            self.mail_from, self.rcpts, self.tls,
            None if self.raw_data is None else len(self.raw_data), self.reply)


class Connection:
    def __init__(self, sink, peer):
        self.sink = sink
        self.peer = peer
        self.ehlo = None                    # name given in EHLO or HELO
        self.ehlo_verb = None               # "EHLO" or "HELO"
        self.tls = False
        self.tls_version = None
        self.auth_user = None
        self.auth_mech = None
        self.commands = []                  # every command line received (str, no CRLF)
        self.transactions = []              # Transaction objects started on it
        self.closed = False
        self.quit = False                   # the client sent QUIT
        self.pipelined = False              # a command arrived before the reply to MAIL/RCPT

    def __repr__(self):
        return "<Connection %s ehlo=%r tls=%s txns=%d>" % (
            self.peer, self.ehlo, self.tls, len(self.transactions))


class _Drop(Exception):
    pass


def _run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), r.stderr))


def make_certs(directory, names, ca=False):
    """Writes key.pem and cert.pem for names (first one the CN; all in subjectAltName,
    IP addresses as IP:) into directory; with ca=True also ca.pem/ca.key and the leaf is
    signed by that CA. Returns (cert, key, ca_file or None)."""
    d = str(directory)
    san = ",".join(("IP:%s" % n) if (n.replace(".", "").isdigit() or ":" in n)
                   else ("DNS:%s" % n) for n in names)
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    if not ca:
        _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=%s" % names[0],
              "-addext", "subjectAltName=%s" % san], d)
        return cert, key, None
    ca_key, ca_cert = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-nodes", "-keyout", ca_key, "-out", ca_cert, "-days", "2",
          "-subj", "/CN=Alkaid Test CA",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    csr = os.path.join(d, "leaf.csr")
    _run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=%s" % names[0]], d)
    ext = os.path.join(d, "leaf.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n" % san)
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
          "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext], d)
    return cert, key, ca_cert


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, addr, sink):
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.sink = sink
        super().__init__(addr, _Handler)


class _Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.sink = self.server.sink
        self.sock = self.request
        self.sock.settimeout(0.2)
        self.buf = b""
        self.conn = Connection(self.sink, self.client_address[0])
        with self.sink.cond:
            self.sink.connections.append(self.conn)
            self.sink.active.add(self)
            self.sink.max_active = max(self.sink.max_active, len(self.sink.active))
            self.sink.cond.notify_all()

    def finish(self):
        self.conn.closed = True
        with self.sink.cond:
            self.sink.active.discard(self)
            self.sink.cond.notify_all()
        try:
            self.sock.close()
        except OSError:
            pass

    # --- wire ---------------------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _recv(self):
        while True:
            if self.sink.stopping:
                raise _Drop()
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except ssl.SSLWantReadError:
                continue
            except (OSError, ssl.SSLError):
                raise _Drop()
            if not chunk:
                raise _Drop()
            self.buf += chunk
            return

    def readline(self):
        """One line with its line end (LF-terminated) as bytes."""
        while b"\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise _Drop()
            self._recv()
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def reply(self, code, text):
        """text: a string (may hold \\n for a multi-line reply) or a list of lines."""
        lines = text if isinstance(text, (list, tuple)) else str(text).split("\n")
        if self.sink.multiline and len(lines) == 1 and 200 <= code < 600 and code != 334:
            lines = [lines[0], lines[0]]
        out = "".join("%d-%s\r\n" % (code, ln) for ln in lines[:-1])
        out += "%d %s\r\n" % (code, lines[-1])
        self.send(out)

    def stage(self, name, default):
        """Applies drop_at / stall_at / the configured reply for a stage; returns the
        (code, text) to send."""
        s = self.sink
        if s.delays.get(name):
            time.sleep(s.delays[name])
        if s.drop_at == name:
            raise _Drop()
        if s.stall_at == name:
            self.stall()
        r = s.replies.get(name)
        if callable(r):
            r = r(self.conn)
        return r or default

    def stall(self):
        """Never answer: read and discard until the client goes away or the sink stops."""
        with self.sink.cond:
            self.sink.stalls += 1
            self.sink.cond.notify_all()
        while True:
            self.buf = b""
            self._recv()

    # --- protocol -----------------------------------------------------------------
    def handle(self):
        try:
            self.session()
        except (_Drop, BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass

    def session(self):
        s = self.sink
        code, text = self.stage("connect", (220, "%s ESMTP smtpsink" % s.hostname))
        self.reply(code, text)
        txn = None
        while True:
            raw = self.readline()
            line = raw.rstrip(b"\r\n").decode("latin-1")
            self.conn.commands.append(line)
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb in ("MAIL", "RCPT") and self.buf:
                self.conn.pipelined = True  # the next command came before our reply
            if verb in ("EHLO", "HELO"):
                if verb == "EHLO" and s.helo_only:
                    self.reply(500, "5.5.1 Command unrecognized")
                    continue
                code, text = self.stage("ehlo", None) or (None, None)
                if code is None:
                    code = 250
                    if verb == "EHLO":
                        text = [s.hostname] + self.extensions()
                    else:
                        text = s.hostname
                if 200 <= code < 300:
                    self.conn.ehlo = arg.strip()
                    self.conn.ehlo_verb = verb
                    txn = None
                self.reply(code, text)
            elif verb == "STARTTLS":
                if not s.tls or self.conn.tls:
                    self.reply(502, "5.5.1 STARTTLS not offered")
                    continue
                code, text = self.stage("starttls", (220, "2.0.0 Ready to start TLS"))
                self.reply(code, text)
                if code != 220:
                    continue
                self.buf = b""  # anything pipelined after STARTTLS is discarded
                if s.tls_broken:
                    with s.cond:
                        s.tls_failures.append("broken on purpose")
                        s.cond.notify_all()
                    self.send(b"\x15\x03\x03\x00\x02\x02\x28")  # a TLS alert, then close
                    raise _Drop()
                self.sock.settimeout(10)
                try:
                    self.sock = s.ssl_context.wrap_socket(self.sock, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    with s.cond:
                        s.tls_failures.append(repr(e))
                        s.cond.notify_all()
                    raise _Drop()
                self.sock.settimeout(0.2)
                self.conn.tls = True
                self.conn.tls_version = self.sock.version()
                self.conn.ehlo = None
                self.conn.auth_user = None
                txn = None
            elif verb == "AUTH":
                self.auth(arg)
            elif verb == "MAIL":
                if s.require_tls and not self.conn.tls:
                    self.reply(530, "5.7.0 Must issue a STARTTLS command first")
                    continue
                if s.auth and not self.conn.auth_user:
                    self.reply(530, "5.7.0 Authentication required")
                    continue
                if s.require_ehlo and not self.conn.ehlo:
                    self.reply(503, "5.5.1 EHLO first")
                    continue
                code, text = self.stage("mail", (250, "2.1.0 Ok"))
                if 200 <= code < 300:
                    txn = Transaction(self.conn)
                    up = arg.upper()
                    rest = arg[5:] if up.startswith("FROM:") else arg
                    rest = rest.strip()
                    if rest.startswith("<") and ">" in rest:
                        addr, _, params = rest[1:].partition(">")
                    else:
                        addr, _, params = rest.partition(" ")
                    txn.mail_from = addr
                    txn.mail_params = params.strip()
                    if s.size and "SIZE=" in params.upper():
                        try:
                            declared = int(params.upper().split("SIZE=")[1].split()[0])
                        except ValueError:
                            declared = 0
                        if declared > s.size:
                            txn = None
                            code, text = 552, "5.3.4 Message size exceeds fixed limit"
                    if txn is not None:
                        self.conn.transactions.append(txn)
                        with s.cond:
                            s.transactions.append(txn)
                            s.cond.notify_all()
                self.reply(code, text)
            elif verb == "RCPT":
                if txn is None:
                    self.reply(503, "5.5.1 MAIL first")
                    continue
                rest = arg[3:] if arg.upper().startswith("TO:") else arg
                rest = rest.strip()
                addr = rest[1:].partition(">")[0] if rest.startswith("<") else rest.split(" ")[0]
                txn.rcpts_tried.append(addr)
                code, text = self.stage("rcpt", (250, "2.1.5 Ok"))
                low = addr.lower()
                if low in {a.lower() for a in s.rcpt_reject}:
                    code, text = 550, "5.1.1 <%s>: Recipient address rejected: User unknown" % addr
                elif low in {a.lower() for a in s.rcpt_tempfail}:
                    code, text = 450, "4.2.1 <%s>: Recipient address temporarily unavailable" % addr
                if 200 <= code < 300 and s.rcpt_limit and len(txn.rcpts) >= s.rcpt_limit:
                    code, text = 452, "4.5.3 Too many recipients"
                if 200 <= code < 300:
                    txn.rcpts.append(addr)
                self.reply(code, text)
            elif verb == "DATA":
                if txn is None or not txn.rcpts:
                    self.reply(554 if txn is not None else 503, "5.5.1 No valid recipients")
                    continue
                code, text = self.stage("data", (354, "End data with <CR><LF>.<CR><LF>"))
                self.reply(code, text)
                if code != 354:
                    continue
                self.read_data(txn)
                code, text = self.stage("dot", (250, "2.0.0 Ok: queued as %d" % id(txn)))
                if s.size and len(txn.message) > s.size:
                    code, text = 552, "5.3.4 Message size exceeds fixed limit"
                txn.reply = (code, text)
                txn.delivered = 200 <= code < 300
                with s.cond:
                    s.cond.notify_all()
                self.reply(code, text)
                txn = None
                if s.close_after_txn:
                    raise _Drop()
            elif verb == "RSET":
                code, text = self.stage("rset", (250, "2.0.0 Ok"))
                txn = None
                self.reply(code, text)
            elif verb == "NOOP":
                self.reply(250, "2.0.0 Ok")
            elif verb == "QUIT":
                self.conn.quit = True
                code, text = self.stage("quit", (221, "2.0.0 Bye"))
                self.reply(code, text)
                return
            else:
                self.reply(502, "5.5.2 Command not implemented")

    def extensions(self):
        s = self.sink
        ext = []
        if s.pipelining:
            ext.append("PIPELINING")
        if s.size is not None:
            ext.append("SIZE %d" % s.size if s.size else "SIZE")
        if s.eightbitmime:
            ext.append("8BITMIME")
        ext.append("ENHANCEDSTATUSCODES")
        if s.tls and not self.conn.tls:
            ext.append("STARTTLS")
        if s.auth and (self.conn.tls or not s.auth_tls_only):
            ext.append("AUTH " + " ".join(s.auth_mechs))
        ext += list(s.extra_extensions)
        return ext

    def auth(self, arg):
        s = self.sink
        parts = arg.split()
        if not s.auth or (s.auth_tls_only and not self.conn.tls):
            self.reply(502, "5.5.1 AUTH not available")
            return
        if self.conn.auth_user:
            self.reply(503, "5.5.1 Already authenticated")
            return
        if not parts or parts[0].upper() not in s.auth_mechs:
            self.reply(504, "5.5.4 Unrecognized authentication type")
            return
        if s.drop_at == "auth":
            raise _Drop()
        if s.stall_at == "auth":
            self.stall()
        mech = parts[0].upper()
        try:
            if mech == "PLAIN":
                if len(parts) > 1:
                    resp = parts[1]
                else:
                    self.reply(334, "")
                    resp = self.readline().strip().decode("latin-1")
                dec = base64.b64decode(resp, validate=True).split(b"\0")
                if len(dec) != 3:
                    raise ValueError("bad PLAIN")
                user, pw = dec[1].decode(), dec[2].decode()
            else:  # LOGIN
                if len(parts) > 1:
                    user = base64.b64decode(parts[1], validate=True).decode()
                else:
                    self.reply(334, "VXNlcm5hbWU6")
                    user = base64.b64decode(self.readline().strip(), validate=True).decode()
                self.reply(334, "UGFzc3dvcmQ6")
                pw = base64.b64decode(self.readline().strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            self.reply(501, "5.5.2 Cannot decode response")
            return
        with s.cond:
            s.auth_attempts.append((mech, user, pw, self.conn.tls))
            s.cond.notify_all()
        if s.auth.get(user) == pw:
            self.conn.auth_user = user
            self.conn.auth_mech = mech
            self.reply(235, "2.7.0 Authentication successful")
        else:
            self.reply(535, "5.7.8 Authentication credentials invalid")

    def read_data(self, txn):
        raw = bytearray()
        while True:
            line = self.readline()
            if line == b".\r\n":
                break
            raw += line
        txn.raw_data = bytes(raw)
        out = bytearray()
        for ln in bytes(raw).split(b"\n"):
            out += (ln[1:] if ln.startswith(b".") else ln) + b"\n"
        txn.message = bytes(out[:-1])


class SmtpSink:
    """A scriptable SMTP server. Keyword options (all attributes, changeable later):

    hostname        name in the greeting and EHLO reply
    replies         {stage: (code, text) or callable(conn) -> (code, text) or None}
                    e.g. {"rcpt": (450, "4.2.0 try later"), "dot": (554, "5.6.0 no")}
    rcpt_reject     addresses refused with 550 5.1.1
    rcpt_tempfail   addresses refused with 450 4.2.1
    drop_at         a stage at which the connection is closed without a reply
    stall_at        a stage at which the sink stops answering (keeps the socket open)
    tls             False, "self" or "ca": offer STARTTLS with that kind of certificate
    cert_names      names for the certificate (default [hostname, host address])
    auth            {user: password}: offer AUTH and require it before MAIL
    auth_mechs      ("PLAIN", "LOGIN")
    auth_tls_only   offer AUTH only after STARTTLS
    require_tls     refuse MAIL before STARTTLS (530)
    helo_only       EHLO gets 500 (the client must fall back to HELO)
    size            advertise SIZE with this limit (None: no SIZE; 0: SIZE without limit);
                    MAIL with a larger SIZE= gets 552, a larger message gets 552 after DATA
    pipelining, eightbitmime   advertise them (default True)
    multiline       every single-line reply is sent as a two-line reply
    delays          {stage: seconds} to wait before answering at that stage
    rcpt_limit      recipients accepted per transaction; past it 452 4.5.3 (0: no limit)
    close_after_txn close the connection (no reply to anything more) after each final reply
    tls_broken      answer STARTTLS with 220, then a TLS alert and close (a failed handshake)
    """

    def __init__(self, host="127.0.0.2", port=25, hostname=None, replies=None,
                 rcpt_reject=(), rcpt_tempfail=(), drop_at=None, stall_at=None, tls=False,
                 cert_names=None, auth=None, auth_mechs=("PLAIN", "LOGIN"),
                 auth_tls_only=False, require_tls=False, require_ehlo=False,
                 helo_only=False, size=None, pipelining=True, eightbitmime=True,
                 multiline=False, extra_extensions=(), delays=None, rcpt_limit=0,
                 close_after_txn=False, tls_broken=False):
        self.host, self.port = host, port
        self.hostname = hostname or "sink-%s.test" % host.replace(".", "-").replace(":", "-")
        self.replies = dict(replies or {})
        self.rcpt_reject = set(rcpt_reject)
        self.rcpt_tempfail = set(rcpt_tempfail)
        self.drop_at, self.stall_at = drop_at, stall_at
        for st in (drop_at, stall_at, *self.replies):
            assert st is None or st in STAGES, "unknown stage %r" % st
        self.tls = tls
        self.cert_names = list(cert_names or [self.hostname, host])
        self.auth = dict(auth or {})
        self.auth_mechs = tuple(m.upper() for m in auth_mechs)
        self.auth_tls_only = auth_tls_only
        self.require_tls = require_tls
        self.require_ehlo = require_ehlo
        self.helo_only = helo_only
        self.size = size
        self.pipelining = pipelining
        self.eightbitmime = eightbitmime
        self.multiline = multiline
        self.extra_extensions = list(extra_extensions)
        self.delays = dict(delays or {})
        self.rcpt_limit = rcpt_limit
        self.close_after_txn = close_after_txn
        self.tls_broken = tls_broken

        self.cond = threading.Condition()
        self.connections = []
        self.transactions = []
        self.auth_attempts = []
        self.tls_failures = []
        self.stalls = 0
        self.active = set()
        self.max_active = 0                 # most connections open at once
        self.stopping = False
        self.server = None
        self.thread = None
        self.tmpdir = None
        self.ssl_context = None
        self.ca_file = None
        self.cert_file = None

    # --- life cycle -----------------------------------------------------------------
    def start(self):
        if self.tls:
            self.tmpdir = tempfile.mkdtemp(prefix="smtpsink-")
            cert, key, ca = make_certs(self.tmpdir, self.cert_names, ca=(self.tls == "ca"))
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.ssl_context, self.cert_file, self.ca_file = ctx, cert, ca
        self.stopping = False
        self.server = _Server((self.host, self.port), self)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Closes the listening socket and every connection (stalled ones too)."""
        if self.server is None:
            return
        self.stopping = True
        self.server.shutdown()
        self.server.server_close()
        with self.cond:
            handlers = list(self.active)
        for h in handlers:
            try:
                h.sock.shutdown(socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass
        end = time.time() + 5
        with self.cond:
            while self.active and time.time() < end:
                self.cond.wait(0.1)
        self.server = None
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def restart(self):
        """Listens again on the same address (after stop())."""
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- results --------------------------------------------------------------------
    @property
    def delivered(self):
        """Transactions whose final reply was 2xx, in order."""
        with self.cond:
            return [t for t in self.transactions if t.delivered]

    def delivered_rcpts(self):
        return sorted(r for t in self.delivered for r in t.rcpts)

    def wait(self, predicate, timeout=10.0):
        """Waits until predicate(self) is true; returns its value, or the last (false)
        value after timeout."""
        end = time.time() + timeout
        with self.cond:
            while True:
                v = predicate(self)
                if v or time.time() >= end:
                    return v
                self.cond.wait(min(0.1, max(0.0, end - time.time())))

    def wait_delivered(self, n=1, timeout=10.0):
        """Waits for n delivered transactions; returns them (asserts)."""
        ok = self.wait(lambda s: len(s.delivered) >= n, timeout)
        assert ok, "sink %s: %d of %d transactions delivered within %ss (connections: %r, " \
                   "transactions: %r)" % (self.host, len(self.delivered), n, timeout,
                                          self.connections, self.transactions)
        return self.delivered

    def wait_connections(self, n=1, timeout=10.0):
        ok = self.wait(lambda s: len(s.connections) >= n, timeout)
        assert ok, "sink %s: %d of %d connections within %ss" % (
            self.host, len(self.connections), n, timeout)
        return self.connections
