/*
 * The camera's clock: one thread per process (started by the first emulated open)
 * waits on a timerfd per streaming device, an inotify watch on each node directory
 * (unplug = the node deleted, manual-clock ticks = the node file written) and a
 * 100 ms fallback tick, and delivers frames. Its signals are blocked so the app's
 * signal handling (Python's included) never runs here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "emu.h"

#define COOKIE_INOTIFY 0u
#define COOKIE_TIMER_BASE 16u
#define MAX_WORK 64
#define FALLBACK_MS 100

static int epfd = -1, inofd = -1;
static bool started;

static struct emu_dev *by_id(uint64_t id)
{
	for (struct emu_dev *d = emu_first(); d; d = d->next)
		if (d->id == id)
			return d;
	return NULL;
}

static void drain(int fd)
{
	char buf[4096];
	while (emu_real.read(fd, buf, sizeof buf) > 0)
		;
}

struct work {
	uint64_t id;
	uint32_t frames;
};

static void *run(void *unused)
{
	(void)unused;
	struct epoll_event ev[16];
	for (;;) {
		int n = epoll_wait(epfd, ev, 16, FALLBACK_MS);
		struct work work[MAX_WORK];
		size_t nwork = 0;

		pthread_mutex_lock(&emu_lock);
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u64 == COOKIE_INOTIFY) {
				drain(inofd);
				continue;
			}
			struct emu_dev *d = by_id(ev[i].data.u64 - COOKIE_TIMER_BASE);
			uint64_t expired = 0;
			if (!d || d->timerfd < 0 ||
			    emu_real.read(d->timerfd, &expired, sizeof expired) != sizeof expired)
				continue;
			if (d->ctl->manual_clock || expired == 0 || nwork == MAX_WORK)
				continue;
			/*
			 * A late thread (loaded box) does not burst: the frames it missed
			 * are lost, as if the camera's packets were.
			 */
			d->sequence += (uint32_t)(expired - 1);
			work[nwork++] = (struct work){d->id, 1};
		}
		for (struct emu_dev *d = emu_first(); d; d = d->next) {
			/* Unplugged, or a fault (EIO) changed what poll should say. */
			emu_check_gone(d);
			emu_sync_signal(d);
			uint32_t ticks = d->ctl->ticks;
			if (d->streaming && d->ctl->manual_clock && ticks != d->ticks_seen &&
			    nwork < MAX_WORK)
				work[nwork++] = (struct work){d->id, ticks - d->ticks_seen};
			d->ticks_seen = ticks;
		}
		/* emu_produce drops the lock while rendering: look each device up again. */
		for (size_t i = 0; i < nwork; i++) {
			struct emu_dev *d = by_id(work[i].id);
			if (d)
				emu_produce(d, work[i].frames);
		}
		pthread_mutex_unlock(&emu_lock);
	}
	return NULL;
}

int emu_producer_start(void)
{
	if (started)
		return 0;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	inofd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (epfd < 0 || inofd < 0)
		goto fail;
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = COOKIE_INOTIFY};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, inofd, &ev) < 0)
		goto fail;

	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	int err = pthread_create(&t, NULL, run, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		errno = err;
		goto fail;
	}
	pthread_detach(t);
	started = true;
	return 0;
fail:
	err = errno;
	if (epfd >= 0)
		emu_real.close(epfd);
	if (inofd >= 0)
		emu_real.close(inofd);
	epfd = inofd = -1;
	errno = err;
	return -1;
}

void emu_producer_watch(const char *dir)
{
	/* Same directory twice gives the same watch; failures leave the 100 ms fallback. */
	inotify_add_watch(inofd, dir,
			  IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_ATTRIB | IN_CLOSE_WRITE);
}

int emu_producer_add_timer(struct emu_dev *dev, uint32_t fps)
{
	emu_producer_del_timer(dev);
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return -1;
	long period_ns = 1000000000L / (long)fps;
	struct itimerspec its = {
		.it_interval = {.tv_sec = 0, .tv_nsec = period_ns},
		.it_value = {.tv_sec = 0, .tv_nsec = period_ns},
	};
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = dev->id + COOKIE_TIMER_BASE};
	if (timerfd_settime(fd, 0, &its, NULL) < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = errno;
		emu_real.close(fd);
		errno = err;
		return -1;
	}
	dev->timerfd = fd;
	return 0;
}

void emu_producer_del_timer(struct emu_dev *dev)
{
	if (dev->timerfd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, dev->timerfd, NULL);
		emu_real.close(dev->timerfd);
		dev->timerfd = -1;
	}
}

/*
 * In a forked child the thread is gone and the epoll set is shared with the parent:
 * start afresh. Inherited device fds become plain eventfds there (test code does not
 * stream from a fork without exec).
 */
void emu_producer_fork_child(void)
{
	started = false;
	epfd = inofd = -1; /* the parent's; never touched by the child */
}
