#!/usr/bin/env bash
# lane.sh [--timeout SECS] [--] CMD [ARGS...]
#
# Runs CMD under a real KVM: kvm_amd inside QEMU's software CPU (TCG, emulated SVM
# with nested paging), with this machine's root shared read-only over 9p as the
# chroot root. This machine's own /dev/kvm (PVM) does not apply a guest's XCR0;
# the lane's does. See README.md next to this script.
#
# Exit status: CMD's own, or 2 (missing prerequisites), 3 (no result from the
# guest), 4 (no kvm_amd or /dev/kvm inside), 124 (timed out).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=$repo/target/nested

timeout=900
while [ $# -gt 0 ]; do
    case $1 in
    --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
    --timeout=*) timeout=${1#--timeout=}; shift ;;
    --) shift; break ;;
    -*) echo "lane: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: lane.sh [--timeout SECS] [--] CMD [ARGS...]" >&2; exit 2; }
case $timeout in '' | *[!0-9]*) echo "lane: --timeout wants whole seconds" >&2; exit 2 ;; esac

# Knobs for experiments, not for CI: guest memory (MiB) and vCPUs.
mem=${LANE_MEM:-2048}
smp=${LANE_SMP:-1}
debug=${LANE_DEBUG:-0}
# Knobs for the benchmark's full-VM comparison point (tests/bench/): QEMU's
# accelerator and CPU model (a masked one, e.g. max,-avx,-avx2), and
# LANE_NEED_KVM=0 to boot without loading KVM inside, which a guest on
# another accelerator or CPU may not offer. The defaults are the lane's.
accel=${LANE_ACCEL:-tcg}
cpu=${LANE_CPU:-max}
need_kvm=${LANE_NEED_KVM:-1}

log() { echo "lane: $*" >&2; }

# ---------------------------------------------------------------- prerequisites

apt_updated=0
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2 && return 0
    [ $apt_updated = 0 ] || return 1
    apt_updated=1
    apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
}

# need "cmd:package ..." installs what is missing, or says what to install and exits 2.
need() {
    local missing=() pair
    for pair in "$@"; do
        # busybox must be the static build: it is PID 1 of an initramfs without libc.
        if [ "${pair%%:*}" = busybox ]; then
            dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' ||
                missing+=("${pair#*:}")
        elif ! command -v "${pair%%:*}" >/dev/null 2>&1; then
            missing+=("${pair#*:}")
        fi
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing ${missing[*]}"
        apt_install "${missing[@]}" && return 0
    fi
    echo "lane: missing ${missing[*]}: run (as root) apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 2
}

need qemu-system-x86_64:qemu-system-x86 busybox:busybox-static cpio:cpio gzip:gzip xz:xz-utils dpkg-deb:dpkg

mkdir -p "$cache"
# One preparer at a time; concurrent lanes then share the cache.
exec 9>"$cache/.lock"
flock 9

# ----------------------------------------------------------------------- kernel

# The versioned kernel package a meta package depends on; empty when apt does
# not know the meta package (apt-cache then fails, which is no error here).
kernel_of() {
    local deps
    deps=$(apt-cache depends "$1" 2>/dev/null) || return 0
    sed -n 's/^ *Depends: \(linux-image-6.*-amd64\)$/\1/p' <<<"$deps" | sed -n 1p
}

# The kernel package: LANE_KERNEL_PKG if given, else the current 6.12 kernel
# (linux-image-6.12-amd64, in bookworm-security), else the current 6.1 one
# (linux-image-amd64). Chosen once, on a cold cache; after that the copy in the
# cache is used, without apt or the network. Stale apt lists may not know the 6.12
# series yet: they are refreshed once, so that every machine picks the same series.
pick_kernel_pkg() { # sets pkg
    pkg=${LANE_KERNEL_PKG:-}
    [ -z "$pkg" ] || return 0
    local meta p
    for meta in linux-image-6.12-amd64 linux-image-amd64; do
        p=$(kernel_of "$meta")
        if [ -z "$p" ] && [ $meta = linux-image-6.12-amd64 ] && [ $apt_updated = 0 ] && [ "$(id -u)" = 0 ]; then
            apt_updated=1
            apt-get -q update >&2 || true
            p=$(kernel_of "$meta")
        fi
        [ -z "$p" ] || { pkg=$p; return 0; }
    done
    echo "lane: apt-cache knows no Debian amd64 kernel package (linux-image-6.12-amd64 or linux-image-amd64): set LANE_KERNEL_PKG" >&2
    exit 2
}

