#!/usr/bin/env bash
# Checks the lane itself: output and exit status come back, /dev/kvm inside is
# kvm_amd and answers, the timeout works. About 30 s on a warm cache.
set -uo pipefail
lane=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lane.sh
cd "$(dirname "$lane")/../.."
fail=0
check() { # name, wanted status, actual status, output, wanted text in output
    if [ "$3" = "$2" ] && grep -q -- "$5" <<<"$4"; then
        echo "ok   $1"
    else
        echo "FAIL $1: status $3 (wanted $2), output: $4"
        fail=1
    fi
}

out=$("$lane" -- sh -c 'grep -c svm /proc/cpuinfo; ls -l /dev/kvm; python3 -c "print(6*7)"; exit 7' </dev/null)
check "status and output" 7 $? "$out" '^42$'

out=$("$lane" -- python3 tests/nested/kvm_probe.py </dev/null)
check "kvm_amd answers" 0 $? "$out" 'KVM_GET_API_VERSION=12 .*module=kvm_amd'

out=$(XCR0_SELFTEST="a 'b' \"c\"" "$lane" -- sh -c 'echo "$XCR0_SELFTEST|$XCR0_SANDBOX_LANE|$HOME|$(pwd)"' </dev/null)
check "environment and directory" 0 $? "$out" "^a 'b' \"c\"|1|/tmp|$(pwd)\$"

out=$("$lane" --timeout 5 -- sleep 60 </dev/null 2>&1)
check "timeout" 124 $? "$out" 'timed out'

exit $fail
