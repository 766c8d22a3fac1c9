#!/usr/bin/env bash
# Alkaid's whole test suite: installs the dependencies, builds, and runs the cmocka unit
# tests (ctest) and the pytest integration tests, first on a normal build, then on an
# AddressSanitizer + UndefinedBehaviorSanitizer build, then a short run of every fuzzer.
#   ./test.sh               everything
#   ./test.sh --quick       normal build only (no sanitizers, no fuzzing)
#   PYTEST_ARGS="-k pop3" ./test.sh --quick
set -euo pipefail
cd "$(dirname "$0")"
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
JOBS="$(nproc)"
PY=/usr/bin/python3          # Debian's python3, which has python3-pytest
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
start=$(date +%s)

step() { printf '\n==> %s (%ds)\n' "$*" $(( $(date +%s) - start )); }

step "Installing dependencies"
tools/install-deps.sh --test

run_suite() {            # $1 = build dir, $2.. = extra cmake args
    local dir=$1; shift
    step "Building $dir $*"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DALKAID_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j"$JOBS" 2>&1 | grep -E "warning|error" || true
    cmake --build "$dir" -j"$JOBS" >/dev/null
    step "Unit tests ($dir)"
    (cd "$dir" && ctest --output-on-failure -j"$JOBS")
    step "Integration tests ($dir)"
    local tmp
    tmp="$(mktemp -d /tmp/alkaid-it.XXXXXX)"
    ALKAID_BIN="$PWD/$dir/bin" "$PY" -m pytest -q -p no:cacheprovider --basetemp="$tmp" \
        ${PYTEST_ARGS:-} tests/integration
    rm -rf "$tmp"
}

run_suite build

if [ $QUICK -eq 0 ]; then
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    run_suite build-asan -DALKAID_SANITIZE=ON
    unset ASAN_OPTIONS UBSAN_OPTIONS

    step "Fuzzing each harness for ${FUZZ_SECONDS}s"
    CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DALKAID_FUZZ=ON \
        -DALKAID_TESTS=OFF -DALKAID_SANITIZE=ON >/dev/null
    cmake --build build-fuzz -j"$JOBS" >/dev/null
    for f in build-fuzz/fuzz/fuzz_*; do
        name=$(basename "$f")
        corpus="fuzz/corpus/${name#fuzz_}"
        work="$(mktemp -d /tmp/alkaid-fuzz.XXXXXX)"
        [ -d "$corpus" ] && cp -r "$corpus/." "$work/"
        echo "  $name"
        "$f" -max_total_time="$FUZZ_SECONDS" -print_final_stats=0 "$work" >"$work.log" 2>&1 ||
            { tail -50 "$work.log"; echo "fuzzer $name found a problem" >&2; exit 1; }
        rm -rf "$work" "$work.log"
    done
fi

step "All tests passed"
