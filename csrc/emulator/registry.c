/*
 * The table of open emulated devices. Every wrapper looks the fd up here; an fd
 * number only counts as ours while kcmp says it is still the very eventfd we handed
 * out, so an fd closed behind our back (close_range, dup2 over it, a raw syscall)
 * and reused for another file is never treated as the device.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "emu.h"

pthread_mutex_t emu_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t emu_cond = PTHREAD_COND_INITIALIZER;
static struct emu_dev *devices;
static atomic_uint ndevices;

bool emu_any_device(void)
{
	/* Fast path for the hot read/write/poll wrappers of processes with no device. */
	return atomic_load_explicit(&ndevices, memory_order_relaxed) != 0;
}

/* Fork child: the devices belong to the parent's threads; the child starts empty. */
void emu_forget_all(void)
{
	devices = NULL;
	atomic_store(&ndevices, 0);
}

struct emu_dev *emu_first(void)
{
	return devices;
}

static bool same_file(int a, int b)
{
	pid_t pid = getpid();
	long r = syscall(SYS_kcmp, pid, pid, KCMP_FILE, a, b);
	if (r < 0)
		return errno == ENOSYS || errno == EPERM; /* no kcmp: trust the table */
	return r == 0;
}

struct emu_dev *emu_lookup(int fd)
{
	if (fd < 0)
		return NULL;
	for (struct emu_dev **p = &devices; *p; p = &(*p)->next) {
		struct emu_dev *dev = *p;
		if (dev->fd != fd)
			continue;
		if (same_file(fd, dev->shadow))
			return dev;
		/* Stale: the app's fd went away without our close(); forget the device. */
		*p = dev->next;
		atomic_fetch_sub(&ndevices, 1);
		emu_free(dev);
		return NULL;
	}
	return NULL;
}

void emu_register(struct emu_dev *dev)
{
	static uint64_t next_id = 1;
	dev->id = next_id++;
	dev->next = devices;
	devices = dev;
	atomic_fetch_add(&ndevices, 1);
}

void emu_unregister(struct emu_dev *dev)
{
	for (struct emu_dev **p = &devices; *p; p = &(*p)->next) {
		if (*p == dev) {
			*p = dev->next;
			atomic_fetch_sub(&ndevices, 1);
			return;
		}
	}
}

/* Lock held, device already unlinked; waits for the producer to finish rendering. */
void emu_free(struct emu_dev *dev)
{
	while (dev->filling)
		pthread_cond_wait(&emu_cond, &emu_lock);
	emu_producer_del_timer(dev);
	emu_stream_free(dev);
	if (dev->ctl)
		emu_prio_close(dev);
	if (dev->ctl && dev->ctl != &dev->local)
		emu_real.munmap(dev->ctl, sizeof(struct emu_ctl));
	if (dev->ctlfd >= 0)
		emu_real.close(dev->ctlfd); /* also drops the ownership flock */
	if (dev->shadow >= 0)
		emu_real.close(dev->shadow);
	free(dev);
}

/*
 * Unplug check: the node is gone once its path no longer names the file we opened
 * (deleted, or deleted and plugged in again as a new file), so an old fd stays gone
 * as on real USB. A raw syscall: our own stat() wrappers would recurse into us.
 */
bool emu_check_gone(struct emu_dev *dev)
{
	if (!dev->gone) {
		struct stat now;
		if (syscall(SYS_newfstatat, AT_FDCWD, dev->path, &now, 0) != 0 ||
		    now.st_ino != dev->ino || now.st_dev != dev->devno)
			dev->gone = true;
	}
	return dev->gone;
}

/*
 * Keep the eventfd readable exactly when poll on a vb2 capture queue would report
 * something: a finished buffer, an error, not streaming (vb2 returns EPOLLERR then),
 * or an unplugged device.
 */
void emu_sync_signal(struct emu_dev *dev)
{
	bool want = dev->gone || !dev->streaming || dev->done.count > 0 ||
		    dev->ctl->fault == EMU_FAULT_EIO;
	if (want && !dev->signaled) {
		uint64_t one = 1;
		if (emu_real.write(dev->shadow, &one, sizeof one) == sizeof one)
			dev->signaled = true;
	} else if (!want && dev->signaled) {
		struct pollfd p = {.fd = dev->shadow, .events = POLLIN};
		uint64_t v;
		/* poll first: the fd may be blocking and we hold the lock. */
		if (emu_real.poll(&p, 1, 0) == 1 && (p.revents & POLLIN))
			(void)!emu_real.read(dev->shadow, &v, sizeof v);
		dev->signaled = false;
	}
}