# The .deb of $pkg, from the cache or downloaded into it; sets deb.
kernel_deb() {
    mkdir -p "$cache/deb"
    deb=$(ls "$cache/deb/${pkg}_"*.deb 2>/dev/null | tail -n 1) || true
    if [ -z "$deb" ]; then
        log "downloading $pkg"
        # As root apt would warn that its _apt sandbox user cannot write here.
        (cd "$cache/deb" && { apt-get -q -o APT::Sandbox::User=root download "$pkg" >&2 ||
            { [ $apt_updated = 0 ] && apt-get -q update >&2 && apt-get -q -o APT::Sandbox::User=root download "$pkg" >&2; }; }) ||
            { echo "lane: cannot download $pkg: check apt sources and network, or put its .deb in $cache/deb/" >&2; exit 2; }
        deb=$(ls "$cache/deb/${pkg}_"*.deb | tail -n 1)
    fi
}

# The ELF vmlinux inside a bzImage ($1), compressed as kernel config $2 says. QEMU
# boots it directly through its PVH entry, which skips the in-guest decompression
# (about 4 s under TCG).
extract_vmlinux() {
    local img=$1 config=$2 out=$3 magic tool off
    case $(grep -o '^CONFIG_KERNEL_[A-Z0-9]*=y' "$config") in
    CONFIG_KERNEL_XZ=y) magic=$'\xfd7zXZ'; need xz:xz-utils; tool='xz -dc --single-stream' ;;
    CONFIG_KERNEL_ZSTD=y) magic=$'\x28\xb5\x2f\xfd'; need zstd:zstd; tool='zstd -qdc' ;;
    CONFIG_KERNEL_GZIP=y) magic=$'\x1f\x8b\x08'; tool='gzip -dc' ;;
    *) return 1 ;;
    esac
    # The magic may also occur by chance before the payload: try each match.
    for off in $(LC_ALL=C grep -abo -F "$magic" "$img" | cut -d: -f1); do
        tail -c +$((off + 1)) "$img" | $tool >"$out" 2>/dev/null || true
        [ "$(head -c 4 "$out" | od -An -c | tr -d ' ')" = '177ELF' ] && return 0
    done
    rm -f "$out"
    return 1
}

kdir=$cache/kernel
# Modules the init loads, with their dependencies; built-in ones are skipped.
wanted_modules="kvm-amd virtio_pci 9pnet_virtio 9p"
initrd=$cache/initrd.gz
initrd_key() {
    { cat "$here/lane-init.sh"; echo "$(cat "$kdir/version") $wanted_modules"; sha256sum "$(command -v busybox)"; } |
        sha256sum | cut -d' ' -f1
}

