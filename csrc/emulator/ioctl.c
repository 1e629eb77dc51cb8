/*
 * VIDIOC_* dispatch for an emulated node, with what the V4L2 core does before a
 * driver sees a call: ENODEV once unplugged, ENOTTY for what the driver lacks, EFAULT
 * for a missing argument, and the priority check (v4l2_prio_check) on calls that
 * change the device.
 */
#define _GNU_SOURCE
#include <errno.h>

#include "emu.h"

typedef int (*handler_fn)(struct emu_dev *, unsigned long, void *);

static handler_fn route(unsigned long req, bool *prio)
{
	*prio = false;
	switch (req) {
	case VIDIOC_S_FMT:
	case VIDIOC_S_PARM:
	case VIDIOC_S_INPUT:
	case VIDIOC_S_PRIORITY:
		*prio = true;
		/* fall through */
	case VIDIOC_QUERYCAP:
	case VIDIOC_ENUM_FMT:
	case VIDIOC_ENUM_FRAMESIZES:
	case VIDIOC_ENUM_FRAMEINTERVALS:
	case VIDIOC_G_FMT:
	case VIDIOC_TRY_FMT:
	case VIDIOC_G_PARM:
	case VIDIOC_ENUMINPUT:
	case VIDIOC_G_INPUT:
	case VIDIOC_G_PRIORITY:
		return emu_fmt_ioctl;
	case VIDIOC_S_CTRL:
	case VIDIOC_S_EXT_CTRLS:
		*prio = true;
		/* fall through */
	case VIDIOC_QUERYCTRL:
	case VIDIOC_QUERY_EXT_CTRL:
	case VIDIOC_QUERYMENU:
	case VIDIOC_G_CTRL:
	case VIDIOC_G_EXT_CTRLS:
	case VIDIOC_TRY_EXT_CTRLS:
		return emu_ctrl_ioctl;
	case VIDIOC_REQBUFS:
	case VIDIOC_STREAMON:
	case VIDIOC_STREAMOFF:
		*prio = true;
		/* fall through */
	case VIDIOC_QUERYBUF:
	case VIDIOC_QBUF:
	case VIDIOC_DQBUF:
	case VIDIOC_EXPBUF:
		return emu_stream_ioctl;
	case VIDIOC_SUBSCRIBE_EVENT:
	case VIDIOC_UNSUBSCRIBE_EVENT:
	case VIDIOC_DQEVENT:
		return emu_event_ioctl;
	default:
		/*
		 * Standards, DV timings, crop/selection, tuners, audio, EDID, JPEG
		 * compression, LOG_STATUS, CREATE_BUFS...: uvcvideo has no handler.
		 */
		return NULL;
	}
}

/* The highest priority any handle of the node holds (v4l2_prio_max). */
static int prio_max(const struct emu_dev *dev)
{
	for (int p = V4L2_PRIORITY_RECORD; p > V4L2_PRIORITY_UNSET; p--)
		if (__atomic_load_n(&dev->ctl->prio_count[p], __ATOMIC_RELAXED) > 0)
			return p;
	return V4L2_PRIORITY_UNSET;
}

void emu_prio_open(struct emu_dev *dev)
{
	dev->priority = V4L2_PRIORITY_DEFAULT;
	__atomic_add_fetch(&dev->ctl->prio_count[dev->priority], 1, __ATOMIC_RELAXED);
	dev->prio_counted = true;
}

void emu_prio_close(struct emu_dev *dev)
{
	if (dev->prio_counted)
		__atomic_sub_fetch(&dev->ctl->prio_count[dev->priority], 1, __ATOMIC_RELAXED);
	dev->prio_counted = false;
}

static int priority_ioctl(struct emu_dev *dev, unsigned long req, void *arg)
{
	if (req == VIDIOC_G_PRIORITY) {
		*(enum v4l2_priority *)arg = (enum v4l2_priority)prio_max(dev);
		return 0;
	}
	enum v4l2_priority p = *(enum v4l2_priority *)arg;
	if (p < V4L2_PRIORITY_BACKGROUND || p > V4L2_PRIORITY_RECORD)
		return EMU_ERR(EINVAL);
	emu_prio_close(dev);
	dev->priority = (int)p;
	__atomic_add_fetch(&dev->ctl->prio_count[p], 1, __ATOMIC_RELAXED);
	dev->prio_counted = true;
	return 0;
}

int emu_ioctl(struct emu_dev *dev, unsigned long req, void *arg)
{
	if (emu_check_gone(dev))
		return EMU_ERR(ENODEV); /* video_unregister_device: every ioctl fails */
	bool prio;
	handler_fn handler = route(req, &prio);
	if (!handler)
		return EMU_ERR(ENOTTY);
	if (!arg)
		return EMU_ERR(EFAULT);
	if (prio && dev->priority < prio_max(dev))
		return EMU_ERR(EBUSY); /* another handle holds a higher priority */
	if (req == VIDIOC_G_PRIORITY || req == VIDIOC_S_PRIORITY)
		return priority_ioctl(dev, req, arg);
	return handler(dev, req, arg);
}
