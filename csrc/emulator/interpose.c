/*
 * The libc entry points the emulator replaces. Each one answers for emulated fds
 * and paths and hands everything else to the next definition (libc) untouched.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "emu.h"

#define EXPORT __attribute__((visibility("default")))

/* glibc's fortify entry points have no public prototypes. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

static bool trace;

static void child_after_fork(void)
{
	pthread_mutex_init(&emu_lock, NULL);
	pthread_cond_init(&emu_cond, NULL);
	emu_forget_all();
	emu_producer_fork_child();
}

static void before_fork(void)
{
	pthread_mutex_lock(&emu_lock);
}

static void parent_after_fork(void)
{
	pthread_mutex_unlock(&emu_lock);
}

__attribute__((constructor)) static void init(void)
{
	emu_real_init();
	trace = getenv("CAMSVC_EMU_TRACE") != NULL;
	pthread_atfork(before_fork, parent_after_fork, child_after_fork);
}

/* Opens an emulated node, or returns -2 when path is not one. */
static int try_open(int dirfd, const char *path, int flags)
{
	int saved = errno, index;
	char abs[PATH_MAX];
	emu_real_init();
	if (!emu_is_node_path(dirfd, path, &index, abs)) {
		errno = saved;
		return -2;
	}
	int fd = emu_open_node(abs, index, flags);
	if (trace)
		fprintf(stderr, "camsvc-emu: open %s -> %d\n", abs, fd);
	return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

#define OPEN_WRAPPER(name, field)                                                   \
	EXPORT int name(const char *path, int flags, ...)                          \
	{                                                                           \
		va_list ap;                                                         \
		va_start(ap, flags);                                                \
		mode_t mode = mode_arg(flags, ap);                                  \
		va_end(ap);                                                         \
		int fd = try_open(AT_FDCWD, path, flags);                           \
		return fd != -2 ? fd : emu_real.field(path, flags, mode);           \
	}

#define OPENAT_WRAPPER(name, field)                                                 \
	EXPORT int name(int dirfd, const char *path, int flags, ...)               \
	{                                                                           \
		va_list ap;                                                         \
		va_start(ap, flags);                                                \
		mode_t mode = mode_arg(flags, ap);                                  \
		va_end(ap);                                                         \
		int fd = try_open(dirfd, path, flags);                              \
		return fd != -2 ? fd : emu_real.field(dirfd, path, flags, mode);    \
	}

OPEN_WRAPPER(open, open)
OPEN_WRAPPER(open64, open64)
OPENAT_WRAPPER(openat, openat)
OPENAT_WRAPPER(openat64, openat64)

/* The _FORTIFY_SOURCE variants (no O_CREAT, so no mode). */
EXPORT int __open_2(const char *path, int flags)
{
	int fd = try_open(AT_FDCWD, path, flags);
	return fd != -2 ? fd : emu_real.open_2(path, flags);
}

EXPORT int __open64_2(const char *path, int flags)
{
	int fd = try_open(AT_FDCWD, path, flags);
	return fd != -2 ? fd : emu_real.open64_2(path, flags);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	int fd = try_open(dirfd, path, flags);
	return fd != -2 ? fd : emu_real.openat_2(dirfd, path, flags);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	int fd = try_open(dirfd, path, flags);
	return fd != -2 ? fd : emu_real.openat64_2(dirfd, path, flags);
}

EXPORT int close(int fd)
{
	emu_real_init();
	if (emu_any_device()) {
		pthread_mutex_lock(&emu_lock);
		struct emu_dev *dev = emu_lookup(fd);
		if (dev) {
			emu_unregister(dev);
			/* Wake a DQBUF blocked on this device in another thread. */
			uint64_t one = 1;
			(void)!emu_real.write(dev->shadow, &one, sizeof one);
			int r = emu_real.close(fd);
			int err = errno;
			dev->fd = -1;
			emu_free(dev);
			pthread_mutex_unlock(&emu_lock);
			errno = err;
			return r;
		}
		pthread_mutex_unlock(&emu_lock);
	}
	return emu_real.close(fd);
}

static bool vfs_ioctl(unsigned long req)
{
	/* Handled by the VFS before any driver sees them. */
	return req == FIOCLEX || req == FIONCLEX || req == FIONBIO || req == FIOASYNC;
}

EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	emu_real_init();
	/* The kernel takes an unsigned int: callers passing a negative int (ustreamer)
	 * arrive sign-extended. */
	unsigned long cmd = (unsigned int)req;
	if (emu_any_device() && !vfs_ioctl(cmd)) {
		pthread_mutex_lock(&emu_lock);
		struct emu_dev *dev = emu_lookup(fd);
		if (dev) {
			int r = emu_ioctl(dev, cmd, arg);
			int err = errno;
			pthread_mutex_unlock(&emu_lock);
			if (trace)
				fprintf(stderr, "camsvc-emu: ioctl fd=%d nr=%lu size=%lu -> %d%s%s\n",
					fd, (unsigned long)_IOC_NR(cmd),
					(unsigned long)_IOC_SIZE(cmd), r, r < 0 ? " " : "",
					r < 0 ? strerrorname_np(err) : "");
			errno = err;
			return r;
		}
		pthread_mutex_unlock(&emu_lock);
	}
	return emu_real.ioctl(fd, req, arg);
}

