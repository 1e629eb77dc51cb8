/*
 * What the filesystem says about a node. Programs find out what a device is by
 * stat()ing it (a character device, major 81) and reading
 * /sys/dev/char/81:N/uevent (DEVNAME=videoN), as v4l2-ctl's media detection does;
 * an emulated node answers both like a real one. Other paths are untouched.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "emu.h"

#define EXPORT __attribute__((visibility("default")))
#define V4L2_MAJOR 81

static int (*real_stat)(const char *, struct stat *);
static int (*real_lstat)(const char *, struct stat *);
static int (*real_fstatat)(int, const char *, struct stat *, int);
static FILE *(*real_fopen)(const char *, const char *);
static FILE *(*real_fopen64)(const char *, const char *);
static int (*real_fstat)(int, struct stat *);
static pthread_once_t once = PTHREAD_ONCE_INIT;

#include <dlfcn.h>
static void resolve(void)
{
	*(void **)&real_stat = dlsym(RTLD_NEXT, "stat");
	*(void **)&real_lstat = dlsym(RTLD_NEXT, "lstat");
	*(void **)&real_fstatat = dlsym(RTLD_NEXT, "fstatat");
	*(void **)&real_fopen = dlsym(RTLD_NEXT, "fopen");
	*(void **)&real_fopen64 = dlsym(RTLD_NEXT, "fopen64");
	*(void **)&real_fstat = dlsym(RTLD_NEXT, "fstat");
}

static void as_char_device(int dirfd, const char *path, struct stat *st)
{
	int saved = errno, index;
	char abs[PATH_MAX];
	if (S_ISREG(st->st_mode) && emu_is_node_path(dirfd, path, &index, abs)) {
		st->st_mode = S_IFCHR | (st->st_mode & 07777);
		st->st_rdev = makedev(V4L2_MAJOR, (unsigned)index);
		st->st_size = 0;
	}
	errno = saved;
}

EXPORT int stat(const char *path, struct stat *st)
{
	pthread_once(&once, resolve);
	int r = real_stat(path, st);
	if (r == 0)
		as_char_device(AT_FDCWD, path, st);
	return r;
}

EXPORT int lstat(const char *path, struct stat *st)
{
	pthread_once(&once, resolve);
	int r = real_lstat(path, st);
	if (r == 0)
		as_char_device(AT_FDCWD, path, st);
	return r;
}

EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	pthread_once(&once, resolve);
	int r = real_fstatat(dirfd, path, st, flags);
	if (r == 0 && *path)
		as_char_device(dirfd, path, st);
	return r;
}

/* fstat on an open node agrees with stat on its path (the fd itself is an eventfd). */
EXPORT int fstat(int fd, struct stat *st)
{
	pthread_once(&once, resolve);
	int r = real_fstat(fd, st);
	if (r == 0 && emu_any_device()) {
		pthread_mutex_lock(&emu_lock);
		struct emu_dev *dev = emu_lookup(fd);
		if (dev) {
			st->st_mode = S_IFCHR | 0660;
			st->st_rdev = makedev(V4L2_MAJOR, (unsigned)dev->index);
			st->st_size = 0;
		}
		pthread_mutex_unlock(&emu_lock);
	}
	return r;
}

/* On x86_64 the *64 variants are the same functions with the same struct. */
EXPORT int fstat64(int fd, struct stat64 *st) __attribute__((alias("fstat")));
EXPORT int stat64(const char *path, struct stat64 *st) __attribute__((alias("stat")));
EXPORT int lstat64(const char *path, struct stat64 *st) __attribute__((alias("lstat")));
EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
	__attribute__((alias("fstatat")));

/* "/sys/dev/char/81:N/uevent" for an emulated videoN: its text, else NULL. */
static FILE *uevent(const char *path)
{
	unsigned minor;
	char tail[16];
	if (strncmp(path, "/sys/dev/char/", 14) != 0 ||
	    sscanf(path + 14, "81:%u/%15s", &minor, tail) != 2 || strcmp(tail, "uevent") != 0)
		return NULL;
	const char *dir = getenv("CAMSVC_EMU_DIR");
	char node[PATH_MAX], abs[PATH_MAX];
	int index;
	if (!dir || snprintf(node, sizeof node, "%s/video%u", dir, minor) >= (int)sizeof node ||
	    !emu_is_node_path(AT_FDCWD, node, &index, abs) || access(node, F_OK) != 0)
		return NULL;
	char text[128];
	int n = snprintf(text, sizeof text, "MAJOR=%d\nMINOR=%u\nDEVNAME=video%u\n", V4L2_MAJOR,
			 minor, minor);
	/* A real fd, not fmemopen: C++ streams read the FILE's descriptor directly. */
	int fd = memfd_create("camsvc-emu-uevent", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (emu_real.write(fd, text, (size_t)n) != n || lseek(fd, 0, SEEK_SET) < 0) {
		emu_real.close(fd);
		return NULL;
	}
	FILE *f = fdopen(fd, "r");
	if (!f)
		emu_real.close(fd);
	return f;
}

EXPORT FILE *fopen(const char *path, const char *mode)
{
	pthread_once(&once, resolve);
	emu_real_init();
	FILE *f = path ? uevent(path) : NULL;
	return f ? f : real_fopen(path, mode);
}

EXPORT FILE *fopen64(const char *path, const char *mode)
{
	pthread_once(&once, resolve);
	emu_real_init();
	FILE *f = path ? uevent(path) : NULL;
	return f ? f : real_fopen64(path, mode);
}
