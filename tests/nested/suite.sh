#!/bin/sh
# suite.sh SANDBOX TEST-BINARY...: runs inside the real-KVM lane. Shows what
# --check measures there, then runs each test binary; the status is the
# first failure's, so the lane's exit status says whether everything passed.
set -u
sandbox=$1
shift
echo "== $sandbox --check (inside the lane)"
"$sandbox" --check
status=0
for t in "$@"; do
    echo "== ${t##*/}"
    start=$(date +%s)
    "$t" --test-threads=1 --show-output || status=1
    echo "== ${t##*/}: $(( $(date +%s) - start )) s"
done
[ $status = 0 ] && echo "lane: all test binaries passed" || echo "lane: FAILED"
exit $status
