#!/usr/bin/env bash
# Installs what Alkaid needs from Debian's packages: to build and run it, and with
# --test also to run every test. Skips apt-get entirely when everything is present.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libssl-dev libsqlite3-dev libiniparser-dev
            libc-ares-dev openssl)
test_pkgs=(libcmocka-dev python3-pytest swaks curl clang libclang-rt-14-dev sqlite3 isync
           gcc-mingw-w64-x86-64)

pkgs=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
    pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: run as root (or install sudo)" >&2; exit 1; }
    SUDO=sudo
fi
echo "Installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
