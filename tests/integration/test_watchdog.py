"""test_watchdog.py - alkaid-controld's watchdog (docs/config.md "The watchdog", docs/ctl.md)

`alkaid-controld --supervise` starts alkaid-smtpd and alkaid-pop3imapd as its children and
keeps them running: a child killed with `kill -9`, one that keeps failing to start (its
port is taken: the back-off grows), one that stops answering ctl (SIGSTOP), and ctl
`RESTART` are all seen from outside (pids, ports, STATUS, log/control/). Without
--supervise the watchdog runs [Control] WatchdogRestart for a service that died.

controld is started in the background as an administrator does; its children are found
through run/<name>.pid and the root on their command line, and whatever is left is stopped
after each test.
"""
import os
import re
import signal
import socket
import time

import pytest

from conftest import BIN, wait_port
from test_services import (ctl, pid_alive, port_open, procs_of_root, read_pid,
                           sanitizer_reports, start_bg, status, wait_gone, wait_until)

SERVICES = ("smtpd", "pop3imapd")


@pytest.fixture
def root(alkaid_root):
    alkaid_root.set("Control", "WatchdogInterval", "1")
    yield alkaid_root
    leftovers = procs_of_root(alkaid_root.root)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in leftovers:
        if not wait_gone(pid, 15):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5)
    bad = sanitizer_reports(alkaid_root.root)
    assert not bad, "sanitizer reports:\n" + "\n".join(bad)


def supervise(a):
    r = start_bg(a, "controld", "--supervise")
    assert r.returncode == 0, (r.stdout, r.stderr)
    wait_port(a.smtp_port, timeout=20)
    wait_port(a.pop3_port, timeout=20)
    wait_port(a.imap_port, timeout=20)
    return read_pid(a, "controld")


def watched(a):
    return status(a, "controld")["watchdog"]


def child_pid(a, service):
    return watched(a)["services"][service]["pid"]


def ppid(pid):
    return int(open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[1])


def wait_new_pid(a, service, old, timeout=15):
    """Waits until STATUS shows a running child other than old; returns its pid."""
    found = []

    def cond():
        svc = watched(a)["services"][service]
        if svc["running"] and svc["pid"] not in (None, old):
            found.append(svc["pid"])
            return True
        return False

    assert wait_until(cond, timeout), watched(a)
    return found[0]


def stop_controld(a):
    pid = read_pid(a, "controld")
    r = ctl(a, "controld", "STOP")
    assert r.returncode == 0, r.stderr
    assert wait_gone(pid, 30), "controld did not stop"


def test_supervise_starts_both_and_stop_stops_them(root):
    cpid = supervise(root)
    w = watched(root)
    assert w["supervising"] is True and w["enabled"] is True and w["interval"] == 1
    pids = {}
    for service in SERVICES:
        s = w["services"][service]
        assert s["running"] is True and s["restarts"] == 0, s
        assert wait_until(lambda: watched(root)["services"][service]["answering"], 15)
        pids[service] = s["pid"]
        # the child is the service of the root, run by controld
        assert read_pid(root, service) == s["pid"]
        assert ppid(s["pid"]) == cpid
        assert status(root, service)["pid"] == s["pid"]
    log = root.log("control")
    for service in SERVICES:
        assert "Watchdog: started alkaid-%s (pid %d)" % (service, pids[service]) in log
    stop_controld(root)
    for service in SERVICES:
        assert not pid_alive(pids[service]), service
    assert not port_open(root.smtp_port) and not port_open(root.pop3_port)
    assert procs_of_root(root.root) == []
    log = root.log("control")
    for service in SERVICES:
        assert "Watchdog: stopping alkaid-%s (pid %d)" % (service, pids[service]) in log
        assert "Watchdog: alkaid-%s (pid %d) exited with status 0" % (
            service, pids[service]) in log


def test_kill9_restarted_within_seconds(root):
    supervise(root)
    old = child_pid(root, "smtpd")
    other = child_pid(root, "pop3imapd")
    t0 = time.time()
    os.kill(old, signal.SIGKILL)
    new = wait_new_pid(root, "smtpd", old, timeout=10)
    wait_port(root.smtp_port, timeout=10)
    assert time.time() - t0 < 10
    with root.smtp() as s:
        assert s.noop()[0] == 250
    assert read_pid(root, "smtpd") == new
    w = watched(root)
    assert w["services"]["smtpd"]["restarts"] == 1
    # the other one was left alone
    p = w["services"]["pop3imapd"]
    assert (p["pid"], p["running"], p["restarts"]) == (other, True, 0), p
    log = root.log("control")
    assert "Watchdog: alkaid-smtpd (pid %d) was killed by signal 9" % old in log
    assert "Watchdog: restarted alkaid-smtpd (pid %d, restart 1)" % new in log
    assert "alkaid-smtpd (pid %d) was killed by signal 9" % old in root.log("error")


def test_crash_loop_backs_off(root):
    # smtpd cannot start while its port is taken: it exits at once, again and again
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", root.smtp_port))
    blocker.listen(1)
    try:
        r = start_bg(root, "controld", "--supervise")
        assert r.returncode == 0, r.stderr
        wait_port(root.pop3_port, timeout=20)
        delays = []

        def seen():
            delays[:] = [int(d) for d in re.findall(
                r"Watchdog: restarting alkaid-smtpd in (\d+) s", root.log("control"))]
            return len(delays) >= 4

        assert wait_until(seen, 30), root.log("control")
        assert delays[:4] == [1, 2, 4, 8], delays
        assert "exited with status 1" in root.log("control")
        assert watched(root)["services"]["pop3imapd"]["restarts"] == 0
    finally:
        blocker.close()
    # once the port is free it comes back by itself, at the latest after the back-off
    wait_port(root.smtp_port, timeout=30)
    assert wait_until(lambda: watched(root)["services"]["smtpd"]["running"], 10)
    stop_controld(root)


