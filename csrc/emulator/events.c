/*
 * Control events, as the V4L2 core gives uvcvideo: SUBSCRIBE_EVENT for V4L2_EVENT_CTRL
 * (SEND_INITIAL queues the current state at once), an event to every other handle
 * of the node in this process when a control changes (to the setter too with
 * ALLOW_FEEDBACK), DQEVENT, and POLLPRI while events wait (interpose.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <time.h>

#include "emu.h"

static void queue_event(struct emu_dev *dev, uint32_t id, const struct v4l2_event_ctrl *c)
{
	if (dev->nevents == EMU_MAX_EVENTS) { /* full: the oldest goes, as in the core */
		memmove(&dev->events[0], &dev->events[1],
			sizeof dev->events[0] * (EMU_MAX_EVENTS - 1));
		dev->nevents--;
	}
	struct v4l2_event *ev = &dev->events[dev->nevents++];
	memset(ev, 0, sizeof *ev);
	ev->type = V4L2_EVENT_CTRL;
	ev->id = id;
	ev->u.ctrl = *c;
	ev->sequence = dev->event_sequence++;
	clock_gettime(CLOCK_MONOTONIC, &ev->timestamp);
}

void emu_ctrl_changed(struct emu_dev *setter, uint32_t index, uint32_t changes)
{
	for (struct emu_dev *d = emu_first(); d; d = d->next) {
		if (d->ino != setter->ino || d->devno != setter->devno ||
		    !(d->subscribed & (1u << index)))
			continue;
		if (d == setter && !(d->feedback & (1u << index)))
			continue;
		struct v4l2_event_ctrl c;
		uint32_t i;
		for (uint32_t id = 0x00980000; id < 0x00a00000; id++) {
			/* Find the id of control `index` (the table is small and sorted). */
			if (emu_ctrl_describe(d, id, &c, &i) == 0 && i == index) {
				c.changes = changes;
				queue_event(d, id, &c);
				break;
			}
		}
	}
}

static int subscribe(struct emu_dev *dev, const struct v4l2_event_subscription *s)
{
	if (s->type != V4L2_EVENT_CTRL)
		return EMU_ERR(EINVAL); /* uvcvideo offers control events only */
	struct v4l2_event_ctrl c;
	uint32_t i;
	if (emu_ctrl_describe(dev, s->id, &c, &i) < 0)
		return -1;
	dev->subscribed |= 1u << i;
	if (s->flags & V4L2_EVENT_SUB_FL_ALLOW_FEEDBACK)
		dev->feedback |= 1u << i;
	else
		dev->feedback &= ~(1u << i);
	if ((s->flags & V4L2_EVENT_SUB_FL_SEND_INITIAL) && c.type != V4L2_CTRL_TYPE_CTRL_CLASS) {
		c.changes = V4L2_EVENT_CTRL_CH_VALUE | V4L2_EVENT_CTRL_CH_FLAGS;
		queue_event(dev, s->id, &c);
	}
	return 0;
}

static int unsubscribe(struct emu_dev *dev, const struct v4l2_event_subscription *s)
{
	if (s->type == V4L2_EVENT_ALL) {
		dev->subscribed = dev->feedback = 0;
		return 0;
	}
	struct v4l2_event_ctrl c;
	uint32_t i;
	if (s->type == V4L2_EVENT_CTRL && emu_ctrl_describe(dev, s->id, &c, &i) == 0) {
		dev->subscribed &= ~(1u << i);
		dev->feedback &= ~(1u << i);
	}
	return 0;
}

static int dqevent(struct emu_dev *dev, struct v4l2_event *ev)
{
	if (dev->nevents == 0)
		return EMU_ERR(ENOENT);
	*ev = dev->events[0];
	dev->nevents--;
	memmove(&dev->events[0], &dev->events[1], sizeof dev->events[0] * dev->nevents);
	ev->pending = dev->nevents;
	return 0;
}

int emu_event_ioctl(struct emu_dev *dev, unsigned long req, void *arg)
{
	if (dev->ctl->kind == EMU_KIND_METADATA)
		return EMU_ERR(ENOTTY);
	switch (req) {
	case VIDIOC_SUBSCRIBE_EVENT:
		return subscribe(dev, arg);
	case VIDIOC_UNSUBSCRIBE_EVENT:
		return unsubscribe(dev, arg);
	case VIDIOC_DQEVENT:
		return dqevent(dev, arg);
	default:
		return EMU_ERR(ENOTTY);
	}
}
