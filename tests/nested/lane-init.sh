#!/bin/busybox sh
# PID 1 of the nested lane (busybox, inside the initramfs built by lane.sh).
#
# Loads KVM (kvm_amd) and 9p, mounts the host's root read-only at /host, runs the
# job from /job.sh (a second initramfs archive written per run by lane.sh) inside
# `chroot /host`, and reports through the kernel log on the console (ttyS0):
#   @@LANE-EXIT@@ <status>    the command ran and ended with <status>
#   @@LANE-NOKVM@@ <reason>   kvm_amd or /dev/kvm is missing (lane.sh exits 4)
#   @@LANE-FAIL@@ <reason>    the lane itself could not be set up (lane.sh exits 3)
# The command's stdout+stderr go to the second serial port (ttyS1), which lane.sh
# streams to its stdout, so that kernel messages never mix with them.

export PATH=/bin

# Lines go through /dev/kmsg: printk writes the console synchronously, so a line is
# on the wire before the power-off that follows it (a tty write may not be).
# Level <2> keeps them visible with `quiet`.
say() { echo "<2>$*" >/dev/kmsg; }
debug() { [ "$LANE_DEBUG" = 1 ] && say "lane: $*"; }
finish() {
    say "$1"
    poweroff -f
    # Should poweroff fail, init exiting panics the kernel; panic=-1 plus
    # QEMU's -no-reboot then end the VM.
    exit 1
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

LANE_DEBUG=0
LANE_WORKDIR=/
LANE_NEED_KVM=1
. /job.sh

# Modules, in dependency order (computed by lane.sh from the kernel package).
# Without LANE_NEED_KVM (a benchmark's plain VM) KVM's modules are skipped.
while read -r mod; do
    case $LANE_NEED_KVM:$mod in 0:kvm*|0:ccp|0:irqbypass) continue ;; esac
    err=$(insmod "/modules/$mod.ko" 2>&1) || {
        case $mod in
        kvm*|ccp|irqbypass)
            finish "@@LANE-NOKVM@@ insmod $mod failed: $err; kernel says: $(dmesg | tail -n 3 | tr '\n' ' ')" ;;
        *) finish "@@LANE-FAIL@@ insmod $mod failed: $err" ;;
        esac
    }
done </modules/order

if [ "$LANE_NEED_KVM" != 0 ]; then
    [ -d /sys/module/kvm_amd ] ||
        finish "@@LANE-NOKVM@@ kvm_amd is not loaded; kernel says: $(dmesg | grep -i -e kvm -e svm | tail -n 3 | tr '\n' ' ')"
    [ -c /dev/kvm ] || finish "@@LANE-NOKVM@@ kvm_amd loaded but /dev/kvm did not appear"
    # Root runs the commands, but let a test that drops privileges open it too.
    chmod 0666 /dev/kvm
    debug "kvm_amd npt=$(cat /sys/module/kvm_amd/parameters/npt) nested=$(cat /sys/module/kvm_amd/parameters/nested)"
fi

# Default cache mode (no caching): the host may change files at any time, and
# mmap of executables from 9p works in this mode (read-only private mappings).
mkdir -p /host
mount -t 9p -o "trans=virtio,version=9p2000.L,ro,msize=512000" hostroot /host ||
    finish "@@LANE-FAIL@@ cannot mount the host root over 9p"
mount -t proc proc /host/proc &&
mount -t sysfs sysfs /host/sys &&
mount -t devtmpfs devtmpfs /host/dev &&
mkdir -p /host/dev/pts /host/dev/shm &&
mount -t devpts -o ptmxmode=0666 devpts /host/dev/pts &&
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm &&
mount -t tmpfs -o mode=1777 tmpfs /host/tmp &&
mount -t tmpfs -o mode=0755 tmpfs /host/run ||
    finish "@@LANE-FAIL@@ cannot mount proc/sys/dev/tmp inside /host"
# The caller's directory at its own path, also where a tmpfs above hides it.
mkdir -p "/host$LANE_WORKDIR" 2>/dev/null
mount -t 9p -o "trans=virtio,version=9p2000.L,ro,msize=512000" work "/host$LANE_WORKDIR" ||
    finish "@@LANE-FAIL@@ cannot mount the working directory $LANE_WORKDIR"

# Raw: no \n -> \r\n on the command's output.
stty -F /dev/ttyS1 raw -echo 2>/dev/null

# A pipe, not the tty, as the command's stdout (like CI); cat copies it out.
mkfifo /out
cat /out >/dev/ttyS1 &
catpid=$!
debug "running the job"
lane_run </dev/null >/out 2>&1
status=$?

# Background processes the command left behind may still hold the pipe: give them
# a moment, then kill them so that cat sees EOF. cat's close of ttyS1 waits until
# everything it wrote has been sent.
i=0
while kill -0 "$catpid" 2>/dev/null && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$catpid" 2>/dev/null; then
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        [ "$p" = 1 ] || [ "$p" = "$catpid" ] || kill -9 "$p" 2>/dev/null
    done
fi
wait "$catpid"

finish "@@LANE-EXIT@@ $status"
