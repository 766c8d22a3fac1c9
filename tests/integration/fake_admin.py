"""A fake alkaid-controld admin port for testing the clients (alkaid-admin,
alkaid-user --remote) without the real server: implicit TLS with a self-signed
certificate, the argument syntax and the replies of docs/admin-protocol.md for the
commands the tests use, over a small in-memory state.

    fake = FakeAdmin(tmp_path)          # listens on 127.0.0.1:fake.port
    fake.lines                          # every command line received, as sent
    fake.force["DOMAIN DEL"] = "-ERR NOTFOUND no such domain: x"
    fake.stop()
"""
import datetime
import ipaddress
import json
import socket
import socketserver
import ssl
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import free_port

ADMIN = "admin@example.test"
PASSWORD = "admin secret \"1\""
NOT_ADMIN = "bob@example.test"


def make_cert(directory, name="localhost"):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class SyntaxErr(Exception):
    pass


def parse_args(line):
    """The spec's argument syntax: atoms and quoted strings with \\" and \\\\."""
    args, i, n = [], 0, len(line)
    while i < n:
        if line[i] == '"':
            i += 1
            out = []
            while True:
                if i >= n:
                    raise SyntaxErr("unterminated string")
                ch = line[i]
                if ch == '\\':
                    if i + 1 >= n or line[i + 1] not in '"\\':
                        raise SyntaxErr("bad escape")
                    out.append(line[i + 1])
                    i += 2
                elif ch == '"':
                    i += 1
                    break
                else:
                    out.append(ch)
                    i += 1
            args.append("".join(out))
        else:
            j = i
            while j < n and line[j] != ' ':
                if line[j] in '"\\' or ord(line[j]) < 0x21 or ord(line[j]) > 0x7e:
                    raise SyntaxErr("bad atom")
                j += 1
            if j == i:
                raise SyntaxErr("empty atom")
            args.append(line[i:j])
            i = j
        if i < n:
            if line[i] != ' ' or i + 1 >= n:
                raise SyntaxErr("expected a single space")
            i += 1
    return args


def ok(value):
    return "+OK " + json.dumps(value, separators=(",", ":"))