static void *map_dev(void *addr, size_t len, int prot, int flags, int fd, off_t off,
		     bool *handled)
{
	*handled = false;
	if (fd < 0 || !emu_any_device())
		return NULL;
	pthread_mutex_lock(&emu_lock);
	struct emu_dev *dev = emu_lookup(fd);
	void *p = NULL;
	int err = errno;
	if (dev) {
		*handled = true;
		if (emu_check_gone(dev)) {
			p = MAP_FAILED;
			err = ENODEV;
		} else {
			p = emu_stream_mmap(dev, addr, len, prot, flags, off);
			err = errno;
		}
	}
	pthread_mutex_unlock(&emu_lock);
	errno = err;
	return p;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	emu_real_init();
	bool handled;
	void *p = map_dev(addr, len, prot, flags, fd, off, &handled);
	return handled ? p : emu_real.mmap(addr, len, prot, flags, fd, off);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	emu_real_init();
	bool handled;
	void *p = map_dev(addr, len, prot, flags, fd, off, &handled);
	return handled ? p : emu_real.mmap64(addr, len, prot, flags, fd, off);
}

/*
 * Buffer mappings are plain memfd mappings: like vb2's, a buffer unmapped later
 * outlives REQBUFS(0) or close (orphaned). Only the MAPPED flag needs bookkeeping.
 */
EXPORT int munmap(void *addr, size_t len)
{
	emu_real_init();
	int r = emu_real.munmap(addr, len);
	if (r == 0 && emu_any_device()) {
		int err = errno;
		pthread_mutex_lock(&emu_lock);
		emu_stream_unmapped(addr, len);
		pthread_mutex_unlock(&emu_lock);
		errno = err;
	}
	return r;
}

/* 0 for not ours, else the errno read()/write() give on the device. */
static int dev_rw_errno(int fd)
{
	if (!emu_any_device())
		return 0;
	pthread_mutex_lock(&emu_lock);
	struct emu_dev *dev = emu_lookup(fd);
	int err = !dev ? 0 : emu_check_gone(dev) ? ENODEV : EINVAL;
	pthread_mutex_unlock(&emu_lock);
	return err;
}

/* uvcvideo has no read()/write() I/O; this also keeps apps off the eventfd counter. */
EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	emu_real_init();
	int err = dev_rw_errno(fd);
	return err ? EMU_ERR(err) : emu_real.read(fd, buf, n);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	emu_real_init();
	int err = dev_rw_errno(fd);
	return err ? EMU_ERR(err) : emu_real.write(fd, buf, n);
}

/*
 * An eventfd is always writable, a capture node never is (ustreamer 4 treats a
 * writable capture fd as "device disconnected"): hide POLLOUT interest on our fds.
 * An unplugged node polls as POLLERR|POLLHUP (|POLLPRI if asked), as V4L2 answers
 * for an unregistered video device.
 */
struct saved_events {
	nfds_t i;
	short events;
	bool gone;
	bool pending; /* control events wait: POLLPRI */
};
#define MAX_SAVED 64
#define POLL_WRITE (POLLOUT | POLLWRNORM | POLLWRBAND)

/* any_gone: something is ready now (unplugged, or events pending): do not block. */
static size_t mask_poll(struct pollfd *fds, nfds_t n, struct saved_events *saved, bool *any_gone)
{
	size_t ns = 0;
	*any_gone = false;
	if (!emu_any_device())
		return 0;
	pthread_mutex_lock(&emu_lock);
	for (nfds_t i = 0; i < n && ns < MAX_SAVED; i++) {
		struct emu_dev *dev = fds[i].fd >= 0 ? emu_lookup(fds[i].fd) : NULL;
		if (!dev)
			continue;
		bool gone = emu_check_gone(dev);
		bool pending = dev->nevents > 0 && (fds[i].events & POLLPRI);
		*any_gone |= gone || pending;
		saved[ns++] = (struct saved_events){i, fds[i].events, gone, pending};
		fds[i].events &= (short)~POLL_WRITE;
	}
	pthread_mutex_unlock(&emu_lock);
	return ns;
}