def test_hung_service_restarted(root):
    supervise(root)
    old = child_pid(root, "smtpd")
    # silence counts at once only from a service that has answered (a starting one gets
    # 30 s)
    assert wait_until(lambda: watched(root)["services"]["smtpd"]["answering"], 15)
    os.kill(old, signal.SIGSTOP)
    new = wait_new_pid(root, "smtpd", old, timeout=30)
    wait_port(root.smtp_port, timeout=10)
    assert not pid_alive(old)
    log = root.log("control")
    assert "Watchdog: alkaid-smtpd did not answer ctl STATUS (3 of 3)" in log
    assert "Watchdog: alkaid-smtpd (pid %d) stopped answering; restarting it" % old in log
    assert "Watchdog: restarted alkaid-smtpd (pid %d" % new in log
    stop_controld(root)


def test_ctl_restart(root):
    supervise(root)
    old = child_pid(root, "smtpd")
    r = ctl(root, "controld", "RESTART smtpd")
    assert (r.returncode, r.stdout) == (0, "OK restarting alkaid-smtpd\n"), r.stderr
    new = wait_new_pid(root, "smtpd", old, timeout=15)
    wait_port(root.smtp_port, timeout=10)
    assert not pid_alive(old)
    assert watched(root)["services"]["smtpd"]["restarts"] == 1
    log = root.log("control")
    assert "Watchdog: restarting alkaid-smtpd (pid %d) on request" % old in log
    assert "Watchdog: alkaid-smtpd (pid %d) exited with status 0" % old in log
    r = ctl(root, "controld", "RESTART nothing")
    assert r.returncode == 1 and r.stdout.startswith("ERR RESTART smtpd|pop3imapd"), r.stdout
    stop_controld(root)
    assert not pid_alive(new)


def test_unsupervised_restart_needs_a_command(root):
    r = start_bg(root, "controld")
    assert r.returncode == 0, r.stderr
    w = watched(root)
    assert w["supervising"] is False
    assert w["services"]["smtpd"] == {"pid": None, "running": False, "answering": False,
                                      "restarts": 0}
    r = ctl(root, "controld", "RESTART smtpd")
    assert r.returncode == 1
    assert "[Control] WatchdogRestart is empty" in r.stdout, r.stdout
    stop_controld(root)


def test_unsupervised_runs_watchdog_restart(root):
    # the service manager's restart command, here: start the service again
    root.set("Control", "WatchdogRestart", "%s/alkaid-%%s --root %s" % (BIN, root.root))
    assert start_bg(root, "smtpd").returncode == 0
    assert start_bg(root, "controld").returncode == 0
    old = read_pid(root, "smtpd")
    assert wait_until(lambda: child_pid(root, "smtpd") == old, 10)
    os.kill(old, signal.SIGKILL)
    assert wait_gone(old)
    # its pid file is left behind: the watchdog sees it died and runs the command
    assert wait_until(lambda: port_open(root.smtp_port) and read_pid(root, "smtpd") != old, 30), \
        root.log("control")
    log = root.log("control")
    assert "Watchdog: alkaid-smtpd died (its pid file is left behind)" in log
    assert "Watchdog: running '%s/alkaid-smtpd --root %s'" % (BIN, root.root) in log
    assert wait_until(lambda: "--root %s' exited with status 0" % root.root in
                      root.log("control"), 10)
    # RESTART runs it too (a second copy is refused: "already running", status 1)
    r = ctl(root, "controld", "RESTART smtpd")
    assert r.returncode == 0 and r.stdout.startswith("OK running '"), r.stdout
    stop_controld(root)


def test_supervisor_killed_then_restarted_adopts_running_services(root):
    """kill -9 of controld --supervise leaves smtpd and pop3imapd serving mail. A new
    supervisor takes them over where they are (same pids, no second copy that could only
    fail to start, no restart loop), and restarts one that dies afterwards; STOP stops
    them all."""
    a = root
    old_controld = supervise(a)
    pids = {s: child_pid(a, s) for s in SERVICES}
    os.kill(old_controld, signal.SIGKILL)
    assert wait_gone(old_controld, 10)
    for s in SERVICES:
        assert pid_alive(pids[s]), s
    assert port_open(a.smtp_port)
    r = start_bg(a, "controld", "--supervise")
    assert r.returncode == 0, (r.stdout, r.stderr)
    time.sleep(3)
    w = watched(a)["services"]
    for s in SERVICES:
        assert w[s]["pid"] == pids[s] and w[s]["running"], w
        assert w[s]["restarts"] == 0, w
    log = a.log("control")
    for s in SERVICES:
        assert "alkaid-%s is already running (pid %d): supervising it" % (s, pids[s]) in log
    assert "exited with status" not in log, log
    # the adopted smtpd dies: it is started again, now as a child of the new supervisor
    os.kill(pids["smtpd"], signal.SIGKILL)
    new = wait_new_pid(a, "smtpd", pids["smtpd"])
    wait_port(a.smtp_port, timeout=20)
    assert ppid(new) == read_pid(a, "controld")
    assert "alkaid-smtpd (pid %d) ended" % pids["smtpd"] in a.log("control")
    # STOP stops the adopted pop3imapd too
    ctl(a, "controld", "STOP")
    assert wait_gone(pids["pop3imapd"], 20) and wait_gone(new, 20)
