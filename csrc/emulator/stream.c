/*
 * mmap streaming: buffers (one memfd each), the queued and done FIFOs, STREAMON/OFF,
 * and filling a buffer with the next frame. Follows vb2 + uvcvideo: the handle that
 * owns the device may stream, others get EBUSY; REQBUFS(0) orphans mapped buffers
 * (the memfd pages stay alive under the app's mapping); a frame that finds no queued
 * buffer is lost but still advances the sequence number.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "emu.h"

#define PAGE 4096u
#define TS_FLAGS (V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC | V4L2_BUF_FLAG_TSTAMP_SRC_SOE)

static void fifo_push(struct emu_fifo *f, uint32_t idx)
{
	f->idx[(f->head + f->count) % EMU_MAX_BUFS] = idx;
	f->count++;
}

static uint32_t fifo_pop(struct emu_fifo *f)
{
	uint32_t idx = f->idx[f->head];
	f->head = (f->head + 1) % EMU_MAX_BUFS;
	f->count--;
	return idx;
}

static void wait_idle(struct emu_dev *dev)
{
	while (dev->filling)
		pthread_cond_wait(&emu_cond, &emu_lock);
}

void emu_stream_free(struct emu_dev *dev)
{
	for (uint32_t i = 0; i < dev->nbufs; i++) {
		struct emu_buf *b = &dev->bufs[i];
		if (b->mem)
			emu_real.munmap(b->mem, dev->buf_stride);
		if (b->memfd >= 0)
			emu_real.close(b->memfd);
		memset(b, 0, sizeof *b);
		b->memfd = -1;
	}
	dev->nbufs = 0;
	dev->generation++;
	memset(&dev->queued, 0, sizeof dev->queued);
	memset(&dev->done, 0, sizeof dev->done);
}

static int alloc_bufs(struct emu_dev *dev, uint32_t count)
{
	uint32_t fourcc, w, h, fps;
	emu_cur_format(dev, &fourcc, &w, &h, &fps);
	dev->buf_len = emu_sizeimage(fourcc, w, h);
	dev->buf_stride = (dev->buf_len + PAGE - 1) / PAGE * PAGE;
	for (uint32_t i = 0; i < count; i++) {
		struct emu_buf *b = &dev->bufs[i];
		b->memfd = memfd_create("camsvc-emu-buffer", MFD_CLOEXEC);
		if (b->memfd < 0 || ftruncate(b->memfd, dev->buf_stride) < 0)
			goto fail;
		b->mem = emu_real.mmap(NULL, dev->buf_stride, PROT_READ | PROT_WRITE, MAP_SHARED,
				       b->memfd, 0);
		if (b->mem == MAP_FAILED) {
			b->mem = NULL;
			goto fail;
		}
		dev->nbufs = i + 1;
	}
	return 0;
fail:
	dev->nbufs = count; /* free what exists, including the half-made one */
	emu_stream_free(dev);
	return EMU_ERR(ENOMEM);
}

static bool capture_type(const struct emu_dev *dev, uint32_t type)
{
	return dev->ctl->kind == EMU_KIND_CAPTURE && type == V4L2_BUF_TYPE_VIDEO_CAPTURE;
}

static int reqbufs(struct emu_dev *dev, struct v4l2_requestbuffers *rb)
{
	if (!capture_type(dev, rb->type) || rb->memory != V4L2_MEMORY_MMAP)
		return EMU_ERR(EINVAL);
	if (emu_acquire(dev) < 0)
		return -1;
	if (dev->streaming)
		return EMU_ERR(EBUSY);
	wait_idle(dev);
	emu_stream_free(dev);
	rb->capabilities = V4L2_BUF_CAP_SUPPORTS_MMAP | V4L2_BUF_CAP_SUPPORTS_ORPHANED_BUFS;
	rb->flags = 0;
	memset(rb->reserved, 0, sizeof rb->reserved);
	if (rb->count == 0) {
		emu_release(dev); /* uvcvideo drops privileges with the buffers */
		return 0;
	}
	if (rb->count > EMU_MAX_BUFS)
		rb->count = EMU_MAX_BUFS;
	if (alloc_bufs(dev, rb->count) < 0)
		return -1;
	return 0;
}