static int unmask_poll(struct pollfd *fds, nfds_t n, struct saved_events *saved, size_t ns,
		       int r)
{
	bool patched = false;
	if (ns == 0)
		return r;
	/* A node unplugged while we slept woke us through its eventfd: say so. */
	pthread_mutex_lock(&emu_lock);
	for (size_t k = 0; k < ns; k++) {
		struct emu_dev *dev = emu_lookup(fds[saved[k].i].fd);
		saved[k].gone |= dev && emu_check_gone(dev);
	}
	pthread_mutex_unlock(&emu_lock);
	for (size_t k = 0; k < ns; k++) {
		struct pollfd *p = &fds[saved[k].i];
		p->events = saved[k].events;
		if (saved[k].gone && r >= 0) {
			p->revents = (short)(POLLERR | POLLHUP | (p->events & POLLPRI));
			patched = true;
		} else if (saved[k].pending && r >= 0) {
			p->revents |= POLLPRI;
			patched = true;
		}
	}
	if (patched) {
		r = 0;
		for (nfds_t i = 0; i < n; i++)
			r += fds[i].revents != 0;
	}
	return r;
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	emu_real_init();
	struct saved_events saved[MAX_SAVED];
	bool gone;
	size_t ns = mask_poll(fds, n, saved, &gone);
	int r = emu_real.poll(fds, n, gone ? 0 : timeout);
	int err = errno;
	r = unmask_poll(fds, n, saved, ns, r);
	errno = err;
	return r;
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
	emu_real_init();
	struct saved_events saved[MAX_SAVED];
	bool gone;
	size_t ns = mask_poll(fds, n, saved, &gone);
	static const struct timespec zero;
	int r = emu_real.ppoll(fds, n, gone ? &zero : ts, mask);
	int err = errno;
	r = unmask_poll(fds, n, saved, ns, r);
	errno = err;
	return r;
}

/*
 * select(): hide writability as for poll; report control events as exceptional
 * (POLLPRI) and an unplugged node as readable and exceptional (POLLERR|POLLPRI).
 */
struct select_patch {
	int fd;
	bool read, except; /* what the caller asked */
	bool gone, events;
};

static size_t scan_select(int n, fd_set *r, fd_set *w, fd_set *e, struct select_patch *out,
			  bool *urgent)
{
	size_t np = 0;
	*urgent = false;
	if (!emu_any_device())
		return 0;
	pthread_mutex_lock(&emu_lock);
	for (int fd = 0; fd < n && fd < FD_SETSIZE && np < MAX_SAVED; fd++) {
		bool rd = r && FD_ISSET(fd, r), wr = w && FD_ISSET(fd, w), ex = e && FD_ISSET(fd, e);
		if (!rd && !wr && !ex)
			continue;
		struct emu_dev *dev = emu_lookup(fd);
		if (!dev)
			continue;
		if (wr)
			FD_CLR(fd, w);
		bool gone = emu_check_gone(dev), events = dev->nevents > 0;
		if (gone || events) {
			out[np++] = (struct select_patch){fd, rd, ex, gone, events};
			*urgent |= (gone && (rd || ex)) || (events && ex);
		}
	}
	pthread_mutex_unlock(&emu_lock);
	return np;
}

static int patch_select(int n, fd_set *r, fd_set *w, fd_set *e, const struct select_patch *p,
			size_t np, int ret)
{
	if (np == 0 || ret < 0)
		return ret;
	for (size_t k = 0; k < np; k++) {
		if (p[k].gone && p[k].read)
			FD_SET(p[k].fd, r);
		if ((p[k].gone || p[k].events) && p[k].except)
			FD_SET(p[k].fd, e);
	}
	int count = 0;
	for (int fd = 0; fd < n && fd < FD_SETSIZE; fd++)
		count += (r && FD_ISSET(fd, r)) + (w && FD_ISSET(fd, w)) + (e && FD_ISSET(fd, e));
	return count;
}

EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
	emu_real_init();
	struct select_patch p[MAX_SAVED];
	bool urgent;
	size_t np = scan_select(n, r, w, e, p, &urgent);
	struct timeval zero = {0, 0};
	int ret = emu_real.select(n, r, w, e, urgent ? &zero : tv);
	int err = errno;
	ret = patch_select(n, r, w, e, p, np, ret);
	errno = err;
	return ret;
}

EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
		   const sigset_t *mask)
{
	emu_real_init();
	struct select_patch p[MAX_SAVED];
	bool urgent;
	size_t np = scan_select(n, r, w, e, p, &urgent);
	static const struct timespec zero;
	int ret = emu_real.pselect(n, r, w, e, urgent ? &zero : ts, mask);
	int err = errno;
	ret = patch_select(n, r, w, e, p, np, ret);
	errno = err;
	return ret;
}
