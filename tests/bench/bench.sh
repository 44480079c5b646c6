#!/usr/bin/env bash
# bench.sh SANDBOX [OUTDIR]: the benchmark suite (`make bench`).
#
# Every workload runs natively and in the sandbox, side by side in one run,
# several times each; the raw figures go to OUTDIR/raw (default
# target/bench/raw) and report.py turns them into OUTDIR/results.md (also
# printed) and OUTDIR/results.json. Then counters that machine noise does not
# move (VM exits, KVM ioctls, host system calls and the sandbox's own
# instructions per forwarded system call), and a full VM booted in QEMU as a
# comparison point. Progress goes to stderr. See README.md next to this file.
#
# Knobs: BENCH_REPS (repetitions of the self-timed programs, default 7),
# BENCH_VM=0 (skip the full VM), BENCH_VM_CPU (its masked CPU model),
# BENCH_VM_RUNS (boots per command, default 3), BENCH_PARTS (which parts
# run, default all: "whole micro touch kvm counters vm").
#
# These are measurements, not tests: nothing here fails on a slow figure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: bench.sh path/to/xcr0-sandbox [OUTDIR]" >&2; exit 2; }
sandbox=$(realpath "$1")
out=${2:-$repo/target/bench}
raw=$out/raw
reps=${BENCH_REPS:-7}
vm_runs=${BENCH_VM_RUNS:-3}
# x87 and SSE only, as a replay of a trace from a machine without AVX needs.
vm_cpu=${BENCH_VM_CPU:-max,-avx,-avx2,-fma,-f16c,-avx-vnni,-pku}
started=$SECONDS

progress() { printf 'bench: [%3d s] %s\n' $((SECONDS - started)) "$*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

# ---------------------------------------------------------------- prerequisites

# Installs what is missing (as root, with apt; apt-get update only then), or
# says what to install.
need() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || [[ " ${missing[*]} " = *" ${pair#*:} "* ]] ||
            missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        progress "installing ${missing[*]}"
        apt-get -q update >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 &&
            return 0
    fi
    die "missing ${missing[*]}: run (as root) apt-get install ${missing[*]}"
}

# ---------------------------------------------------------------- raw records
#
# report.py reads these; each line is tab-separated:
#   meta.tsv       key, value
#   workloads.tsv  key, section, unit, name, reps
#   samples.tsv    key, side (native | sandbox), value
#   counters.tsv   run, label, N (0: a whole run), stats file, strace file,
#                  callgrind file; a run counted at N and 2N gives the
#                  marginal cost per call
#   fullvm.tsv     command, accelerator, cpu, milliseconds
# and hyperfine/KEY.ROUND.json hold hyperfine's exports for whole commands.

meta() { printf '%s\t%s\n' "$1" "$2" >>"$raw/meta.tsv"; }
workload() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$raw/workloads.tsv"; }
sample() {
    case $3 in '' | *[!0-9.]*) die "$1 ($2) printed '$3', not a number (see $raw/stderr.log)" ;; esac
    printf '%s\t%s\t%s\n' "$@" >>"$raw/samples.tsv"
}

# Where the host's KVM does not apply XCR0 (PVM) the sandbox must be told to
# run anyway; the figures are the same either way.
sflags=()
"$sandbox" --check >/dev/null 2>&1 || sflags=(--allow-unenforced-xcr0)
boxed() { "$sandbox" "${sflags[@]}" -- "$@"; }

# ------------------------------------------------------------- self-timed
#
# Programs that time their own loop with CLOCK_MONOTONIC and print one
# figure, so process startup is left out. Native and sandbox runs alternate,
# so a neighbour's burst of work hits both alike.

# selftimed KEY SECTION UNIT NAME -- CMD...: section "only" runs the
# sandbox alone (no native counterpart).
selftimed() {
    local key=$1 section=$2 unit=$3 name=$4 i v
    shift 5
    progress "$name"
    workload "$key" "$section" "$unit" "$name" "$reps"
    for ((i = 0; i < reps; i++)); do
        if [ "$section" != only ]; then
            v=$("$@" 2>>"$raw/stderr.log") || die "$name: native run failed"
            sample "$key" native "$v"
        fi
        v=$(boxed "$@" 2>>"$raw/stderr.log") || die "$name: sandbox run failed"
        sample "$key" sandbox "$v"
    done
}

# ------------------------------------------------------------ whole commands
#
# hyperfine without a shell (-N), so the figure is the command's own: fork,
# exec, startup, work, exit. hyperfine runs one command's runs, then the
# other's; so that a neighbour's burst of work does not land on one side
# only, the runs are split into rounds that alternate which side goes first.
rounds=5

