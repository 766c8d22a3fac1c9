"""test_services.py - the life cycle of alkaid-smtpd, alkaid-pop3imapd and alkaid-controld

What an administrator sees when starting, querying, reloading and stopping the three
services (README.md "Running it for real", docs/ctl.md, docs/config.md): starting in the
background returns only once the service answers, with the live pid in run/<name>.pid;
a second copy on the same root is refused; `--ctl STATUS | RELOAD | STOP`, SIGHUP and
SIGTERM; what a reload with a bad value does; a pid file left by `kill -9`; a port in
use; configuration errors and warnings; a root that does not exist yet; the command
line (--help, --version, bad options, $ALKAID_ROOT); the log line format.

Services started in the background are not children of the test: they are found again
through run/<name>.pid (and, at the end of each test, through the root on their command
line) and stopped by pid. Their sanitizer reports, if any, go to files under the root
(ASAN_OPTIONS/UBSAN_OPTIONS log_path), which each test checks at the end.
"""
import email.utils
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import BIN, REPO, Alkaid, client_tls_context, free_port, set_ini

SERVICES = ["smtpd", "pop3imapd", "controld"]
CHANNEL = {"smtpd": "smtp", "pop3imapd": "pop3", "controld": "control"}
TITLE = {"smtpd": "SMTP", "pop3imapd": "POP3/IMAP", "controld": "Control"}
HOST = "mail.example.test"

LOG_LINE = re.compile(r"^(SYSTEM|[0-9a-fA-F.:]+) \[([0-9A-F]{8})\] "
                      r"((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
                      r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                      r"\d{2}:\d{2}:\d{2} [+-]\d{4}) (.+)$")


# --- helpers --------------------------------------------------------------------------

def exe(service):
    return str(BIN / ("alkaid-" + service))


def sanitizer_env(root, extra=None):
    """The environment for a daemon: sanitizer reports into files under the root."""
    env = dict(os.environ)
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        opts = env.get(var, "")
        env[var] = (opts + ":" if opts else "") + "log_path=%s/sanitizer-%s" % (
            root, var.split("_")[0].lower())
    env.update(extra or {})
    return env


def run(args, root=None, env=None, timeout=30):
    if env is None:
        env = sanitizer_env(root) if root else dict(os.environ)
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)


def start_bg(a, service, *extra, env=None):
    """Starts a service the way an administrator does: in the background."""
    return run([exe(service), "--root", str(a.root), *extra], root=a.root, env=env)


def ctl(a, service, command):
    return run([exe(service), "--root", str(a.root), "--ctl", command], root=a.root)


def status(a, service):
    r = ctl(a, service, "STATUS")
    assert r.returncode == 0, (r.stdout, r.stderr)
    text = r.stdout
    assert text.endswith("\n") and text.count("\n") == 1, "not one line: %r" % text
    return json.loads(text)


def pid_alive(pid):
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def wait_gone(pid, timeout=15.0):
    end = time.time() + timeout
    while pid_alive(pid):
        if time.time() > end:
            return False
        time.sleep(0.05)
    return True


def wait_until(cond, timeout=10.0):
    end = time.time() + timeout
    while not cond():
        if time.time() > end:
            return False
        time.sleep(0.05)
    return True


def pidfile(a, service):
    return a.root / "run" / ("%s.pid" % service)


def sockfile(a, service):
    return a.root / "run" / ("%s.sock" % service)


def read_pid(a, service):
    return int(pidfile(a, service).read_text().strip())