# Builds $initrd from the unpacked package in $1.
build_initrd() {
    local root=$1 kver moddir stage f n m
    kver=$(cat "$kdir/version")
    moddir=$root/lib/modules/$kver
    log "building the initramfs for $kver"
    stage=$cache/initrd.stage
    rm -rf "$stage"
    mkdir -p "$stage"/{bin,dev,proc,sys,modules}

    # Module name (dashes as underscores) -> file.
    declare -A modfile=() seen=()
    while IFS= read -r f; do
        n=${f##*/}; n=${n%%.ko*}; modfile[${n//-/_}]=$f
    done < <(find "$moddir/kernel" -name '*.ko*')
    local order=()
    add_module() { # depth first, dependencies before dependents
        local n=${1//-/_} f deps d
        [ -z "${seen[$n]:-}" ] || return 0
        seen[$n]=1
        f=${modfile[$n]:-}
        if [ -z "$f" ]; then
            grep -q -e "/$1\.ko" -e "/$n\.ko" "$moddir/modules.builtin" 2>/dev/null ||
                log "warning: module $1 is neither in $kver's package nor built in"
            return 0
        fi
        # busybox insmod wants plain .ko files.
        case $f in
        *.ko) cat "$f" ;;
        *.ko.xz) xz -dc "$f" ;;
        *.ko.zst) need zstd:zstd; zstd -qdc "$f" ;;
        *.ko.gz) gzip -dc "$f" ;;
        esac >"$stage/modules/$n.ko"
        deps=$(tr '\0' '\n' <"$stage/modules/$n.ko" | sed -n 's/^depends=//p' | head -n 1)
        for d in ${deps//,/ }; do add_module "$d"; done
        order+=("$n")
    }
    for m in $wanted_modules; do add_module "$m"; done
    printf '%s\n' "${order[@]}" >"$stage/modules/order"

    cp "$(command -v busybox)" "$stage/bin/busybox"
    for m in $(busybox --list); do
        [ "$m" = busybox ] || ln -s busybox "$stage/bin/$m"
    done
    cp "$here/lane-init.sh" "$stage/init"
    chmod 0755 "$stage/init"
    (cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 >"$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
    initrd_key >"$cache/initrd.key"
    rm -rf "$stage"
}

if [ ! -f "$kdir/vmlinuz" ] || [ ! -f "$initrd" ] || [ "$(cat "$cache/initrd.key" 2>/dev/null)" != "$(initrd_key)" ]; then
    if [ -f "$kdir/package" ]; then pkg=$(cat "$kdir/package"); else pick_kernel_pkg; fi
    kernel_deb
    log "unpacking ${deb##*/}"
    unpack=$cache/unpack.tmp
    rm -rf "$unpack"
    mkdir -p "$unpack"
    dpkg-deb -x "$deb" "$unpack"
    if [ ! -f "$kdir/vmlinuz" ]; then
        rm -rf "$kdir.tmp"
        mkdir -p "$kdir.tmp"
        vmlinuz=$(ls "$unpack/boot/"vmlinuz-* | head -n 1)
        echo "${vmlinuz##*/vmlinuz-}" >"$kdir.tmp/version"
        echo "$pkg" >"$kdir.tmp/package"
        cp "$unpack/boot/config-"* "$kdir.tmp/config"
        cp "$vmlinuz" "$kdir.tmp/vmlinuz"
        if grep -q '^CONFIG_PVH=y' "$kdir.tmp/config"; then
            extract_vmlinux "$vmlinuz" "$kdir.tmp/config" "$kdir.tmp/vmlinux" || log "note: no vmlinux in $vmlinuz; booting the bzImage (slower)"
        fi
        rm -rf "$kdir"
        mv "$kdir.tmp" "$kdir"
    fi
    build_initrd "$unpack"
    rm -rf "$unpack"
fi
kernel=$kdir/vmlinuz
[ ! -f "$kdir/vmlinux" ] || kernel=$kdir/vmlinux
flock -u 9

# ------------------------------------------------------------------------- run

