"""A small authoritative DNS server for the tests: UDP and TCP on 127.0.0.1, in a thread.

    srv = DnsServer(port)
    srv.add("example.test", "MX", (10, "mx1.example.test"))
    srv.add("mx1.example.test", "A", "127.0.0.2", ttl=60)
    srv.add("mx1.example.test", "AAAA", "::1")
    srv.add("example.test", "TXT", "v=spf1 -all")       # or a list of strings
    srv.add("example.test", "MX", (0, ""))              # a null MX (RFC 7505)
    srv.servfail("broken.test"); srv.refused("r.test"); srv.timeout("slow.test")
    srv.start(); ...; srv.stop()
    srv.queries                                         # [("example.test", "MX"), ...]

Unknown names get NXDOMAIN; a known name without the type asked for gets NOERROR with
no answers (NODATA). A CNAME is followed inside the server's data. Names are matched
without regard to case. Answers are written without name compression; queries are parsed
with it (pointers are followed, loops refused). A UDP answer over 512 bytes is sent
truncated (TC set, no records), so the client asks again over TCP.
"""
import ipaddress
import socket
import struct
import threading

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}
TYPE_NAMES = {v: k for k, v in TYPES.items()}

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5


def _norm(name):
    return name.rstrip(".").lower()


def encode_name(name):
    out = b""
    name = name.rstrip(".")
    if name:
        for label in name.split("."):
            raw = label.encode()
            if not 0 < len(raw) < 64:
                raise ValueError("bad label in %r" % name)
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def decode_name(msg, pos):
    """(name, position after the name); follows compression pointers."""
    labels, end, jumps = [], None, 0
    while True:
        if pos >= len(msg):
            raise ValueError("name past the end")
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise ValueError("truncated pointer")
            if end is None:
                end = pos + 2
            jumps += 1
            if jumps > 64:
                raise ValueError("compression loop")
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            continue
        if n & 0xC0:
            raise ValueError("bad label type")
        pos += 1
        if n == 0:
            break
        labels.append(msg[pos:pos + n].decode("latin-1"))
        pos += n
    return ".".join(labels), (end if end is not None else pos)


def _rdata(rtype, value):
    if rtype == "A":
        return ipaddress.IPv4Address(value).packed
    if rtype == "AAAA":
        return ipaddress.IPv6Address(value).packed
    if rtype == "MX":
        pref, host = value
        return struct.pack("!H", pref) + encode_name(host)
    if rtype in ("NS", "PTR", "CNAME"):
        return encode_name(value)
    if rtype == "TXT":
        parts = [value] if isinstance(value, (str, bytes)) else list(value)
        out = b""
        for p in parts:
            p = p.encode() if isinstance(p, str) else p
            if not p:
                out += b"\0"
            while p:
                out += bytes([len(p[:255])]) + p[:255]
                p = p[255:]
        return out
    raise ValueError("unsupported type %r" % rtype)


class DnsServer:
    def __init__(self, port, host="127.0.0.1"):
        self.host, self.port = host, port
        self.records = {}  # name -> list of (type, ttl, rdata)
        self.special = {}  # name -> "servfail" | "refused" | "timeout"
        self.queries = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._udp = self._tcp = None

    # --- data ---
    def add(self, name, rtype, value, ttl=300):
        rtype = rtype.upper()
        with self._lock:
            self.records.setdefault(_norm(name), []).append((rtype, ttl, _rdata(rtype, value)))

    def servfail(self, name):
        self.special[_norm(name)] = "servfail"

    def refused(self, name):
        self.special[_norm(name)] = "refused"

    def timeout(self, name):
        """Queries for name are never answered."""
        self.special[_norm(name)] = "timeout"

    # --- answers ---
    def answer(self, query, max_len=None):
        """The response to one query message (bytes), or None to stay silent."""
        if len(query) < 12:
            return None
        qid, flags, qdcount = struct.unpack("!HHH", query[:6])
        if flags & 0x8000 or qdcount != 1:
            return None
        try:
            qname, pos = decode_name(query, 12)
            qtype, qclass = struct.unpack("!HH", query[pos:pos + 4])
        except (ValueError, struct.error):
            return struct.pack("!HHHHHH", qid, 0x8000 | FORMERR, 0, 0, 0, 0)
        question = encode_name(qname) + struct.pack("!HH", qtype, qclass)
        with self._lock:
            self.queries.append((_norm(qname), TYPE_NAMES.get(qtype, str(qtype))))
        key = _norm(qname)
        special = self.special.get(key)
        if special == "timeout":
            return None
        rcode, answers = NOERROR, []
        if special == "servfail":
            rcode = SERVFAIL
        elif special == "refused":
            rcode = REFUSED
        else:
            rcode, answers = self._lookup(qname, qtype)
        rflags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode  # QR AA RD RA
        body = b"".join(answers)
        msg = struct.pack("!HHHHHH", qid, rflags, 1, len(answers), 0, 0) + question + body
        if max_len is not None and len(msg) > max_len:
            msg = struct.pack("!HHHHHH", qid, rflags | 0x0200, 1, 0, 0, 0) + question
        return msg

    def _lookup(self, qname, qtype):
        answers, name, seen = [], qname, set()
        with self._lock:
            while True:
                rrs = self.records.get(_norm(name))
                if rrs is None:
                    return (NXDOMAIN if not answers else NOERROR), answers
                want = TYPE_NAMES.get(qtype)
                hits = [r for r in rrs if r[0] == want]
                if hits:
                    for rtype, ttl, rdata in hits:
                        answers.append(encode_name(name) + struct.pack(
                            "!HHIH", TYPES[rtype], 1, ttl, len(rdata)) + rdata)
                    return NOERROR, answers
                cname = [r for r in rrs if r[0] == "CNAME"]
                if not cname or _norm(name) in seen:
                    return NOERROR, answers
                seen.add(_norm(name))
                _, ttl, rdata = cname[0]
                answers.append(encode_name(name) + struct.pack("!HHIH", 5, 1, ttl, len(rdata))
                               + rdata)
                name, _ = decode_name(rdata, 0)

    # --- sockets ---
    def start(self):
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind((self.host, self.port))
        self._udp.settimeout(0.1)
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._tcp.bind((self.host, self.port))
        self._tcp.listen(16)
        self._tcp.settimeout(0.1)
        for target in (self._serve_udp, self._serve_tcp):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        for s in (self._udp, self._tcp):
            if s is not None:
                s.close()

    def _serve_udp(self):
        while not self._stop.is_set():
            try:
                data, peer = self._udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            resp = self.answer(data, max_len=512)
            if resp is not None:
                try:
                    self._udp.sendto(resp, peer)
                except OSError:
                    pass

    def _serve_tcp(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._tcp_conn, args=(conn,), daemon=True)
            t.start()

    def _tcp_conn(self, conn):
        conn.settimeout(5)
        try:
            with conn:
                buf = b""
                while not self._stop.is_set():
                    while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                    n = struct.unpack("!H", buf[:2])[0]
                    query, buf = buf[2:2 + n], buf[2 + n:]
                    resp = self.answer(query)
                    if resp is not None:
                        conn.sendall(struct.pack("!H", len(resp)) + resp)
        except OSError:
            return