# whole KEY NAME RUNS_PER_ROUND [--prepare CMD] -- CMD...
whole() {
    local key=$1 name=$2 per=$3 prep=() native boxed round order warmup
    shift 3
    if [ "$1" = --prepare ]; then prep=(--prepare "$2"); shift 2; fi
    shift
    native=$(printf '%q ' "$@")
    boxed="$(printf '%q ' "$sandbox" "${sflags[@]}" --) $native"
    progress "$name"
    workload "$key" whole ms "$name" $((rounds * per))
    for ((round = 0; round < rounds; round++)); do
        order=(-n native "$native" -n sandbox "$boxed")
        ((round % 2 == 0)) || order=(-n sandbox "$boxed" -n native "$native")
        warmup=0
        ((round > 0)) || warmup=2
        hyperfine -N --style basic --warmup $warmup --runs "$per" "${prep[@]}" \
            --export-json "$raw/hyperfine/$key.$round.json" "${order[@]}" >&2 ||
            die "$name: hyperfine failed"
    done
}

# ------------------------------------------------------------------ workloads

build_programs() {
    local p
    progress "building the benchmark programs in $work"
    for p in read-loop pingpong clock-loop mmap-loop first-touch spin \
        thread-cycle fork-cycle signal-cycle xcr0-cycle thread-rss kvm-costs ptrace-cycle; do
        cc -O2 -pthread -o "$work/$p" "$here/$p.c"
    done
    cc -O2 -o "$work/syscall-loop" "$here/../guests/syscall-loop.c"
    cc -O2 -pthread -o "$work/seccomp" "$here/../guests/seccomp.c"
    cc -O2 -static -o "$work/true-static" "$here/true.c"
}

# Inputs for the real-work commands, the same on every run: a small C file,
# 1 MB of text lines from a fixed-seed generator, a tiny make project.
make_inputs() {
    local i
    cat >"$work/small.c" <<'EOF'
#include <stdio.h>
#include <string.h>
struct entry { const char *name; int value; };
static int cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}
int main(int argc, char **argv)
{
	struct entry e[16];
	for (int i = 0; i < 16 && i < argc; i++)
		e[i] = (struct entry){argv[i], i};
	qsort(e, argc < 16 ? argc : 16, sizeof e[0], cmp);
	for (int i = 0; i < 16 && i < argc; i++)
		printf("%s %d\n", e[i].name, e[i].value);
	return 0;
}
EOF
    awk 'BEGIN { x = 12345; n = 0
        while (n < 1048576) {
            line = ""
            for (w = 0; w < 6; w++) { x = (x * 1103515245 + 12345) % 2147483648; line = line sprintf("%x ", x) }
            print line; n += length(line) + 1 } }' >"$work/sort.txt"
    mkdir -p "$work/proj"
    for i in 1 2 3 4 5 6; do
        printf 'int f%d(int x)\n{\n\treturn x * %d + %d;\n}\n' "$i" "$i" "$i" >"$work/proj/f$i.c"
    done
    printf 'int f1(int);\nint main(void)\n{\n\treturn f1(0);\n}\n' >"$work/proj/main.c"
    cat >"$work/proj/Makefile" <<'EOF'
OBJS := main.o f1.o f2.o f3.o f4.o f5.o f6.o
prog: $(OBJS)
	$(CC) -o $@ $(OBJS)
%.o: %.c
	$(CC) -O2 -c -o $@ $<
clean:
	rm -f prog $(OBJS)
EOF
}

