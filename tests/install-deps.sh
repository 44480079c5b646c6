#!/usr/bin/env bash
# Installs the Debian packages the host lane's peer suites and debugger
# tests run (stress-ng, CPython's regression tests, strace, gdb, ltrace,
# valgrind, python3-seccomp, capnproto for rr trace headers), where
# missing: with apt as root, else one line saying what to install. The
# tests themselves fail, saying the same, when a package is missing under
# CI=true.
set -euo pipefail
need=()
command -v stress-ng >/dev/null 2>&1 || need+=(stress-ng)
# (regrtest.py itself is in libpython3.11-stdlib; the tests are not.)
[ -f /usr/lib/python3.11/test/test_os.py ] || need+=(libpython3.11-testsuite)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v gdb >/dev/null 2>&1 || need+=(gdb)
command -v ltrace >/dev/null 2>&1 || need+=(ltrace)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
python3 -c 'import seccomp' >/dev/null 2>&1 || need+=(python3-seccomp)
command -v capnp >/dev/null 2>&1 || need+=(capnproto)
[ ${#need[@]} -gt 0 ] || exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${need[@]}" >&2 ||
        { apt-get -q update >&2 && apt-get install -y -q --no-install-recommends "${need[@]}" >&2; }
else
    echo "install-deps: missing ${need[*]}: run (as root) apt-get install ${need[*]}" >&2
fi