static void fill_buf(struct emu_dev *dev, uint32_t i, struct v4l2_buffer *vb)
{
	const struct emu_buf *b = &dev->bufs[i];
	uint32_t type = vb->type;
	memset(vb, 0, sizeof *vb);
	vb->index = i;
	vb->type = type;
	vb->memory = V4L2_MEMORY_MMAP;
	vb->m.offset = i * dev->buf_stride;
	vb->length = dev->buf_len;
	vb->field = V4L2_FIELD_NONE;
	vb->bytesused = b->bytesused;
	vb->sequence = b->sequence;
	vb->timestamp = b->timestamp;
	vb->flags = TS_FLAGS | b->flags;
	if (b->mapped)
		vb->flags |= V4L2_BUF_FLAG_MAPPED;
	if (b->state == EMU_BUF_QUEUED || b->state == EMU_BUF_FILLING)
		vb->flags |= V4L2_BUF_FLAG_QUEUED;
	else if (b->state == EMU_BUF_DONE)
		vb->flags |= V4L2_BUF_FLAG_DONE;
}

/*
 * For QBUF/DQBUF/STREAMON/STREAMOFF on a handle that does not own the device:
 * EBUSY (-1) if another handle does (uvcvideo), 1 if nobody does (vb2: a queue
 * without buffers), 0 for the owner.
 */
static int owner(struct emu_dev *dev)
{
	if (dev->privileged)
		return 0;
	if (dev->ctl->fault == EMU_FAULT_EBUSY || flock(dev->ctlfd, LOCK_EX | LOCK_NB) < 0)
		return EMU_ERR(EBUSY);
	flock(dev->ctlfd, LOCK_UN);
	return 1;
}

static int check_buf(struct emu_dev *dev, const struct v4l2_buffer *vb)
{
	if (!capture_type(dev, vb->type) || vb->memory != V4L2_MEMORY_MMAP ||
	    vb->index >= dev->nbufs)
		return EMU_ERR(EINVAL);
	return 0;
}

static int querybuf(struct emu_dev *dev, struct v4l2_buffer *vb)
{
	if (!capture_type(dev, vb->type) || vb->index >= dev->nbufs)
		return EMU_ERR(EINVAL);
	fill_buf(dev, vb->index, vb);
	return 0;
}

static int qbuf(struct emu_dev *dev, struct v4l2_buffer *vb)
{
	int who = owner(dev);
	if (who != 0)
		return who < 0 ? -1 : EMU_ERR(EINVAL);
	if (check_buf(dev, vb) < 0)
		return -1;
	if (dev->ctl->fault == EMU_FAULT_EIO)
		return EMU_ERR(EIO);
	struct emu_buf *b = &dev->bufs[vb->index];
	if (b->state != EMU_BUF_DEQUEUED)
		return EMU_ERR(EINVAL);
	b->state = EMU_BUF_QUEUED;
	b->flags = 0;
	fifo_push(&dev->queued, vb->index);
	fill_buf(dev, vb->index, vb);
	return 0;
}

static bool nonblocking(const struct emu_dev *dev)
{
	int fl = fcntl(dev->shadow, F_GETFL); /* same open file description as the app's fd */
	return fl >= 0 && (fl & O_NONBLOCK);
}