class FakeAdmin:
    def __init__(self, tmp_path):
        self.cert, self.key = make_cert(tmp_path)
        self.lines = []
        self.force = {}
        self.status_calls = 0
        self.domains = ["example.test"]
        self.users = {
            ADMIN: {"address": ADMIN, "type": "user", "admin": True, "quota": 0, "used": 0,
                    "targets": [], "keep": False},
            "alice@example.test": {"address": "alice@example.test", "type": "user",
                                   "admin": False, "quota": 2 << 30, "used": 1234,
                                   "targets": [], "keep": False},
        }
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(self.cert), str(self.key))
        self.port = free_port()
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    fake.session(self.rfile, self.wfile)
                except (OSError, ssl.SSLError):
                    pass

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

            def get_request(self):
                sock, addr = self.socket.accept()
                try:
                    sock.settimeout(10)
                    return fake.ctx.wrap_socket(sock, server_side=True), addr
                except (OSError, ssl.SSLError):
                    sock.close()
                    raise

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def commands(self):
        """The lines received after LOGIN, without QUIT."""
        return [l for l in self.lines if not l.startswith("LOGIN ") and l != "QUIT"]

    def session(self, rfile, wfile):
        def send(s):
            wfile.write(s.encode() + b"\r\n")
            wfile.flush()
        send(ok({"server": "alkaid", "protocol": 1, "hostname": "mail.example.test"}))
        user = None
        while True:
            raw = rfile.readline(8193)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.lines.append(line)
            try:
                args = parse_args(line)
            except SyntaxErr as e:
                send("-ERR SYNTAX %s" % e)
                continue
            if not args:
                send("-ERR SYNTAX empty line")
                continue
            cmd = args[0].upper()
            if cmd == "QUIT":
                send(ok({"bye": True}))
                return
            if cmd == "LOGIN":
                if "LOGIN" in self.force:
                    send(self.force["LOGIN"])
                elif len(args) != 3:
                    send("-ERR SYNTAX LOGIN user password")
                elif args[1] == ADMIN and args[2] == PASSWORD:
                    user = args[1]
                    send(ok({"user": user}))
                elif args[1] == NOT_ADMIN:
                    send("-ERR DENIED not an administrator")
                else:
                    send("-ERR AUTH wrong user or password")
                continue
            if user is None:
                send("-ERR DENIED log in first")
                continue
            key = " ".join(a.upper() for a in args[:2])
            forced = self.force.get(key) or self.force.get(cmd)
            if forced:
                send(forced)
                continue
            send(self.reply(args))

    def reply(self, a):
        cmd = a[0].upper()
        sub = a[1].upper() if len(a) > 1 else ""
        done = ok({"done": True})
        if cmd == "DOMAIN" and sub == "LIST":
            return ok({"domains": self.domains})
        if cmd == "DOMAIN" and sub == "ADD":
            if a[2] in self.domains:
                return "-ERR EXISTS domain %s already exists" % a[2]
            self.domains.append(a[2])
            return done
        if cmd == "DOMAIN" and sub == "DEL":
            if a[2] not in self.domains:
                return "-ERR NOTFOUND no such domain: %s" % a[2]
            self.domains.remove(a[2])
            return done
        if cmd == "USER" and sub == "LIST":
            return ok({"users": [{k: u[k] for k in ("address", "type", "admin", "quota")}
                                 for u in self.users.values()]})
        if cmd == "USER" and sub == "SHOW":
            u = self.users.get(a[2])
            return ok(u) if u else "-ERR NOTFOUND no such account: %s" % a[2]
        if cmd == "USER" and sub == "ADD":
            if a[2] in self.users:
                return "-ERR EXISTS %s already exists" % a[2]
            self.users[a[2]] = {"address": a[2], "type": "user", "admin": "ADMIN" in a[4:],
                                "quota": 0, "used": 0, "targets": [], "keep": False}
            return done
        if cmd == "USER" and sub in ("DEL", "PASSWD", "SET"):
            if a[2] not in self.users:
                return "-ERR NOTFOUND no such account: %s" % a[2]
            if sub == "DEL":
                del self.users[a[2]]
            return done
        if cmd in ("ALIAS", "FORWARD", "CATCHALL"):
            return done
        if cmd == "QUEUE" and sub == "LIST":
            return ok({"messages": [{"id": "1700000000.ab12", "state": "waiting", "size": 512,
                                     "attempts": 2, "next_try": 0, "created": 1700000000,
                                     "sender": "a@example.test",
                                     "recipients": ["x@remote.test", "y@remote.test"],
                                     "errors": [None, "451 try later"]}]})
        if cmd == "QUEUE" and sub == "SHOW":
            return ok({"id": a[2], "state": "held", "size": 512, "attempts": 1, "next_try": 0,
                       "created": 1700000000, "sender": "a@example.test",
                       "recipients": ["x@remote.test"], "errors": [None],
                       "headers": "Subject: hi\r\nFrom: a@example.test\r\n"})
        if cmd == "QUEUE":
            return done
        if cmd == "CONFIG" and sub == "GET":
            return ok({"settings": [
                {"section": "SMTP", "key": "Port", "value": "2525", "default": "25"},
                {"section": "SMTP", "key": "MaxSize", "value": "50M", "default": "50M"}]})
        if cmd == "CONFIG" and sub == "SET":
            return ok({"changed": True, "reload": {"smtpd": "OK reloaded",
                                                   "pop3imapd": "OK reloaded",
                                                   "controld": "OK reloaded"}})
        if cmd == "STATUS":
            self.status_calls += 1
            n = self.status_calls
            return ok({"services": {
                "smtpd": {"service": "smtpd", "pid": 101, "uptime": 3600 + n,
                          "hostname": "mail.example.test",
                          "smtp": {"connections": 3, "connections_total": 10 * n,
                                   "connections_refused": 0, "bytes_in": 1000 * n,
                                   "bytes_out": 500 * n},
                          "messages_in": 5 * n, "messages_refused": 0,
                          "local_deliveries": 4 * n, "remote_queued": n, "auth_ok": 1,
                          "auth_failed": 0, "queue": 7,
                          "outbound": {"queued": 6, "sending": 1, "held": False,
                                       "idle_connections": 0, "sent": 2 * n, "bounced": 0,
                                       "deferred": 0, "connection_attempts": n}},
                "pop3imapd": {"service": "pop3imapd", "pid": 102, "uptime": 90061,
                              "pop3": {"connections": 1, "total": 2, "rejected": 0,
                                       "bytes_in": 10, "bytes_out": 20},
                              "imap": {"connections": 2, "connections_total": 4,
                                       "bytes_in": 30, "bytes_out": 40}},
                "controld": {"running": False}}})
        if cmd == "RELOAD":
            return ok({"reload": {(a[1] if len(a) > 1 else "smtpd"): "OK reloaded"}})
        if cmd == "RESTART":
            return ok({"restarted": a[1]})
        if cmd == "LOG":
            n = int(a[2]) if len(a) > 2 else 100
            return ok({"channel": a[1], "lines": ["line %d \x1b[31m" % i for i in range(min(n, 3))]})
        if cmd == "CAPA":
            return ok({"protocol": 1, "commands": []})
        return "-ERR SYNTAX unknown command"