# The figures per operation. Loop counts are chosen for a run of a fraction
# of a second in the sandbox on PVM (about 30-50 us per forwarded call).
micro_benchmarks() {
    selftimed getppid op ns "getppid (forwarded, no pointer)" -- "$work/syscall-loop" 20000
    # the same under the program's seccomp filter: the kernel runs it JITed
    # natively, the sandbox interprets it on every call
    selftimed seccomp op ns "getppid under a seccomp filter of 16 comparisons" -- "$work/seccomp" loop 20000
    selftimed read1 op ns "read 1 byte from /dev/zero" -- "$work/read-loop" 10000 1
    selftimed read4k op ns "read 4 KiB from /dev/zero" -- "$work/read-loop" 10000 4096
    selftimed pipe-threads op ns "pipe ping-pong, 1 byte, two threads (round trip)" -- "$work/pingpong" thread 3000
    selftimed pipe-procs op ns "pipe ping-pong, 1 byte, two processes (round trip)" -- "$work/pingpong" process 3000
    selftimed clock op ns "clock_gettime(CLOCK_MONOTONIC) (vDSO natively)" -- "$work/clock-loop" 10000
    selftimed mmap op ns "mmap 16 pages + write 1 byte + munmap" -- "$work/mmap-loop" 2000
    selftimed thread op ns "thread create + join" -- "$work/thread-cycle" 2000
    # each fork in the sandbox builds a new KVM VM in the child: ms each
    selftimed fork op µs "fork + exit + wait" -- "$work/fork-cycle" 100
    # kill(getpid(), SIGUSR1), the handler, rt_sigreturn
    selftimed signal op ns "signal round trip (kill self, handler, sigreturn)" -- "$work/signal-cycle" 10000
    # a traced child's system call: its entry and exit stops, each a wait
    # and a PTRACE_SYSCALL of the tracer's; and one PEEKDATA of it
    selftimed ptrace-stop op ns "ptrace: a traced system call (entry and exit stops, wait + PTRACE_SYSCALL each)" -- "$work/ptrace-cycle" stop 2000
    selftimed ptrace-peek op ns "ptrace: PTRACE_PEEKDATA of one word" -- "$work/ptrace-cycle" peek 20000
    selftimed ptrace-watch op ns "ptrace: a write beside a watched word (same page, no hit)" -- "$work/ptrace-cycle" watch 5000
    # VmRSS growth over 64 threads parked on a barrier: in the sandbox
    # /proc/self is the sandbox process, so it adds the sandbox's own cost
    selftimed thread-rss op KiB "memory per extra thread (VmRSS)" -- "$work/thread-rss" 64
    # ARCH_SET_XCR0 has no native counterpart: shown beside getppid
    selftimed xcr0 only ns "ARCH_SET_XCR0 call (arch_prctl 0x1031 to 0x3 and back, per call)" -- "$work/xcr0-cycle" 500
}

# 1 GiB touched once per page: three runs each way are enough for a run of
# seconds.
first_touch() {
    local saved=$reps
    reps=3
    selftimed touch op ms "first touch of 1 GiB, 1 byte per page (page faults)" -- "$work/first-touch" 1024
    reps=$saved
}

# What this host's KVM costs by itself, measured by a program of its own
# with no sandbox (kvm-costs.c): the floor under the sandbox's start-up (a
# VM, a vCPU, memslots, the first entry, the teardown) and under each exit.
kvm_alone() {
    local what name i v
    for what in vm memslot vcpu first exit destroy; do
        case $what in
        vm) name="KVM_CREATE_VM" ;;
        memslot) name="a 64 MiB memslot (KVM_SET_USER_MEMORY_REGION)" ;;
        vcpu) name="KVM_CREATE_VCPU" ;;
        first) name="a vCPU's first KVM_RUN" ;;
        exit) name="an exit to user space and back (guest \`out\` at CPL0, real mode)" ;;
        destroy) name="destroying the VM (closing the vCPU and the VM)" ;;
        esac
        progress "KVM alone: $name"
        # Not the sandbox's figure: where this KVM will not run the tiny
        # guest, the part is left out rather than the whole run lost.
        if ! "$work/kvm-costs" "$what" 1 >/dev/null 2>>"$raw/stderr.log"; then
            progress "KVM alone: kvm-costs failed here (see $raw/stderr.log); part skipped"
            return 0
        fi
        workload "kvm-$what" kvm µs "$name" "$reps"
        for ((i = 0; i < reps; i++)); do
            v=$("$work/kvm-costs" "$what" 2>>"$raw/stderr.log") || die "kvm-costs $what failed (see $raw/stderr.log)"
            sample "kvm-$what" kvm "$v"
        done
    done
}

whole_commands() {
    local py spin_n
    whole true-dyn "startup: /bin/true (dynamic)" 6 -- /bin/true
    whole true-static "startup: true (static, cc -static)" 6 -- "$work/true-static"
    # About one second of pure CPU here, whatever the CPU: calibrated natively.
    spin_n=$("$work/spin" --calibrate 1000)
    meta spin_iterations "$spin_n"
    whole spin "compute-bound loop, ~1 s (startup included)" 1 -- "$work/spin" "$spin_n"
    # The interpreter itself, not a version manager's shim script in PATH.
    py=$(PATH=/usr/local/bin:/usr/bin:/bin command -v python3) || die "no python3 in /usr/local/bin, /usr/bin or /bin"
    meta python "$py"
    whole python "python3 -c pass" 2 -- "$py" -c pass
    whole gcc "gcc -c of a small C file" 1 -- gcc -O2 -c -o "$work/small.o" "$work/small.c"
    whole sort "sort of 1 MB of text" 2 -- sort -o "$work/sorted.txt" "$work/sort.txt"
    whole make "make -j2 of 7 small C files (clean before each run)" 1 \
        --prepare "make -s -C $work/proj clean" -- make -s -j2 -C "$work/proj"
}

