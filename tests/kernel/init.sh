#!/bin/busybox sh
# PID 1 of the kernel-lane guest (see tests/kernel/run.py and docs/testing.md).
# Loads the V4L2, virtio, 9p and virtiofs modules listed in /modules.list, mounts the host's
# root read-only (virtiofs or 9p) at /mnt with the guest's /dev, /proc, /sys and a tmpfs /tmp
# bound into it, runs the host-written /handoff/run.sh chrooted there, reports its exit
# status in /handoff/exit and as a CAMSVC-GUEST-EXIT=<n> console line, and powers off.
echo CAMSVC-GUEST-START  # the host hides firmware output before this line
/bin/busybox mkdir -p /proc /sys /dev /mnt /handoff
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

finish() {
    echo "$1" > /handoff/exit 2>/dev/null
    echo "CAMSVC-GUEST-EXIT=$1"
    sync
    poweroff -f
    sleep 5
    exit "$1"  # PID 1 exiting panics the kernel; panic=-1 with -no-reboot ends QEMU
}
fail() {
    echo "camsvc-guest: $*"
    finish 99
}

while read -r mod args; do
    [ -n "$mod" ] || continue
    # shellcheck disable=SC2086  # args are module parameters, split on purpose
    insmod "/lib/modules/$mod.ko" $args || fail "insmod $mod $args failed"
done < /modules.list

# Loopback only (no NIC): tests talk to servers they start on 127.0.0.1.
ip link set lo up || ifconfig lo 127.0.0.1 up || fail "cannot bring up lo"

mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 handoff /handoff \
    || fail "cannot mount the handoff share"
# The host runner says on the kernel command line how it exports its root.
ROOTFS=9p
for arg in $(cat /proc/cmdline); do
    case "$arg" in camsvc.rootfs=*) ROOTFS=${arg#camsvc.rootfs=} ;; esac
done
if [ "$ROOTFS" = virtiofs ]; then
    mount -t virtiofs -o ro hostroot /mnt || fail "cannot mount the host root (virtiofs)"
else
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro,cache=loose hostroot /mnt \
        || fail "cannot mount the host root (9p)"
fi
# The repository may live under a folder the guest mounts a tmpfs over (a CI clone in
# /tmp/...): keep a handle on it now and bind it back into place below.
REPO=$(cat /handoff/repo 2>/dev/null)
mkdir -p /keep
if [ -n "$REPO" ] && [ -d "/mnt$REPO" ]; then
    mount -o bind "/mnt$REPO" /keep || fail "cannot bind $REPO"
fi
mount -o bind /dev /mnt/dev || fail "cannot bind /dev"
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts devpts /dev/pts
mount -t proc proc /mnt/proc || fail "cannot mount /proc"
mount -t sysfs sysfs /mnt/sys || fail "cannot mount /sys"
mount -t tmpfs -o mode=1777 tmpfs /mnt/tmp || fail "cannot mount /tmp"
mount -t tmpfs -o mode=0755 tmpfs /mnt/run || fail "cannot mount /run"

if [ -n "$REPO" ] && [ ! -d "/mnt$REPO" ]; then
    mkdir -p "/mnt$REPO" && mount -o bind /keep "/mnt$REPO" || fail "cannot put $REPO back"
fi

[ -f /handoff/run.sh ] || fail "no /handoff/run.sh"
chroot /mnt /bin/sh -c "$(cat /handoff/run.sh)"
finish $?
