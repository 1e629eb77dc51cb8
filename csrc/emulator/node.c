/*
 * Which paths are emulated nodes, and the per-open state behind the node file:
 * the shared control page and the ownership lock (flock on the node file, so two
 * opens conflict across processes as two file handles on one USB camera do).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "emu.h"

/* The real directory of the node, written to out (PATH_MAX bytes). */
static bool node_dir(int dirfd, const char *path, char *out)
{
	char dir[PATH_MAX + 32];
	const char *slash = strrchr(path, '/');
	size_t dlen = slash ? (size_t)(slash - path) : 0;

	if (path[0] == '/') {
		snprintf(dir, sizeof dir, "%.*s", (int)(dlen ? dlen : 1), path);
	} else if (dirfd == AT_FDCWD) {
		snprintf(dir, sizeof dir, "./%.*s", (int)dlen, path);
	} else {
		/* realpath follows /proc/self/fd/N to the directory dirfd names. */
		snprintf(dir, sizeof dir, "/proc/self/fd/%d/%.*s", dirfd, (int)dlen, path);
	}
	return realpath(dir, out) != NULL;
}

bool emu_is_node_path(int dirfd, const char *path, int *index, char *abs)
{
	if (!path)
		return false;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	/* Cheap name test first: this runs on every open() of the process. */
	if (strncmp(base, "video", 5) != 0)
		return false;
	const char *digits = base + 5;
	size_t n = strspn(digits, "0123456789");
	if (n == 0 || n > 6 || digits[n] != '\0')
		return false;

	const char *want = getenv("CAMSVC_EMU_DIR"); /* read per open: tests switch dirs */
	if (!want || !*want)
		return false;
	char want_real[PATH_MAX], have_real[PATH_MAX];
	if (!realpath(want, want_real) || !node_dir(dirfd, path, have_real))
		return false;
	if (strcmp(want_real, have_real) != 0)
		return false;
	*index = atoi(digits);
	return snprintf(abs, PATH_MAX, "%s/%s", have_real, base) < PATH_MAX;
}

static void ctl_defaults(struct emu_ctl *ctl)
{
	memset(ctl, 0, sizeof *ctl);
	ctl->magic = EMU_MAGIC;
	ctl->version = EMU_VERSION;
	ctl->kind = EMU_KIND_CAPTURE;
	snprintf(ctl->card, sizeof ctl->card, "Emulated Camera");
}

/* Maps the control page if the node file carries one; else the open gets defaults. */
static struct emu_ctl *ctl_map(struct emu_dev *dev)
{
	struct stat st;
	if (syscall(SYS_fstat, dev->ctlfd, &st) != 0) /* not our own fstat wrapper */
		memset(&st, 0, sizeof st);
	dev->ino = st.st_ino;
	dev->devno = st.st_dev;
	if (st.st_size >= (off_t)sizeof(struct emu_ctl)) {
		void *p = emu_real.mmap(NULL, sizeof(struct emu_ctl), PROT_READ | PROT_WRITE,
					MAP_SHARED, dev->ctlfd, 0);
		if (p != MAP_FAILED) {
			struct emu_ctl *ctl = p;
			if (ctl->magic == EMU_MAGIC && ctl->version == EMU_VERSION)
				return ctl;
			emu_real.munmap(p, sizeof(struct emu_ctl));
		}
	}
	ctl_defaults(&dev->local);
	return &dev->local;
}

int emu_open_node(const char *path, int index, int flags)
{
	struct emu_dev *dev = calloc(1, sizeof *dev);
	if (!dev)
		return EMU_ERR(ENOMEM);
	dev->fd = dev->shadow = dev->timerfd = -1;
	dev->index = index;
	dev->priority = V4L2_PRIORITY_DEFAULT;
	snprintf(dev->path, sizeof dev->path, "%s", path);
	for (uint32_t i = 0; i < EMU_MAX_BUFS; i++)
		dev->bufs[i].memfd = -1;

	int err;
	dev->ctlfd = emu_real.open(path, O_RDWR | O_CLOEXEC);
	if (dev->ctlfd < 0) {
		err = errno; /* a missing node is ENOENT, as for a missing /dev node */
		goto fail;
	}
	dev->ctl = ctl_map(dev);

	int efd_flags = ((flags & O_CLOEXEC) ? EFD_CLOEXEC : 0) |
			((flags & O_NONBLOCK) ? EFD_NONBLOCK : 0);
	dev->fd = eventfd(0, efd_flags);
	if (dev->fd < 0) {
		err = errno;
		goto fail;
	}
	dev->shadow = fcntl(dev->fd, F_DUPFD_CLOEXEC, 0);
	if (dev->shadow < 0) {
		err = errno;
		goto fail;
	}

	pthread_mutex_lock(&emu_lock);
	if (emu_producer_start() < 0) {
		err = errno;
		pthread_mutex_unlock(&emu_lock);
		goto fail;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	emu_producer_watch(dir);
	emu_register(dev);
	emu_prio_open(dev);
	emu_sync_signal(dev);
	int fd = dev->fd;
	pthread_mutex_unlock(&emu_lock);
	return fd;

fail:
	if (dev->fd >= 0)
		emu_real.close(dev->fd);
	dev->fd = -1;
	pthread_mutex_lock(&emu_lock);
	emu_free(dev);
	pthread_mutex_unlock(&emu_lock);
	errno = err;
	return -1;
}

/* UVC hands the device to the first file handle that configures it (EBUSY for others). */
int emu_acquire(struct emu_dev *dev)
{
	if (dev->ctl->fault == EMU_FAULT_EBUSY)
		return EMU_ERR(EBUSY);
	if (dev->privileged)
		return 0;
	if (flock(dev->ctlfd, LOCK_EX | LOCK_NB) < 0)
		return EMU_ERR(errno == EWOULDBLOCK ? EBUSY : errno);
	dev->privileged = true;
	return 0;
}

void emu_release(struct emu_dev *dev)
{
	if (dev->privileged) {
		flock(dev->ctlfd, LOCK_UN);
		dev->privileged = false;
	}
}
