/* cap_sys.c: the libc defaults of the device system-call table and EINTR-safe wrappers. */
#define _GNU_SOURCE
#include "cap_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { XIOCTL_MAX_RETRIES = 64 };

static int libc_open(const char *path, int flags) { return open(path, flags); }
static int libc_close(int fd) { return close(fd); }
static int libc_ioctl(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
static void *libc_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    return mmap(addr, length, prot, flags, fd, offset);
}
static int libc_munmap(void *addr, size_t length) { return munmap(addr, length); }
static int libc_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
    return poll(fds, nfds, timeout_ms);
}

struct cap_sys cap_sys = {
    libc_open, libc_close, libc_ioctl, libc_mmap, libc_munmap, libc_poll,
};

void cap_sys_reset(void)
{
    cap_sys.open = libc_open;
    cap_sys.close = libc_close;
    cap_sys.ioctl = libc_ioctl;
    cap_sys.mmap = libc_mmap;
    cap_sys.munmap = libc_munmap;
    cap_sys.poll = libc_poll;
}

int cap_xopen(const char *path, int flags)
{
    for (int i = 0; i < XIOCTL_MAX_RETRIES; i++) {
        int fd = cap_sys.open(path, flags);
        if (fd >= 0)
            return fd;
        if (errno != EINTR)
            return -errno;
    }
    return -EINTR;
}

int cap_xioctl(int fd, unsigned long request, void *arg)
{
    for (int i = 0; i < XIOCTL_MAX_RETRIES; i++) {
        int rc = cap_sys.ioctl(fd, request, arg);
        if (rc >= 0)
            return rc;
        if (errno != EINTR)
            return -errno;
    }
    return -EINTR;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cap_xpoll_in(int fd, int timeout_ms)
{
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int rc = cap_sys.poll(&pfd, 1, timeout_ms);
        if (rc > 0) {
            if (pfd.revents & (POLLIN | POLLPRI))
                return 1;
            if (pfd.revents & POLLNVAL)
                return -EBADF;
            if (pfd.revents & (POLLERR | POLLHUP))
                return -ENODEV;
            return 1;
        }
        if (rc == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
        if (timeout_ms > 0) {
            int64_t left = deadline - now_ms();
            timeout_ms = left > 0 ? (int)left : 0;
        }
    }
}

int cap_is_gone(int err)
{
    if (err < 0)
        err = -err;
    return err == ENODEV || err == EIO || err == ENXIO;
}