# ------------------------------------------------------------------- counters
#
# Counts, not times: the sandbox's --stats (system calls, VM exits, KVM
# ioctls), strace -c (every host system call the sandbox makes; the
# program's forwarded calls are among them) and callgrind (the sandbox's own
# user-space instructions: the guest runs inside KVM_RUN, uninstrumented).
# The getppid loop runs with N and 2N calls, so that startup cancels out of
# the difference; python3 -c pass is counted whole.

# count RUN LABEL N -- CMD...: one run under each of the three counters.
count() {
    local run=$1 label=$2 n=$3 base=$raw/counters/$1-$3
    shift 4
    "$sandbox" "${sflags[@]}" --stats -- "$@" >/dev/null 2>"$base.stats" || die "$run: --stats run failed"
    strace -f -c -o "$base.strace" "$sandbox" "${sflags[@]}" --stats -- "$@" >/dev/null 2>"$base.strace-stats" ||
        die "$run: strace run failed"
    if [ "$callgrind" = yes ]; then
        # Valgrind loads the sandbox (PIE) at 0x108000, over where a
        # non-PIE program (Debian's python3, at 0x400000) must go: then
        # no instruction count for that run.
        if ! valgrind --tool=callgrind --callgrind-out-file="$base.callgrind.out" \
            "$sandbox" "${sflags[@]}" --stats -- "$@" >/dev/null 2>"$base.callgrind"; then
            mv "$base.callgrind" "$base.callgrind-failed.log"
            : >"$base.callgrind"
            progress "$run: callgrind cannot run it (see $base.callgrind-failed.log): no instruction count"
        fi
    else
        : >"$base.callgrind"
    fi
    # A whole run also names its calls (-v traces each; RUST_LOG would
    # override -v), so that its extra host calls can be told apart by name.
    if [ "$n" = 0 ]; then
        env -u RUST_LOG "$sandbox" "${sflags[@]}" -v -- "$@" >/dev/null 2>"$base.trace" || die "$run: -v run failed"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$label" "$n" "$base.stats" "$base.strace" "$base.callgrind" \
        >>"$raw/counters.tsv"
}

counters() {
    local n=2000 py
    py=$(PATH=/usr/local/bin:/usr/bin:/bin command -v python3)
    # callgrind must be able to run the statically linked sandbox and its
    # KVM ioctls (it warns about ioctls it does not know, and goes on).
    callgrind=no
    if valgrind --tool=callgrind --callgrind-out-file=/dev/null "$sandbox" "${sflags[@]}" -- /bin/true \
        >/dev/null 2>"$raw/counters/valgrind-probe.log"; then
        callgrind=yes
    else
        progress "callgrind cannot run the sandbox (see $raw/counters/valgrind-probe.log): no instruction counts"
    fi
    meta callgrind "$callgrind"
    # perf would be the cheaper counter, where the (virtual) PMU offers it
    if command -v perf >/dev/null && perf stat -x, -e instructions:u true 2>&1 >/dev/null | grep -q '^[0-9]'; then
        meta perf_instructions available
    else
        meta perf_instructions "not supported"
    fi
    progress "counters: getppid loop of $n and $((2 * n)) calls (--stats, strace -c, callgrind)"
    count getppid "getppid (no pointer)" "$n" -- "$work/syscall-loop" "$n"
    count getppid "getppid (no pointer)" "$((2 * n))" -- "$work/syscall-loop" "$((2 * n))"
    # a call with a pointer: what checking it costs in host system calls
    progress "counters: read of 1 byte, $n and $((2 * n)) calls"
    count read1 "read of 1 byte (a pointer)" "$n" -- "$work/read-loop" "$n" 1
    count read1 "read of 1 byte (a pointer)" "$((2 * n))" -- "$work/read-loop" "$((2 * n))" 1
    # startup alone: the VM, memslots, the XCR0 probe, the loader
    progress "counters: /bin/true"
    count true "/bin/true" 0 -- /bin/true
    progress "counters: python3 -c pass"
    count python "python3 -c pass" 0 -- "$py" -c pass
}