static int dqbuf(struct emu_dev *dev, struct v4l2_buffer *vb)
{
	int who = owner(dev);
	if (who != 0)
		return who < 0 ? -1 : EMU_ERR(EINVAL);
	if (!capture_type(dev, vb->type) || vb->memory != V4L2_MEMORY_MMAP)
		return EMU_ERR(EINVAL);
	for (;;) {
		if (emu_check_gone(dev))
			return EMU_ERR(ENODEV);
		if (dev->ctl->fault == EMU_FAULT_EIO)
			return EMU_ERR(EIO);
		if (!dev->streaming)
			return EMU_ERR(EINVAL);
		if (dev->done.count > 0)
			break;
		if (nonblocking(dev))
			return EMU_ERR(EAGAIN);
		/* Block like vb2: wait on our eventfd with the lock dropped. */
		struct pollfd p = {.fd = dev->shadow, .events = POLLIN};
		uint64_t id = dev->id;
		int fd = dev->fd;
		pthread_mutex_unlock(&emu_lock);
		int r = emu_real.poll(&p, 1, -1);
		int err = errno;
		pthread_mutex_lock(&emu_lock);
		if (emu_lookup(fd) != dev || dev->id != id)
			return EMU_ERR(EBADF); /* closed by another thread meanwhile */
		if (r < 0 && err != EINTR)
			return EMU_ERR(err);
		if (r < 0)
			return EMU_ERR(EINTR); /* a signal interrupts a blocking DQBUF */
	}
	uint32_t i = fifo_pop(&dev->done);
	dev->bufs[i].state = EMU_BUF_DEQUEUED;
	fill_buf(dev, i, vb);
	emu_sync_signal(dev);
	return 0;
}

static int streamon(struct emu_dev *dev, const int *type)
{
	if (!capture_type(dev, (uint32_t)*type))
		return EMU_ERR(EINVAL);
	int who = owner(dev);
	if (who != 0)
		return who < 0 ? -1 : EMU_ERR(EINVAL);
	if (dev->nbufs == 0)
		return EMU_ERR(EINVAL);
	if (dev->streaming)
		return 0;
	if (dev->ctl->fault == EMU_FAULT_ENOSPC_STREAMON)
		return EMU_ERR(ENOSPC); /* uvcvideo: not enough USB bandwidth */
	uint32_t fourcc, w, h, fps;
	emu_cur_format(dev, &fourcc, &w, &h, &fps);
	if (emu_producer_add_timer(dev, fps) < 0)
		return -1;
	dev->streaming = true;
	dev->sequence = 0;
	dev->ticks_seen = dev->ctl->ticks;
	emu_sync_signal(dev);
	return 0;
}

static int streamoff(struct emu_dev *dev, const int *type)
{
	if (!capture_type(dev, (uint32_t)*type))
		return EMU_ERR(EINVAL);
	int who = owner(dev);
	if (who != 0)
		return who < 0 ? -1 : 0; /* nothing streams: nothing to stop */
	wait_idle(dev);
	emu_producer_del_timer(dev);
	dev->streaming = false;
	for (uint32_t i = 0; i < dev->nbufs; i++)
		dev->bufs[i].state = EMU_BUF_DEQUEUED;
	memset(&dev->queued, 0, sizeof dev->queued);
	memset(&dev->done, 0, sizeof dev->done);
	emu_sync_signal(dev);
	return 0;
}

