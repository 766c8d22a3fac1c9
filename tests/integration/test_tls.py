"""test_tls.py - TLS on every port, as `openssl s_client` sees it

The five TLS entry points: SMTP (port 25's stand-in) and submission with STARTTLS, SMTPS
(implicit), POP3 with STLS and POP3S (implicit). On each: TLS 1.2 and 1.3 handshakes
work; TLS 1.0 and 1.1 are refused by the server (the client is told to allow them, so
the refusal is the server's protocol_version alert); a TLS 1.2 client limited to a weak
cipher is refused (handshake_failure) while ECDHE with AES-GCM or ChaCha20 works. The
self-signed certificate made on first start (host name in CN and SAN, plus localhost and
127.0.0.1; EC P-256; key mode 0600) is what every port presents and survives restarts.
Replacing config/tls/cert.pem and key.pem with a pair made by the openssl CLI and
sending RELOAD makes new connections present it; a mismatched pair, a missing key or an
unusable [TLS] Ciphers makes RELOAD answer ERR and the running certificate stays; a
missing key (with the certificate there) or an unreadable certificate stops the start
with a message naming the file.
"""
import json
import os
import re
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, Alkaid, _sanitizer_reports

HOST = "mail.example.test"

# endpoint -> (port attribute, s_client STARTTLS arguments)
ENDPOINTS = {
    "smtp": ("smtp_port", ["-starttls", "smtp"]),
    "submission": ("submission_port", ["-starttls", "smtp"]),
    "smtps": ("smtps_port", []),
    "pop3": ("pop3_port", ["-starttls", "pop3"]),
    "pop3s": ("pop3s_port", []),
}
SERVICE_OF = {"smtp": "smtpd", "submission": "smtpd", "smtps": "smtpd", "pop3": "pop3imapd",
              "pop3s": "pop3imapd"}


# --- helpers --------------------------------------------------------------------------

def s_client(a, endpoint, *args, timeout=20):
    attr, starttls = ENDPOINTS[endpoint]
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % getattr(a, attr),
           "-no_ign_eof", *starttls, *args]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def handshake(a, endpoint, *args):
    """(established, protocol, cipher, output) of a -brief s_client run."""
    rc, out = s_client(a, endpoint, "-brief", *args)
    ok = rc == 0 and "CONNECTION ESTABLISHED" in out
    proto = re.search(r"^Protocol version: (\S+)", out, re.M)
    cipher = re.search(r"^Ciphersuite: (\S+)", out, re.M)
    return ok, proto and proto.group(1), cipher and cipher.group(1), out


def first_pem(text):
    m = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)
    assert m, "no certificate in %r" % text[-2000:]
    return m.group(0)


def presented_cert(a, endpoint):
    """The DER of the certificate a new connection to endpoint is shown."""
    rc, out = s_client(a, endpoint, "-showcerts")
    assert rc == 0, out[-2000:]
    return ssl.PEM_cert_to_DER_cert(first_pem(out))


def file_cert(path):
    return ssl.PEM_cert_to_DER_cert(first_pem(Path(path).read_text()))


def x509(path, *args):
    r = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", *args],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout


def openssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def make_pair(directory, cn, kind="rsa"):
    """A new self-signed pair made with the openssl CLI; returns (cert path, key path)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    newkey = ["-newkey", "rsa:2048"] if kind == "rsa" else \
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    openssl("req", "-x509", *newkey, "-nodes", "-keyout", str(key), "-out", str(cert),
            "-days", "30", "-subj", "/CN=%s" % cn,
            "-addext", "subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1" % cn)
    return cert, key


def install(a, cert=None, key=None):
    """Puts files in place of config/tls/cert.pem and key.pem the way an administrator
    should: complete files renamed over the old ones."""
    tls = a.root / "config" / "tls"
    for src, name in ((cert, "cert.pem"), (key, "key.pem")):
        if src is None:
            continue
        tmp = tls / (".new-" + name)
        tmp.write_bytes(Path(src).read_bytes())
        os.chmod(tmp, 0o600)
        os.replace(tmp, tls / name)


def reload_all(a):
    return {svc: a.ctl(svc, "RELOAD") for svc in ("smtpd", "pop3imapd")}


def cert_paths(a):
    tls = a.root / "config" / "tls"
    return tls / "cert.pem", tls / "key.pem"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """One root with smtpd and pop3imapd for the read-only handshake matrix."""
    a = Alkaid(tmp_path_factory.mktemp("tls") / "root")
    a.prepare()
    a.start("smtpd")
    a.start("pop3imapd")
    yield a
    codes = a.stop_all()
    bad = _sanitizer_reports(a.root)
    assert not bad, "sanitizer reports:\n" + "\n".join(bad)
    assert codes == {"smtpd": 0, "pop3imapd": 0}, codes


# --- protocol versions and ciphers -------------------------------------------------------

@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("version,name", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_modern_protocols(tls_server, endpoint, version, name):
    ok, proto, cipher, out = handshake(tls_server, endpoint, version)
    assert ok, out
    assert proto == name
    if name == "TLSv1.3":
        assert cipher.startswith("TLS_")
    else:
        assert cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher), cipher


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_protocols_refused(tls_server, endpoint, version):
    # the client is willing (security level 0), so the refusal is the server's
    ok, _, _, out = handshake(tls_server, endpoint, version, "-cipher", "DEFAULT@SECLEVEL=0")
    assert not ok, out
    assert "alert protocol version" in out, out


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384",
                                    "AES128-SHA"])
def test_weak_cipher_refused(tls_server, endpoint, cipher):
    ok, _, _, out = handshake(tls_server, endpoint, "-tls1_2", "-cipher",
                              cipher + "@SECLEVEL=0")
    assert not ok, out
    assert "alert handshake failure" in out, out


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-GCM-SHA256",
                                    "ECDHE-ECDSA-AES256-GCM-SHA384",
                                    "ECDHE-ECDSA-CHACHA20-POLY1305"])
def test_strong_cipher_accepted(tls_server, endpoint, cipher):
    ok, proto, got, out = handshake(tls_server, endpoint, "-tls1_2", "-cipher", cipher)
    assert ok, out
    assert (proto, got) == ("TLSv1.2", cipher)


def test_session_still_usable_after_starttls(tls_server):
    """After the handshake the protocol goes on: SMTP wants a new EHLO, POP3 answers."""
    attr, starttls = ENDPOINTS["submission"]
    r = subprocess.run(["openssl", "s_client", "-connect",
                        "127.0.0.1:%d" % tls_server.submission_port, "-quiet", "-starttls",
                        "smtp"], input="EHLO client.example\r\nQUIT\r\n",
                       capture_output=True, text=True, timeout=20)
    assert "250-AUTH" in r.stdout or "250 AUTH" in r.stdout, r.stdout
    assert "STARTTLS" not in r.stdout  # not offered twice
    assert "221" in r.stdout
    r = subprocess.run(["openssl", "s_client", "-connect",
                        "127.0.0.1:%d" % tls_server.pop3_port, "-quiet", "-starttls", "pop3"],
                       input="CAPA\r\nQUIT\r\n", capture_output=True, text=True, timeout=20)
    assert "+OK" in r.stdout and "USER" in r.stdout, r.stdout


# --- the self-signed certificate -------------------------------------------------------

def test_self_signed_certificate(tls_server):
    cert, key = cert_paths(tls_server)
    subject = x509(cert, "-subject", "-nameopt", "RFC2253")
    assert re.search(r"(^|[=,])CN=%s(,|$)" % re.escape(HOST), subject.strip().split("=", 1)[1]), \
        subject
    san = x509(cert, "-ext", "subjectAltName")
    for name in ("DNS:%s" % HOST, "DNS:localhost", "IP Address:127.0.0.1"):
        assert name in san, san
    assert re.search(r"IP Address:(0:0:0:0:0:0:0:1|::1)\b", san), san
    # self-signed, valid now and for the promised time, EC P-256, not a CA
    assert x509(cert, "-subject", "-nameopt", "RFC2253").split("=", 1)[1] == \
        x509(cert, "-issuer", "-nameopt", "RFC2253").split("=", 1)[1]
    subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-checkend", "0"],
                   check=True, capture_output=True, timeout=20)
    assert subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-checkend",
                           str(800 * 86400)], capture_output=True, timeout=20).returncode == 0
    text = x509(cert, "-text")
    assert "prime256v1" in text or "P-256" in text
    assert "CA:FALSE" in text
    # the key is private and belongs to the certificate
    assert (os.stat(key).st_mode & 0o777) == 0o600
    assert openssl("pkey", "-in", str(key), "-pubout") == x509(cert, "-pubkey")
    # every port shows this certificate
    der = file_cert(cert)
    for endpoint in ENDPOINTS:
        assert presented_cert(tls_server, endpoint) == der, endpoint


def test_certificate_made_once(alkaid):
    cert, key = cert_paths(alkaid)
    before = (cert.read_bytes(), key.read_bytes())
    assert alkaid.stop("smtpd") == 0
    assert alkaid.stop("pop3imapd") == 0
    alkaid.start("pop3imapd")
    alkaid.start("smtpd")
    assert (cert.read_bytes(), key.read_bytes()) == before
    der = file_cert(cert)
    assert presented_cert(alkaid, "smtps") == der
    assert presented_cert(alkaid, "pop3s") == der


# --- replacing the certificate -----------------------------------------------------------

def test_replace_certificate_and_reload(alkaid, tmp_path):
    cert, key = cert_paths(alkaid)
    old = file_cert(cert)
    new_cert, new_key = make_pair(tmp_path / "new", "new.example.test", kind="rsa")
    install(alkaid, new_cert, new_key)
    # nothing changes until the reload
    assert presented_cert(alkaid, "smtps") == old
    for svc, r in reload_all(alkaid).items():
        assert (r.returncode, r.stdout) == (0, "OK reloaded\n"), (svc, r.stdout, r.stderr)
    new = file_cert(new_cert)
    for endpoint in ENDPOINTS:
        assert presented_cert(alkaid, endpoint) == new, endpoint
    subject = x509(cert, "-subject")
    assert "new.example.test" in subject
    # with an RSA certificate: ECDHE-RSA with GCM works, RSA key exchange and CBC do not
    for endpoint in ENDPOINTS:
        ok, proto, got, out = handshake(alkaid, endpoint, "-tls1_2", "-cipher",
                                        "ECDHE-RSA-AES128-GCM-SHA256")
        assert ok and got == "ECDHE-RSA-AES128-GCM-SHA256", out
        for weak in ("AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA"):
            ok, _, _, out = handshake(alkaid, endpoint, "-tls1_2", "-cipher",
                                      weak + "@SECLEVEL=0")
            assert not ok and "alert handshake failure" in out, (endpoint, weak, out)
        ok, proto, _, out = handshake(alkaid, endpoint, "-tls1_3")
        assert ok and proto == "TLSv1.3", out


def test_replace_certificate_sighup(alkaid, tmp_path):
    cert, _ = cert_paths(alkaid)
    new_cert, new_key = make_pair(tmp_path / "new", "hup.example.test", kind="ec")
    install(alkaid, new_cert, new_key)
    new = file_cert(new_cert)
    for svc in ("smtpd", "pop3imapd"):
        alkaid.procs[svc].send_signal(1)  # SIGHUP
    end = time.time() + 10
    while not all(presented_cert(alkaid, ep) == new for ep in ("smtps", "pop3s")):
        assert time.time() < end, "SIGHUP did not load the new certificate"
        time.sleep(0.1)


def test_mismatched_pair_reload_refused(alkaid, tmp_path):
    cert, key = cert_paths(alkaid)
    old = file_cert(cert)
    a_cert, a_key = make_pair(tmp_path / "a", "a.example.test", kind="ec")
    b_cert, b_key = make_pair(tmp_path / "b", "b.example.test", kind="ec")
    install(alkaid, a_cert, b_key)
    for svc, r in reload_all(alkaid).items():
        assert r.returncode == 1, (svc, r.stdout)
        assert r.stdout.startswith("ERR"), (svc, r.stdout)
        assert "[TLS] Key" in r.stdout, (svc, r.stdout)
        assert str(key) in r.stdout
    # still running, still presenting the old certificate
    for svc in ("smtpd", "pop3imapd"):
        assert alkaid.procs[svc].poll() is None
        assert json.loads(alkaid.ctl(svc, "STATUS").stdout)["service"] == svc
    for endpoint in ENDPOINTS:
        assert presented_cert(alkaid, endpoint) == old, endpoint
    assert "[TLS] Key" in alkaid.log("error")
    # the matching key fixes it
    install(alkaid, key=a_key)
    for svc, r in reload_all(alkaid).items():
        assert r.stdout == "OK reloaded\n", (svc, r.stdout, r.stderr)
    for endpoint in ENDPOINTS:
        assert presented_cert(alkaid, endpoint) == file_cert(a_cert), endpoint


def test_missing_key_reload_refused(alkaid):
    cert, key = cert_paths(alkaid)
    old = file_cert(cert)
    key.unlink()
    for svc, r in reload_all(alkaid).items():
        assert r.returncode == 1 and r.stdout.startswith("ERR"), (svc, r.stdout)
        assert str(key) in r.stdout
    assert not key.exists()  # no new key was made to go with the old certificate
    assert file_cert(cert) == old
    for endpoint in ENDPOINTS:
        assert presented_cert(alkaid, endpoint) == old, endpoint


def test_unusable_ciphers_reload_refused(alkaid):
    alkaid.set("TLS", "Ciphers", "NO-SUCH-CIPHER")
    for svc, r in reload_all(alkaid).items():
        assert r.returncode == 1 and r.stdout.startswith("ERR"), (svc, r.stdout)
        assert "[TLS] Ciphers" in r.stdout, r.stdout
    ok, _, got, out = handshake(alkaid, "smtps", "-tls1_2", "-cipher",
                                "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert ok and got == "ECDHE-ECDSA-AES128-GCM-SHA256", out


def test_ciphers_setting_takes_effect_on_reload(alkaid):
    alkaid.set("TLS", "Ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384")
    for svc, r in reload_all(alkaid).items():
        assert r.stdout == "OK reloaded\n", (svc, r.stdout, r.stderr)
    for endpoint in ("submission", "pop3s"):
        ok, _, _, out = handshake(alkaid, endpoint, "-tls1_2", "-cipher",
                                  "ECDHE-ECDSA-AES128-GCM-SHA256")
        assert not ok and "alert handshake failure" in out, out
        ok, _, got, out = handshake(alkaid, endpoint, "-tls1_2")
        assert ok and got == "ECDHE-ECDSA-AES256-GCM-SHA384", out
        ok, proto, _, out = handshake(alkaid, endpoint, "-tls1_3")  # 1.3 suites unaffected
        assert ok and proto == "TLSv1.3", out


# --- start-up with a broken pair --------------------------------------------------------

def start_fails(a, service, *extra):
    r = subprocess.run([str(BIN / ("alkaid-" + service)), "--root", str(a.root), *extra],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, "%s started: %r" % (service, r.stderr)
    return r.stderr


@pytest.mark.parametrize("service", ["smtpd", "pop3imapd"])
@pytest.mark.parametrize("mode", ["background", "foreground"])
def test_missing_key_start_fails(alkaid_root, service, mode):
    cert, key = cert_paths(alkaid_root)
    alkaid_root.start(service)  # makes the pair
    assert alkaid_root.stop(service) == 0
    old = cert.read_bytes()
    key.unlink()
    err = start_fails(alkaid_root, service, *(["--foreground"] if mode == "foreground" else []))
    assert str(key) in err and str(cert) in err, err
    assert "only one of" in err, err
    assert cert.read_bytes() == old and not key.exists()
    assert not (alkaid_root.root / "run" / ("%s.pid" % service)).exists()
    # controld serves the admin port over TLS: it refuses the same way
    r = subprocess.run([str(BIN / "alkaid-controld"), "--root", str(alkaid_root.root)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "only one of" in r.stderr, r.stderr


def test_missing_certificate_start_fails(alkaid_root):
    cert, key = cert_paths(alkaid_root)
    alkaid_root.start("smtpd")
    assert alkaid_root.stop("smtpd") == 0
    cert.unlink()
    err = start_fails(alkaid_root, "smtpd", "--foreground")
    assert str(cert) in err and "only one of" in err, err
    assert not cert.exists()


def test_unreadable_certificate_start_fails(alkaid_root):
    cert, key = cert_paths(alkaid_root)
    alkaid_root.start("pop3imapd")
    assert alkaid_root.stop("pop3imapd") == 0
    cert.write_text("-----BEGIN CERTIFICATE-----\nrubbish\n-----END CERTIFICATE-----\n")
    for service in ("smtpd", "pop3imapd"):
        err = start_fails(alkaid_root, service)
        assert "[TLS] Certificate" in err and str(cert) in err, err


def test_unusable_ciphers_start_fails(alkaid_root):
    alkaid_root.set("TLS", "Ciphers", "RC4-MD5-NOPE")
    err = start_fails(alkaid_root, "smtpd", "--foreground")
    assert "[TLS] Ciphers" in err, err
