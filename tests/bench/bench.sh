#!/usr/bin/env bash
# bench.sh SANDBOX: what a forwarded system call and a whole run cost, in the
# sandbox against natively. Numbers are wall time on this machine; compare
# them only with numbers from the same machine.
set -euo pipefail
sandbox=${1:?usage: bench.sh path/to/xcr0-sandbox}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/syscall-loop" "$here/../guests/syscall-loop.c"

flags=()
"$sandbox" --check >/dev/null 2>&1 || flags=(--allow-unenforced-xcr0)

now() { date +%s%N; }
# mean wall time in microseconds of N runs of a command
mean_us() {
    local n=$1 t0 t1
    shift
    t0=$(now)
    for _ in $(seq "$n"); do "$@" >/dev/null; done
    t1=$(now)
    echo $(((t1 - t0) / n / 1000))
}

echo "kvm: $("$sandbox" --check 2>/dev/null | sed -n 's/^kvm: //p')"
runs=20
native_true=$(mean_us $runs /bin/true)
boxed_true=$(mean_us $runs "$sandbox" "${flags[@]}" -- /bin/true)
echo "/bin/true: native ${native_true} us, sandbox ${boxed_true} us (mean of $runs runs)"

calls=20000
native_sc=$("$work/syscall-loop" $calls)
boxed_sc=$("$sandbox" "${flags[@]}" -- "$work/syscall-loop" $calls)
echo "getppid: native ${native_sc} ns, sandbox ${boxed_sc} ns per call ($calls calls)"

stats=$("$sandbox" "${flags[@]}" --stats -- "$work/syscall-loop" $calls 2>&1 >/dev/null | grep 'stats:')
echo "per forwarded syscall (syscall loop): ${stats##*per syscall: }"