# Run directories of lanes that were killed outright.
find "$cache" -maxdepth 1 -name 'run.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
run=$(mktemp -d "$cache/run.XXXXXX")
qpid=
cleanup() {
    [ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The job: a shell fragment the init sources, in a second initramfs archive.
q() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
# The caller's directory is shared on its own as well, mounted at its own path
# inside the chroot: the host root's /tmp, /run and /dev/shm are hidden there
# behind fresh tmpfs mounts, and a CI checkout may live under them.
workdir=${PWD:-$(pwd)}
{
    echo "LANE_DEBUG=$(q "$debug")"
    echo "LANE_NEED_KVM=$(q "$need_kvm")"
    echo "LANE_WORKDIR=$(q "$workdir")"
    printf 'lane_run() {\n    chroot /host /usr/bin/env -i'
    for kv in PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TMPDIR=/tmp; do
        printf ' %s' "$(q "$kv")"
    done
    for v in RUST_LOG RUST_BACKTRACE CI $(compgen -e | grep '^XCR0_' || true); do
        [ -z "${!v+set}" ] || [ "$v" = XCR0_SANDBOX_LANE ] || printf ' %s' "$(q "$v=${!v}")"
    done
    printf ' XCR0_SANDBOX_LANE=1'
    # cd inside: the caller's directory has the same path in the chroot.
    printf ' /bin/sh -c %s lane-sh' \
        "$(q 'cd -- "$1" 2>/dev/null || { echo "lane: directory $1 is not visible inside the lane" >&2; exit 126; }; shift; exec "$@"')"
    printf ' %s' "$(q "$workdir")"
    for a in "$@"; do printf ' %s' "$(q "$a")"; done
    printf '\n}\n'
} >"$run/job.sh"
# The kernel takes concatenated archives; the base one is padded to 4 bytes.
(cd "$run" && echo job.sh | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$run/job.cpio.gz"
{
    cat "$initrd"
    size=$(stat -c %s "$initrd")
    head -c $(((4 - size % 4) % 4)) /dev/zero
    cat "$run/job.cpio.gz"
} >"$run/initrd.gz"

# Two serial ports: ttyS0 is the kernel console (kept in console.log, shown live on
# stderr with LANE_DEBUG=1), ttyS1 carries the command's output to our stdout.
mkfifo "$run/console.fifo" "$run/out.fifo"
if [ "$debug" = 1 ]; then
    tee "$run/console.log" <"$run/console.fifo" >&2 &
else
    cat <"$run/console.fifo" >"$run/console.log" &
fi
cpid=$!
cat <"$run/out.fifo" &
opid=$!

append="console=ttyS0 panic=-1 printk.devkmsg=on"
[ "$debug" = 1 ] || append="$append quiet loglevel=3"

# Time left for the guest out of the overall timeout.
left=$((timeout - SECONDS))
[ $left -ge 1 ] || left=1
start=$SECONDS
set +e
timeout -k 5 "$left" qemu-system-x86_64 \
    -accel "$accel" -cpu "$cpu" -smp "$smp" -m "$mem" \
    -nodefaults -no-user-config -display none -monitor none -no-reboot \
    -kernel "$kernel" -initrd "$run/initrd.gz" -append "$append" \
    -chardev file,id=con,path="$run/console.fifo" -device isa-serial,chardev=con \
    -chardev file,id=out,path="$run/out.fifo" -device isa-serial,chardev=out \
    -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    -fsdev local,id=work,path="$workdir",security_model=none,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=work,mount_tag=work \
    </dev/null &
qpid=$!
wait "$qpid"
qstatus=$?
qpid=
set -e
# If QEMU died before opening a fifo, its reader still waits for a writer: be one.
exec 7<>"$run/console.fifo" 7>&- 8<>"$run/out.fifo" 8>&-
wait "$cpid" "$opid" || true
cp "$run/console.log" "$cache/last-console.log" 2>/dev/null || true

tail_console() {
    echo "---- last 40 lines of the guest console ($cache/last-console.log) ----" >&2
    if [ -s "$run/console.log" ]; then tail -n 40 "$run/console.log" | tr -d '\r' >&2; else echo "(empty: nothing above the quiet log level)" >&2; fi
    echo "----" >&2
}

marker=$(tr -d '\r' <"$run/console.log" | grep -a -o '@@LANE-[A-Z]*@@.*' | tail -n 1) || true
case $marker in
'@@LANE-EXIT@@ '*)
    [ "$debug" != 1 ] || log "guest ran $((SECONDS - start)) s"
    status=${marker#@@LANE-EXIT@@ }
    exit "${status%%[!0-9]*}" ;;
'@@LANE-NOKVM@@ '*)
    log "no KVM inside the lane: ${marker#@@LANE-NOKVM@@ }"
    tail_console
    exit 4 ;;
esac
if [ $qstatus = 124 ] || [ $qstatus = 137 ]; then
    log "timed out after ${timeout} s; QEMU killed"
    tail_console
    exit 124
fi
case $marker in
'@@LANE-FAIL@@ '*) log "the lane failed: ${marker#@@LANE-FAIL@@ }" ;;
*) log "the guest ended without reporting an exit status (QEMU status $qstatus): crashed, panicked or powered off early" ;;
esac
tail_console
exit 3
