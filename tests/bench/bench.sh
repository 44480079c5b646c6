#!/usr/bin/env bash
# bench.sh SANDBOX: what a forwarded system call, a whole run, a thread, a
# fork, a signal round trip and a thread's memory cost, in the sandbox
# against natively. Numbers
# are wall time (or RSS) on this machine; compare them only with numbers from
# the same machine.
set -euo pipefail
sandbox=${1:?usage: bench.sh path/to/xcr0-sandbox}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/syscall-loop" "$here/../guests/syscall-loop.c"
cc -O2 -pthread -o "$work/thread-cycle" "$here/thread-cycle.c"
cc -O2 -o "$work/fork-cycle" "$here/fork-cycle.c"
cc -O2 -pthread -o "$work/thread-rss" "$here/thread-rss.c"
cc -O2 -o "$work/signal-cycle" "$here/signal-cycle.c"
cc -O2 -o "$work/xcr0-cycle" "$here/xcr0-cycle.c"

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
# median of the numbers in its arguments
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# sandbox / native, two decimals
ratio() { awk -v n="$1" -v s="$2" 'BEGIN {printf "%.2f", (n > 0 ? s / n : 0)}'; }
# native and boxed figures: the medians of reps runs of a command printing a
# number, alternating native and sandbox runs so drift hits both alike
reps=5
native=
boxed=
native_and_boxed() {
    local ns=() bs=() v
    for _ in $(seq $reps); do
        v=$("$@") || return 1
        ns+=("$v")
        v=$("$sandbox" "${flags[@]}" -- "$@") || return 1
        bs+=("$v")
    done
    native=$(median "${ns[@]}")
    boxed=$(median "${bs[@]}")
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

# Programs that time themselves, so process startup is left out. Each line
# is the median of $reps runs natively and in the sandbox, and their ratio.
cycles=2000
native_and_boxed "$work/thread-cycle" $cycles
echo "thread create+join: native ${native} ns, sandbox ${boxed} ns per cycle," \
    "ratio $(ratio "$native" "$boxed") (median of $reps runs of $cycles cycles)"

# each fork in the sandbox builds a new KVM VM in the child: a few ms each
forks=100
native_and_boxed "$work/fork-cycle" $forks
echo "fork+exit+wait: native ${native} us, sandbox ${boxed} us per cycle," \
    "ratio $(ratio "$native" "$boxed") (median of $reps runs of $forks cycles)"

# kill(getpid(), SIGUSR1), the handler, rt_sigreturn: in the sandbox two
# forwarded system calls plus building and reading back the frame
signals=10000
native_and_boxed "$work/signal-cycle" $signals
echo "signal round trip: native ${native} ns, sandbox ${boxed} ns per round trip," \
    "ratio $(ratio "$native" "$boxed") (median of $reps runs of $signals signals)"

# A whole short-lived process, startup included: mean wall time of $runs
# runs of sh -c true, $reps times each way, alternating
sh_n=() sh_b=()
for _ in $(seq $reps); do
    sh_n+=("$(mean_us $runs sh -c true)")
    sh_b+=("$(mean_us $runs "$sandbox" "${flags[@]}" -- sh -c true)")
done
native=$(median "${sh_n[@]}")
boxed=$(median "${sh_b[@]}")
echo "sh -c true: native ${native} us, sandbox ${boxed} us per run," \
    "ratio $(ratio "$native" "$boxed") (median of $reps means of $runs runs)"

# Memory per extra thread: VmRSS growth over K threads parked on a barrier.
# In the sandbox /proc/self is the sandbox process, so its figure holds the
# guest's thread stacks and the sandbox's own cost per thread (host thread
# stack, the vCPU's kvm_run page, ...); the difference is the latter.
threads=64
native_and_boxed "$work/thread-rss" $threads
echo "memory per thread: native ${native} KiB, sandbox ${boxed} KiB," \
    "ratio $(ratio "$native" "$boxed"), sandbox's own" \
    "$(awk -v n="$native" -v s="$boxed" 'BEGIN {printf "%+.1f", s - n}') KiB" \
    "per thread (VmRSS, median of $reps runs with $threads threads)"

# ARCH_SET_XCR0 (the sandbox's arch_prctl 0x1031): no native counterpart;
# its cost beside a forwarded getppid's, both in the sandbox.
xcr0_calls=500
xcr0_ns=()
for _ in $(seq $reps); do
    xcr0_ns+=("$("$sandbox" "${flags[@]}" -- "$work/xcr0-cycle" $xcr0_calls)")
done
echo "ARCH_SET_XCR0: sandbox $(median "${xcr0_ns[@]}") ns per call (median of $reps runs" \
    "of $xcr0_calls round trips to 0x3 and back; one KVM_SET_XCRS, and KVM_GET_XSAVE" \
    "when disabling)"