# ------------------------------------------------------------------ full VM
#
# The alternative the sandbox competes with: a freshly booted VM whose CPU is
# masked. The nested lane's machinery boots it (Debian kernel, busybox
# initramfs, the host's root over 9p), without loading KVM inside. Timed
# from launching the lane to the command's end, boot included. Hardware KVM
# first; where QEMU cannot use this host's /dev/kvm (PVM runs no stock
# kernel), QEMU's software CPU (TCG).

# lane SECS CMD...
lane() {
    local secs=$1
    shift
    LANE_ACCEL=$accel LANE_CPU=$vm_cpu LANE_NEED_KVM=0 "$repo/tests/nested/lane.sh" --timeout "$secs" -- "$@"
}

# vm_boot KEY I CMD...: one boot running CMD, timed.
vm_boot() {
    local key=$1 i=$2 t0 t1
    shift 2
    progress "full VM ($accel): $*, boot $i of $vm_runs"
    t0=$(date +%s%N)
    lane 300 "$@" >/dev/null || die "full VM: the lane failed (see target/nested/last-console.log)"
    t1=$(date +%s%N)
    printf '%s\t%s\t%s\t%s\n' "$key" "$accel" "$vm_cpu" "$(((t1 - t0) / 1000000))" >>"$raw/fullvm.tsv"
}

full_vm() {
    local py i flags
    [ "${BENCH_VM:-1}" != 0 ] || { progress "full VM skipped (BENCH_VM=0)"; return 0; }
    py=$(PATH=/usr/local/bin:/usr/bin:/bin command -v python3)
    accel=kvm
    # a KVM boot takes seconds; a guest hung on an unusable KVM is cut short
    if [ ! -w /dev/kvm ] || ! lane 60 /bin/true >/dev/null 2>"$raw/fullvm-kvm.log"; then
        progress "full VM: QEMU cannot boot on this host's KVM (see $raw/fullvm-kvm.log): TCG"
        meta vm_kvm_failure "$(grep -m1 -e '^qemu-system' -e '^lane:' "$raw/fullvm-kvm.log" || echo "/dev/kvm not writable")"
        accel=tcg
    fi
    # Check the mask took: the guest must list none of the masked features.
    flags=$(lane 300 sh -c 'grep -m1 "^flags" /proc/cpuinfo') || die "full VM: the lane failed (see target/nested/last-console.log)"
    meta vm_avx_flags "$(tr ' ' '\n' <<<"$flags" | grep -c -e '^avx' -e '^fma$' || true)"
    meta vm_accel "$accel"
    meta vm_cpu "$vm_cpu"
    for i in $(seq "$vm_runs"); do
        vm_boot true "$i" /bin/true
        vm_boot python "$i" "$py" -c pass
    done
}

# ---------------------------------------------------------------------- main

machine_meta() {
    local check
    check=$("$sandbox" --check 2>/dev/null) || true
    meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
    meta kernel "$(uname -r)"
    meta kvm "$(sed -n 's/^kvm: //p' <<<"$check")"
    meta host_xcr0 "$(sed -n 's/^host xcr0: //p' <<<"$check")"
    meta xcr0_enforced "$(sed -n 's/^xcr0: //p' <<<"$check")"
    meta cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    meta cores "$(nproc)"
    meta sandbox_flags "${sflags[*]}"
    meta reps "$reps"
    meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
    # Not a reason to stop (a shared CI machine is never idle), but say so.
    if awk -v c="$(nproc)" '{ exit !($1 > c / 2) }' /proc/loadavg; then
        progress "warning: load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores: other work will show in the figures"
    fi
    meta hyperfine "$(hyperfine --version)"
}

need hyperfine:hyperfine strace:strace valgrind:valgrind cc:gcc gcc:gcc make:make python3:python3
[ -x "$sandbox" ] || die "$sandbox is not an executable (make build first)"
rm -rf "$raw"
mkdir -p "$raw/hyperfine" "$raw/counters"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

parts=" ${BENCH_PARTS:-whole micro touch kvm counters vm} "
part() { [[ $parts = *" $1 "* ]]; }

machine_meta
build_programs
make_inputs
if part whole; then whole_commands; fi
if part micro; then micro_benchmarks; fi
if part touch; then first_touch; fi
if part kvm; then kvm_alone; fi
if part counters; then counters; fi
if part vm; then full_vm; fi
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta duration_s "$((SECONDS - started))"
progress "writing $out/results.md and $out/results.json"
python3 "$here/report.py" "$raw" "$out"
