#!/usr/bin/env bash
# demo.sh SANDBOX: the report program under XCR0 0x3 and 0x7, side by side.
set -euo pipefail
sandbox=${1:?usage: demo.sh path/to/xcr0-sandbox}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O1 -o "$work/xcr0-report" "$here/guests/xcr0-report.c"
echo "KVM: $("$sandbox" --check | sed -n 's/^kvm: //p'), XCR0 $("$sandbox" --check | sed -n 's/^xcr0: //p')"
"$sandbox" --xcr0=0x3 -- "$work/xcr0-report" >"$work/a" 2>&1 || true
"$sandbox" --xcr0=0x7 -- "$work/xcr0-report" >"$work/b" 2>&1 || true
printf '%-28s %-28s\n' "--xcr0=0x3" "--xcr0=0x7"
paste -d'|' "$work/a" "$work/b" | awk -F'|' '{ printf "%-28s %-28s\n", $1, $2 }'
