"""test_systemd.py - the systemd units in config/ (docs/systemd.md)

Each unit passes `systemd-analyze verify` (skipped where that command is missing), runs
the service the way its Type= says, and is installed by `cmake --install`. On POSIX the
Windows-only options --install and --uninstall say where to look instead.
"""
import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, REPO

SERVICES = ["smtpd", "pop3imapd", "controld"]


def unit(service):
    return REPO / "config" / ("alkaid-%s.service" % service)


def parse(text):
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string(text)
    return cp


@pytest.mark.parametrize("service", SERVICES)
def test_unit_settings(service):
    u = parse(unit(service).read_text())
    s = u["Service"]
    assert s["Type"] == "forking"
    assert s["ExecStart"] == "/usr/sbin/alkaid-%s --root /var/lib/alkaid" % service
    assert s["PIDFile"] == "/var/lib/alkaid/run/%s.pid" % service
    assert s["ExecReload"].endswith("--ctl RELOAD")
    assert s["Restart"] == "on-failure" and s["RestartSec"]
    assert s["User"] == "alkaid"
    assert s["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert s["NoNewPrivileges"] == "yes"
    assert s["ProtectSystem"] == "strict"
    assert s["ReadWritePaths"] == "/var/lib/alkaid"
    assert s["PrivateTmp"] == "yes"
    assert u["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_units_verify(tmp_path):
    # verify wants the programs to exist: point the units at the build's
    paths = []
    for service in SERVICES:
        p = tmp_path / unit(service).name
        p.write_text(unit(service).read_text().replace("/usr/sbin/", "%s/" % BIN))
        paths.append(str(p))
    r = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True,
                       timeout=60)
    ours = [ln for ln in (r.stdout + r.stderr).splitlines() if str(tmp_path) in ln]
    assert r.returncode == 0 and not ours, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("cmake") is None, reason="no cmake")
def test_cmake_install_puts_the_units(tmp_path):
    build = BIN.parent
    if not (build / "cmake_install.cmake").exists():
        pytest.skip("ALKAID_BIN is not a CMake build directory")
    r = subprocess.run(["cmake", "--install", str(build), "--prefix", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    unitdir = tmp_path / "lib" / "systemd" / "system"
    for service in SERVICES:
        text = (unitdir / ("alkaid-%s.service" % service)).read_text()
        assert "ExecStart=" in text and "sbin/alkaid-%s --root /var/lib/alkaid" % service in text
    assert "u alkaid" in (tmp_path / "lib" / "sysusers.d" / "alkaid.conf").read_text()


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("option", ["--install", "--uninstall"])
def test_windows_options_point_to_systemd(service, option, tmp_path):
    r = subprocess.run([str(BIN / ("alkaid-" + service)), "--root", str(tmp_path / "r"), option],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "alkaid-%s.service" % service in r.stderr and "docs/systemd.md" in r.stderr
    assert not (tmp_path / "r").exists()  # nothing was set up