def procs_of_root(root):
    """Pids of processes started on this root (by --root or $ALKAID_ROOT)."""
    root = str(root)
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            args = (d / "cmdline").read_bytes().split(b"\0")
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if not args or not os.path.basename(args[0]).startswith(b"alkaid-"):
            continue
        if root.encode() in args or ("ALKAID_ROOT=%s" % root).encode() in env:
            if pid_alive(int(d.name)):
                pids.append(int(d.name))
    return pids


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def greeting(port, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")
        line = f.readline().decode(errors="replace").rstrip("\r\n")
        try:
            s.sendall(b"QUIT\r\n")
        except OSError:
            pass
        return line


def tls_greeting(port, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with client_tls_context().wrap_socket(raw) as s:
            return s.makefile("rb").readline().decode(errors="replace").rstrip("\r\n")


def assert_ready(a, service):
    """What "started" means for each service, checked at once (no waiting)."""
    if service == "smtpd":
        assert greeting(a.smtp_port).startswith("220 %s " % HOST)
        assert greeting(a.submission_port).startswith("220 %s " % HOST)
        assert tls_greeting(a.smtps_port).startswith("220 %s " % HOST)
    elif service == "pop3imapd":
        assert greeting(a.pop3_port).startswith("+OK")
        assert tls_greeting(a.pop3s_port).startswith("+OK")
    assert sockfile(a, service).exists()


def stop_by_ctl(a, service):
    pid = read_pid(a, service)
    r = ctl(a, service, "STOP")
    assert r.returncode == 0 and r.stdout == "OK stopping\n", (r.stdout, r.stderr)
    assert wait_gone(pid), "%s (pid %d) did not stop" % (service, pid)
    assert not pidfile(a, service).exists()
    assert not sockfile(a, service).exists()


def log_lines(a, channel):
    return [ln for ln in a.log(channel).splitlines() if ln]


def sanitizer_reports(root):
    bad = []
    for p in Path(root).glob("sanitizer-*"):
        text = p.read_text(errors="replace")
        if text.strip():
            bad.append("%s:\n%s" % (p.name, text[-4000:]))
    return bad


@pytest.fixture
def root(alkaid_root):
    """A prepared root; whatever was started on it in the background is stopped after."""
    yield alkaid_root
    leftovers = procs_of_root(alkaid_root.root)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in leftovers:
        if not wait_gone(pid, 10):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5)
    bad = sanitizer_reports(alkaid_root.root)
    assert not bad, "sanitizer reports:\n" + "\n".join(bad)


def new_root(tmp_path, name="fresh"):
    """An Alkaid object for a root that does not exist yet (nothing prepared)."""
    return Alkaid(tmp_path / name / "root")


# --- starting in the background --------------------------------------------------------

@pytest.mark.parametrize("service", SERVICES)
def test_background_start_is_ready_and_stops(root, service):
    r = start_bg(root, service)
    assert r.returncode == 0, (r.stdout, r.stderr)
    # exit 0 means ready: the ports answer and the ctl socket is there right away
    assert_ready(root, service)
    pid = read_pid(root, service)
    assert pid_alive(pid)
    assert os.path.basename(os.readlink("/proc/%d/exe" % pid)) == "alkaid-" + service
    # detached: not our child, its own session, no terminal, std streams on /dev/null
    stat = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    ppid, sid, tty = int(stat[1]), int(stat[3]), int(stat[4])
    assert ppid != os.getpid()
    assert sid != os.getsid(0)
    assert tty == 0
    for fd in (0, 1, 2):
        assert os.readlink("/proc/%d/fd/%d" % (pid, fd)) == "/dev/null"
    st = status(root, service)
    assert st["pid"] == pid
    # the log says so
    assert "%s Service started" % TITLE[service] in root.log(CHANNEL[service])
    stop_by_ctl(root, service)
    log = root.log(CHANNEL[service])
    assert "%s Service stopped" % TITLE[service] in log


@pytest.mark.parametrize("service", SERVICES)
def test_second_start_refused(root, service):
    r = start_bg(root, service)
    assert r.returncode == 0, r.stderr
    pid = read_pid(root, service)
    for extra in ((), ("--foreground",)):
        r2 = start_bg(root, service, *extra)
        assert r2.returncode != 0, "second start %s succeeded" % (extra,)
        assert "already running" in r2.stderr, r2.stderr
        assert str(pid) in r2.stderr
    # the first copy is untouched
    assert read_pid(root, service) == pid
    assert pid_alive(pid)
    assert status(root, service)["pid"] == pid
    assert_ready(root, service)
    assert wait_until(lambda: procs_of_root(root.root) == [pid], 5), procs_of_root(root.root)
    stop_by_ctl(root, service)


def test_all_three_side_by_side(root):
    pids = {}
    for service in SERVICES:
        r = start_bg(root, service)
        assert r.returncode == 0, (service, r.stderr)
        pids[service] = read_pid(root, service)
    assert len(set(pids.values())) == 3
    for service in SERVICES:
        assert_ready(root, service)
        assert status(root, service)["service"] == service
    for service in SERVICES:
        stop_by_ctl(root, service)
    assert procs_of_root(root.root) == []


# --- ctl STATUS --------------------------------------------------------------------------

def test_status_smtpd(root):
    root.start("smtpd")
    pid = root.procs["smtpd"].pid
    st = status(root, "smtpd")
    assert st["service"] == "smtpd"
    assert st["pid"] == pid == read_pid(root, "smtpd")
    assert isinstance(st["uptime"], int) and 0 <= st["uptime"] < 60
    assert st["hostname"] == HOST
    for key in ("connections", "connections_total", "connections_refused", "bytes_in",
                "bytes_out"):
        assert isinstance(st["smtp"][key], int), key
    for key in ("messages_in", "messages_refused", "local_deliveries", "remote_queued",
                "auth_ok", "auth_failed", "queue"):
        assert isinstance(st[key], int), key
    assert st["messages_in"] == 0 and st["queue"] == 0

    # the counters count
    with root.smtp() as s:
        s.sendmail("someone@remote.test", ["alice@example.test"],
                   b"Subject: status\r\n\r\nHello.\r\n")
    after = status(root, "smtpd")
    assert after["messages_in"] == 1
    assert after["local_deliveries"] == 1
    assert after["smtp"]["connections_total"] >= 1
    assert after["smtp"]["bytes_in"] > 0 and after["smtp"]["bytes_out"] > 0
    assert wait_until(lambda: status(root, "smtpd")["smtp"]["connections"] == 0)


def test_status_pop3imapd(root):
    root.start("pop3imapd")
    st = status(root, "pop3imapd")
    assert st["service"] == "pop3imapd"
    assert st["pid"] == root.procs["pop3imapd"].pid == read_pid(root, "pop3imapd")
    assert isinstance(st["uptime"], int) and st["uptime"] >= 0
    assert st["hostname"] == HOST
    assert isinstance(st["pop3"], dict) and st["pop3"]
    assert all(isinstance(v, int) for v in st["pop3"].values()), st["pop3"]
    assert "smtp" not in st


def test_status_controld(root):
    r = start_bg(root, "controld")
    assert r.returncode == 0, r.stderr
    st = status(root, "controld")
    assert st["service"] == "controld"
    assert st["pid"] == read_pid(root, "controld")
    assert isinstance(st["uptime"], int) and st["uptime"] >= 0
    assert st["hostname"] == HOST
    stop_by_ctl(root, "controld")


def test_status_uptime_grows(root):
    start_bg(root, "controld")
    first = status(root, "controld")["uptime"]
    time.sleep(2.1)
    assert status(root, "controld")["uptime"] >= first + 2
    stop_by_ctl(root, "controld")


@pytest.mark.parametrize("service", SERVICES)
def test_ctl_commands_case_insensitive_and_unknown(root, service):
    assert start_bg(root, service).returncode == 0
    st = json.loads(ctl(root, service, "status").stdout)
    assert st["service"] == service
    r = ctl(root, service, "FROBNICATE now")
    assert r.returncode == 1
    assert r.stdout.startswith("ERR unknown command 'FROBNICATE'"), r.stdout
    assert pid_alive(read_pid(root, service))
    stop_by_ctl(root, service)


@pytest.mark.parametrize("service", SERVICES)
def test_ctl_when_not_running(root, service):
    r = ctl(root, service, "STATUS")
    assert r.returncode == 1
    assert r.stdout == ""
    assert "%s.sock" % service in r.stderr, r.stderr


# --- reload --------------------------------------------------------------------------------

def test_reload_banner(root):
    assert start_bg(root, "smtpd").returncode == 0
    assert greeting(root.smtp_port) == "220 %s ESMTP Alkaid" % HOST
    root.set("SMTP", "Banner", "Welcome to the test relay")
    r = ctl(root, "smtpd", "RELOAD")
    assert (r.returncode, r.stdout) == (0, "OK reloaded\n"), r.stderr
    # the next greeting, on every SMTP port
    assert greeting(root.smtp_port) == "220 %s Welcome to the test relay" % HOST
    assert greeting(root.submission_port) == "220 %s Welcome to the test relay" % HOST
    assert tls_greeting(root.smtps_port) == "220 %s Welcome to the test relay" % HOST
    assert "SMTP Service configuration reloaded" in root.log("smtp")
    stop_by_ctl(root, "smtpd")


def test_reload_logging_switch(root):
    root.start("smtpd")

    def ehlo(name):
        c = root.raw(root.smtp_port)
        c.reply()
        c.send("EHLO %s\r\nQUIT\r\n" % name)
        c.reply()
        c.reply()
        c.closed()
        c.close()

    ehlo("before.example")
    assert wait_until(lambda: "EHLO before.example" in root.log("smtp"))
    root.set("Logging", "SMTP", "0")
    r = root.ctl("smtpd", "RELOAD")
    assert (r.returncode, r.stdout) == (0, "OK reloaded\n")
    size = len(root.log("smtp"))
    ehlo("during.example")
    time.sleep(0.3)
    log = root.log("smtp")
    assert "during.example" not in log
    assert len(log) == size, "SMTP=0 still logs: %r" % log[size:]
    root.set("Logging", "SMTP", "1")
    assert root.ctl("smtpd", "RELOAD").stdout == "OK reloaded\n"
    ehlo("after.example")
    assert wait_until(lambda: "EHLO after.example" in root.log("smtp"))


@pytest.mark.parametrize("service", SERVICES)
def test_reload_bad_value_refused(root, service):
    root.set("SMTP", "Banner", "Old banner")
    assert start_bg(root, service).returncode == 0
    pid = read_pid(root, service)
    root.set("SMTP", "Banner", "New banner")
    root.set("SMTP", "MaxSessions", "plenty")
    r = ctl(root, service, "RELOAD")
    assert r.returncode == 1
    assert r.stdout.startswith("ERR reload refused"), r.stdout
    assert "[SMTP] MaxSessions" in r.stdout
    assert str(root.ini) in r.stdout
    assert "'plenty'" in r.stdout
    # still running, with the configuration it had
    assert pid_alive(pid) and read_pid(root, service) == pid
    assert status(root, service)["pid"] == pid
    if service == "smtpd":
        assert greeting(root.smtp_port) == "220 %s Old banner" % HOST
    assert "[SMTP] MaxSessions" in root.log("error")
    # once the file is fixed, a reload takes it
    root.set("SMTP", "MaxSessions", "500")
    assert ctl(root, service, "RELOAD").stdout == "OK reloaded\n"
    if service == "smtpd":
        assert greeting(root.smtp_port) == "220 %s New banner" % HOST
    stop_by_ctl(root, service)


def raw_ctl(a, service, line):
    """Talks to the ctl socket directly, as the --ctl client would."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(sockfile(a, service)))
        s.sendall(line.encode() + b"\n")
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode()
            out += chunk


@pytest.mark.parametrize("service", SERVICES)
def test_reload_refused_over_the_socket(root, service):
    """The service's side of a refused reload, without the --ctl client."""
    assert start_bg(root, service).returncode == 0
    pid = read_pid(root, service)
    root.set("SMTP", "MaxSessions", "plenty")
    reply = raw_ctl(root, service, "RELOAD")
    assert reply.startswith("ERR reload refused: %s: [SMTP] MaxSessions: " % root.ini), reply
    assert "'plenty'" in reply
    assert pid_alive(pid)
    assert json.loads(raw_ctl(root, service, "STATUS"))["pid"] == pid
    assert "[SMTP] MaxSessions" in root.log("error")
    root.set("SMTP", "MaxSessions", "500")
    assert raw_ctl(root, service, "RELOAD") == "OK reloaded\n"
    stop_by_ctl(root, service)


@pytest.mark.parametrize("service", SERVICES)
def test_sighup_reloads(root, service):
    assert start_bg(root, service).returncode == 0
    pid = read_pid(root, service)
    root.set("SMTP", "Banner", "Reloaded by SIGHUP")
    os.kill(pid, signal.SIGHUP)
    msg = "%s Service configuration reloaded" % TITLE[service]
    assert wait_until(lambda: msg in root.log(CHANNEL[service])), root.log(CHANNEL[service])
    if service == "smtpd":
        assert greeting(root.smtp_port) == "220 %s Reloaded by SIGHUP" % HOST
    assert pid_alive(pid)
    # a bad value by SIGHUP: kept running, the error is logged
    root.set("POP3", "Timeout", "1")
    os.kill(pid, signal.SIGHUP)
    assert wait_until(lambda: "[POP3] Timeout" in root.log("error"))
    assert pid_alive(pid)
    if service == "smtpd":
        assert greeting(root.smtp_port) == "220 %s Reloaded by SIGHUP" % HOST
    root.set("POP3", "Timeout", "600")
    assert status(root, service)["pid"] == pid
    stop_by_ctl(root, service)


def test_ctl_reaches_service_while_ini_is_broken(root):
    """An administrator who broke alkaid.ini can still ask the running service for its
    status, have it refuse the reload with the reason, and stop it (docs/ctl.md)."""
    assert start_bg(root, "smtpd").returncode == 0
    pid = read_pid(root, "smtpd")
    root.set("SMTP", "Port", "abc")
    r = ctl(root, "smtpd", "STATUS")
    assert r.returncode == 0, "STATUS with a broken INI: %r %r" % (r.stdout, r.stderr)
    assert json.loads(r.stdout)["pid"] == pid
    r = ctl(root, "smtpd", "STOP")
    assert (r.returncode, r.stdout) == (0, "OK stopping\n"), (r.stdout, r.stderr)
    assert wait_gone(pid)


# --- stopping --------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["ctl", "sigterm", "sigint"])
@pytest.mark.parametrize("service", SERVICES)
def test_foreground_stop(root, service, how):
    p = root.start(service)
    assert read_pid(root, service) == p.pid
    if how == "ctl":
        r = root.ctl(service, "STOP")
        assert (r.returncode, r.stdout) == (0, "OK stopping\n")
    else:
        p.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
    assert p.wait(20) == 0
    root.procs.pop(service)
    assert not pidfile(root, service).exists()
    assert not sockfile(root, service).exists()
    if service == "smtpd":
        assert not port_open(root.smtp_port)
    if service == "pop3imapd":
        assert not port_open(root.pop3_port)
    log = root.log(CHANNEL[service])
    assert "%s Service stopping" % TITLE[service] in log
    assert "%s Service stopped" % TITLE[service] in log


def test_stop_with_open_session(root):
    """A client that says nothing does not keep the service from stopping."""
    p = root.start("smtpd")
    c = root.raw(root.smtp_port)
    assert c.reply()[0] == 220
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0
    root.procs.pop("smtpd")
    assert time.time() - t0 < 10  # the 5 s grace, not the 300 s command timeout
    assert c.closed(5)
    c.close()


@pytest.mark.parametrize("service", SERVICES)
def test_stale_pidfile_after_kill9(root, service):
    p = root.start(service)
    old = p.pid
    root.kill(service)
    # kill -9 leaves the pid file (and the socket) behind
    assert pidfile(root, service).exists()
    assert int(pidfile(root, service).read_text()) == old
    r = ctl(root, service, "STATUS")
    assert r.returncode == 1
    # the next start is not fooled by it
    r = start_bg(root, service)
    assert r.returncode == 0, r.stderr
    new = read_pid(root, service)
    assert new != old and pid_alive(new)
    assert_ready(root, service)
    assert status(root, service)["pid"] == new
    stop_by_ctl(root, service)


# --- start-up errors -------------------------------------------------------------------

@pytest.mark.parametrize("service,key,port_attr", [
    ("smtpd", "[SMTP] Port", "smtp_port"),
    ("smtpd", "[SMTP] SubmissionPort", "submission_port"),
    ("smtpd", "[SMTP] TLSPort", "smtps_port"),
    ("pop3imapd", "[POP3] Port", "pop3_port"),
    ("pop3imapd", "[POP3] TLSPort", "pop3s_port"),
])
@pytest.mark.parametrize("mode", ["background", "foreground"])
def test_port_in_use(root, service, key, port_attr, mode):
    port = getattr(root, port_attr)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen(1)
    try:
        extra = ("--foreground",) if mode == "foreground" else ()
        r = start_bg(root, service, *extra)
        assert r.returncode != 0
        assert key in r.stderr, r.stderr
        assert str(port) in r.stderr
        # nothing is left running, listening or claiming the root (the failed process
        # may still be on its way out for a moment)
        assert wait_until(lambda: procs_of_root(root.root) == [], 5), procs_of_root(root.root)
        assert not pidfile(root, service).exists()
        assert not sockfile(root, service).exists()
        others = [getattr(root, a) for a in ("smtp_port", "submission_port", "smtps_port",
                                              "pop3_port", "pop3s_port") if a != port_attr]
        assert not [p for p in others if port_open(p)]
        assert key in root.log("error")
    finally:
        blocker.close()
    # once the port is free, the service starts
    r = start_bg(root, service)
    assert r.returncode == 0, r.stderr
    stop_by_ctl(root, service)


@pytest.mark.parametrize("service,section,key,value,why", [
    ("smtpd", "SMTP", "Port", "abc", "not a whole number"),
    ("smtpd", "SMTP", "MaxMessageSize", "lots", None),
    ("pop3imapd", "POP3", "Timeout", "5", None),
    ("pop3imapd", "POP3", "AllowPlaintextAuth", "perhaps", None),
    ("controld", "Control", "AdminPort", "70000", None),
    ("controld", "Logging", "Control", "maybe", None),
])
@pytest.mark.parametrize("mode", ["background", "foreground"])
def test_bad_ini_value(root, service, section, key, value, why, mode):
    root.set(section, key, value)
    extra = ("--foreground",) if mode == "foreground" else ()
    r = start_bg(root, service, *extra)
    assert r.returncode != 0
    line = [ln for ln in r.stderr.splitlines() if "[%s] %s" % (section, key) in ln]
    assert line, r.stderr
    assert line[0].startswith(str(root.ini) + ": [%s] %s: " % (section, key)), line[0]
    assert value in line[0].split(": [%s] %s: " % (section, key), 1)[1]
    if why:
        assert why in line[0]
    assert wait_until(lambda: procs_of_root(root.root) == [], 5)
    assert not pidfile(root, service).exists()


@pytest.mark.parametrize("service", SERVICES)
def test_unknown_key_is_a_warning(root, service):
    root.set("SMTP", "Frobnicate", "1")
    root.set("Bogus", "Thing", "2")
    r = start_bg(root, service)
    assert r.returncode == 0, r.stderr
    # (names may be reported as iniparser keeps them: lower case)
    err = r.stderr.lower()
    assert "[smtp] frobnicate: warning" in err
    assert "[bogus]" in err and "unknown section" in err
    assert str(root.ini) in r.stderr
    assert_ready(root, service)
    assert "frobnicate" in root.log(CHANNEL[service]).lower()
    stop_by_ctl(root, service)


def test_unknown_section_and_key_not_fatal_on_reload(root):
    assert start_bg(root, "controld").returncode == 0
    root.set("Control", "Frobnicate", "1")
    r = ctl(root, "controld", "RELOAD")
    assert (r.returncode, r.stdout) == (0, "OK reloaded\n")
    assert "frobnicate" in root.log("control").lower()
    stop_by_ctl(root, "controld")


def test_unreadable_ini(root):
    root.ini.write_text("[SMTP]\nPort=25\n[unterminated\n")
    r = start_bg(root, "smtpd", "--foreground")
    assert r.returncode != 0
    assert str(root.ini) in r.stderr
    assert wait_until(lambda: procs_of_root(root.root) == [], 5)


# --- a new root --------------------------------------------------------------------------

def test_new_root_created_by_controld(tmp_path):
    a = new_root(tmp_path)
    assert not a.root.exists()
    default = (REPO / "config" / "default.ini").read_bytes()
    try:
        r = start_bg(a, "controld")
        assert r.returncode == 0, r.stderr
        assert a.ini.read_bytes() == default
        for d in ("log", "run", "mail", "temp", "log/control"):
            assert (a.root / d).is_dir(), d
        assert "Control Service started" in a.log("control")
        assert sockfile(a, "controld").exists()
        st = status(a, "controld")
        assert st["service"] == "controld"
        assert st["hostname"] == socket.gethostname()  # [System] Hostname is empty
        stop_by_ctl(a, "controld")
    finally:
        for pid in procs_of_root(a.root):
            os.kill(pid, signal.SIGKILL)
    assert not sanitizer_reports(a.root)


@pytest.mark.parametrize("service", ["smtpd", "pop3imapd"])
def test_new_root_created_by_any_program(tmp_path, service):
    """Even a --ctl request (which then finds nothing running) sets the root up."""
    a = new_root(tmp_path)
    r = ctl(a, service, "STATUS")
    assert r.returncode == 1
    assert a.ini.read_bytes() == (REPO / "config" / "default.ini").read_bytes()
    assert not sanitizer_reports(a.root)


def test_empty_root_directory_set_up(tmp_path):
    a = new_root(tmp_path)
    a.root.mkdir(parents=True)
    (a.root / "config").mkdir()
    a.ini.write_bytes(b"")  # an empty file counts as none
    r = ctl(a, "controld", "STATUS")
    assert r.returncode == 1
    assert a.ini.read_bytes() == (REPO / "config" / "default.ini").read_bytes()


# --- the command line ----------------------------------------------------------------------

def project_version():
    m = re.search(r"project\(alkaid VERSION ([0-9.]+)", (REPO / "CMakeLists.txt").read_text())
    return m.group(1)


@pytest.mark.parametrize("service", SERVICES)
def test_help_and_version(service):
    r = run([exe(service), "--help"])
    assert r.returncode == 0
    assert "usage:" in r.stdout and "--root" in r.stdout and "--ctl" in r.stdout
    assert r.stderr == ""
    r = run([exe(service), "--version"])
    assert r.returncode == 0
    assert r.stdout == "alkaid-%s %s\n" % (service, project_version())


@pytest.mark.parametrize("service", SERVICES)
def test_bad_command_lines(service, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ALKAID_ROOT"}
    r = run([exe(service), "--root", str(tmp_path), "--bogus"], env=env)
    assert r.returncode == 2
    assert "unknown option '--bogus'" in r.stderr and "usage:" in r.stderr
    r = run([exe(service)], env=env)
    assert r.returncode == 2
    assert "no root given" in r.stderr and "usage:" in r.stderr
    r = run([exe(service), "--foreground"], env=env)
    assert r.returncode == 2
    r = run([exe(service), "--root", ""], env=env)
    assert r.returncode == 2
    assert list(tmp_path.iterdir()) == []  # nothing was set up anywhere


@pytest.mark.parametrize("service", SERVICES)
def test_alkaid_root_environment(root, service):
    env = sanitizer_env(root.root, {"ALKAID_ROOT": str(root.root)})
    r = run([exe(service)], env=env)
    assert r.returncode == 0, r.stderr
    assert_ready(root, service)
    pid = read_pid(root, service)
    r = run([exe(service), "--ctl", "STATUS"], env=env)
    assert r.returncode == 0
    assert json.loads(r.stdout)["pid"] == pid
    r = run([exe(service), "--ctl", "STOP"], env=env)
    assert r.stdout == "OK stopping\n"
    assert wait_gone(pid)
    assert not pidfile(root, service).exists()


def test_root_option_wins_over_environment(root, tmp_path):
    other = tmp_path / "elsewhere"
    env = sanitizer_env(root.root, {"ALKAID_ROOT": str(other)})
    r = run([exe("controld"), "--root", str(root.root)], env=env)
    assert r.returncode == 0, r.stderr
    assert sockfile(root, "controld").exists()
    assert not other.exists()
    stop_by_ctl(root, "controld")


# --- logs --------------------------------------------------------------------------------

def check_log_lines(lines):
    now = datetime.now(timezone.utc)
    for ln in lines:
        m = LOG_LINE.match(ln)
        assert m, "not a log line: %r" % ln
        when = email.utils.parsedate_to_datetime(m.group(3))
        assert abs((now - when).total_seconds()) < 300, ln


def test_log_format(root):
    root.start("pop3imapd")
    assert start_bg(root, "controld").returncode == 0
    stop_by_ctl(root, "controld")
    for channel, title in (("pop3", "POP3/IMAP"), ("control", "Control")):
        d = root.root / "log" / channel
        files = sorted(p.name for p in d.iterdir())
        assert files == [time.strftime("%Y%m%d") + ".log"], files
        lines = log_lines(root, channel)
        check_log_lines(lines)
        started = [ln for ln in lines if "%s Service started" % title in ln]
        assert len(started) == 1, lines
        assert started[0].startswith("SYSTEM [00000000] ")
        m = LOG_LINE.match(started[0])
        assert m.group(4).startswith("%s Service started" % title)
    stopped = [ln for ln in log_lines(root, "control") if "Control Service stopped" in ln]
    assert len(stopped) == 1 and stopped[0].startswith("SYSTEM [00000000] ")


def test_controld_life_cycle(root):
    r = start_bg(root, "controld")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)
    pid = read_pid(root, "controld")
    lines = log_lines(root, "control")
    check_log_lines(lines)
    assert any(ln.startswith("SYSTEM [00000000] ") and " Control Service started" in ln
               for ln in lines), lines
    st = status(root, "controld")
    assert (st["service"], st["pid"], st["hostname"]) == ("controld", pid, HOST)
    assert ctl(root, "controld", "RELOAD").stdout == "OK reloaded\n"
    os.kill(pid, signal.SIGTERM)
    assert wait_gone(pid)
    assert not pidfile(root, "controld").exists()
    assert not sockfile(root, "controld").exists()
    assert "Control Service stopped" in root.log("control")
    assert root.log("error") == ""


# --- ports set to 0 -------------------------------------------------------------------------

def test_smtp_port_zero_turns_listener_off(root):
    root.set("SMTP", "Port", "0")
    assert start_bg(root, "smtpd").returncode == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", root.smtp_port), timeout=2).close()
    assert greeting(root.submission_port).startswith("220 ")
    assert tls_greeting(root.smtps_port).startswith("220 ")
    log = root.log("smtp")
    assert "Listening for Submission" in log and "Listening for SMTP " not in log
    stop_by_ctl(root, "smtpd")


def test_pop3_port_zero_turns_listener_off(root):
    root.set("POP3", "Port", "0")
    assert start_bg(root, "pop3imapd").returncode == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", root.pop3_port), timeout=2).close()
    assert tls_greeting(root.pop3s_port).startswith("+OK")
    stop_by_ctl(root, "pop3imapd")
