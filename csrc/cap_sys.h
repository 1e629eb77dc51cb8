/* cap_sys.h: the device system calls, as one table of function pointers.
 *
 * Every open/close/ioctl/mmap/munmap/poll on a device goes through `cap_sys`, which
 * defaults to libc. A test harness may point the table at an in-process fake device
 * (sanitizers, valgrind). This table is the only global state of the module. */
#ifndef CAMSVC_CAP_SYS_H
#define CAMSVC_CAP_SYS_H
#include <poll.h>
#include <stddef.h>
#include <sys/types.h>

struct cap_sys {
    int (*open)(const char *path, int flags);
    int (*close)(int fd);
    int (*ioctl)(int fd, unsigned long request, void *arg);
    void *(*mmap)(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
    int (*munmap)(void *addr, size_t length);
    int (*poll)(struct pollfd *fds, nfds_t nfds, int timeout_ms);
};

extern struct cap_sys cap_sys;

/* Restores the libc defaults. */
void cap_sys_reset(void);

/* open(2) retried on EINTR; returns the fd or -errno. */
int cap_xopen(const char *path, int flags);
/* ioctl(2) retried on EINTR; returns 0 (or the ioctl's result) or -errno. */
int cap_xioctl(int fd, unsigned long request, void *arg);
/* poll(2) on one fd for POLLIN, retried on EINTR with the time left; 1, 0 or -errno. */
int cap_xpoll_in(int fd, int timeout_ms);
/* True for the errnos that mean the device went away. */
int cap_is_gone(int err);

#endif