static int expbuf(struct emu_dev *dev, struct v4l2_exportbuffer *e)
{
	if (!capture_type(dev, e->type) || e->index >= dev->nbufs || e->plane != 0)
		return EMU_ERR(EINVAL);
	/* A memfd stands in for the dma-buf: mmap-able, same pages. */
	int cmd = (e->flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD;
	int fd = fcntl(dev->bufs[e->index].memfd, cmd, 0);
	if (fd < 0)
		return -1;
	e->fd = fd;
	return 0;
}

int emu_stream_ioctl(struct emu_dev *dev, unsigned long req, void *arg)
{
	switch (req) {
	case VIDIOC_REQBUFS:
		return reqbufs(dev, arg);
	case VIDIOC_QUERYBUF:
		return querybuf(dev, arg);
	case VIDIOC_QBUF:
		return qbuf(dev, arg);
	case VIDIOC_DQBUF:
		return dqbuf(dev, arg);
	case VIDIOC_STREAMON:
		return streamon(dev, arg);
	case VIDIOC_STREAMOFF:
		return streamoff(dev, arg);
	case VIDIOC_EXPBUF:
		return expbuf(dev, arg);
	default:
		return EMU_ERR(ENOTTY);
	}
}

/* App mappings of buffers, to report V4L2_BUF_FLAG_MAPPED as vb2 does. */
struct mapping {
	void *addr;
	size_t len;
	uint64_t dev_id;
	uint32_t generation;
	uint32_t index;
};
#define MAX_MAPPINGS 256
static struct mapping mappings[MAX_MAPPINGS];

static void remember(struct emu_dev *dev, uint32_t i, void *addr, size_t len)
{
	for (size_t k = 0; k < MAX_MAPPINGS; k++) {
		if (!mappings[k].addr) {
			mappings[k] = (struct mapping){addr, len, dev->id, dev->generation, i};
			dev->bufs[i].mapped++;
			return;
		}
	}
}

void emu_stream_unmapped(void *addr, size_t len)
{
	(void)len;
	for (size_t k = 0; k < MAX_MAPPINGS; k++) {
		struct mapping *m = &mappings[k];
		if (m->addr != addr)
			continue;
		for (struct emu_dev *d = emu_first(); d; d = d->next)
			if (d->id == m->dev_id && d->generation == m->generation &&
			    m->index < d->nbufs && d->bufs[m->index].mapped)
				d->bufs[m->index].mapped--;
		m->addr = NULL;
		return;
	}
}

void *emu_stream_mmap(struct emu_dev *dev, void *addr, size_t len, int prot, int flags,
		      off_t off)
{
	if (!(flags & MAP_SHARED) || dev->buf_stride == 0 || off < 0 ||
	    off % dev->buf_stride != 0) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	uint32_t i = (uint32_t)(off / dev->buf_stride);
	if (i >= dev->nbufs || len == 0 || len > dev->buf_stride) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	void *p = emu_real.mmap(addr, len, prot, flags, dev->bufs[i].memfd, 0);
	if (p != MAP_FAILED)
		remember(dev, i, p, len);
	return p;
}

/*
 * Deliver `frames` camera frames (lock held; dropped while rendering). Frames with
 * no queued buffer are lost, as on a camera; the sequence number counts them anyway.
 */
void emu_produce(struct emu_dev *dev, uint32_t frames)
{
	for (uint32_t n = 0; n < frames; n++) {
		if (!dev->streaming || emu_check_gone(dev) || dev->ctl->fault == EMU_FAULT_STALL ||
		    dev->ctl->fault == EMU_FAULT_EIO)
			break;
		uint32_t seq = dev->sequence++;
		if (dev->queued.count == 0)
			continue;
		uint32_t i = fifo_pop(&dev->queued);
		struct emu_buf *b = &dev->bufs[i];
		b->state = EMU_BUF_FILLING;
		dev->filling++;
		uint32_t fourcc, w, h, fps, fault = dev->ctl->fault;
		emu_cur_format(dev, &fourcc, &w, &h, &fps);
		uint8_t *mem = b->mem;
		size_t cap = dev->buf_len;

		pthread_mutex_unlock(&emu_lock);
		size_t used = emu_render(fourcc, w, h, seq, fault, mem, cap);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		pthread_mutex_lock(&emu_lock);

		dev->filling--;
		b->bytesused = (uint32_t)used;
		b->sequence = seq;
		b->timestamp.tv_sec = ts.tv_sec;
		b->timestamp.tv_usec = ts.tv_nsec / 1000;
		b->flags = (fault == EMU_FAULT_CORRUPT || used == 0) ? V4L2_BUF_FLAG_ERROR : 0;
		b->state = EMU_BUF_DONE;
		fifo_push(&dev->done, i);
		pthread_cond_broadcast(&emu_cond);
		emu_sync_signal(dev);
	}
}
