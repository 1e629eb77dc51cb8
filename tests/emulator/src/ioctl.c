/* VIDIOC_* dispatch for an emulated node; what is not listed is ENOTTY, as in V4L2. */
#define _GNU_SOURCE
#include <errno.h>

#include "emu.h"

static int subscribe_event(struct emu_dev *dev, const struct v4l2_event_subscription *s)
{
	if (dev->ctl->kind == EMU_KIND_METADATA)
		return EMU_ERR(ENOTTY);
	/* uvcvideo only offers control events (and never needs to send one here). */
	return s->type == V4L2_EVENT_CTRL ? 0 : EMU_ERR(EINVAL);
}

int emu_ioctl(struct emu_dev *dev, unsigned long req, void *arg)
{
	if (emu_check_gone(dev))
		return EMU_ERR(ENODEV); /* video_unregister_device: every ioctl fails */
	if (!arg)
		return EMU_ERR(EFAULT);
	switch (req) {
	case VIDIOC_QUERYCAP:
	case VIDIOC_ENUM_FMT:
	case VIDIOC_ENUM_FRAMESIZES:
	case VIDIOC_ENUM_FRAMEINTERVALS:
	case VIDIOC_G_FMT:
	case VIDIOC_S_FMT:
	case VIDIOC_TRY_FMT:
	case VIDIOC_G_PARM:
	case VIDIOC_S_PARM:
	case VIDIOC_ENUMINPUT:
	case VIDIOC_G_INPUT:
	case VIDIOC_S_INPUT:
	case VIDIOC_G_PRIORITY:
	case VIDIOC_S_PRIORITY:
		return emu_fmt_ioctl(dev, req, arg);
	case VIDIOC_QUERYCTRL:
	case VIDIOC_QUERY_EXT_CTRL:
	case VIDIOC_QUERYMENU:
	case VIDIOC_G_CTRL:
	case VIDIOC_S_CTRL:
	case VIDIOC_G_EXT_CTRLS:
	case VIDIOC_S_EXT_CTRLS:
	case VIDIOC_TRY_EXT_CTRLS:
		return emu_ctrl_ioctl(dev, req, arg);
	case VIDIOC_REQBUFS:
	case VIDIOC_QUERYBUF:
	case VIDIOC_QBUF:
	case VIDIOC_DQBUF:
	case VIDIOC_STREAMON:
	case VIDIOC_STREAMOFF:
	case VIDIOC_EXPBUF:
		return emu_stream_ioctl(dev, req, arg);
	case VIDIOC_SUBSCRIBE_EVENT:
		return subscribe_event(dev, arg);
	case VIDIOC_UNSUBSCRIBE_EVENT:
		return dev->ctl->kind == EMU_KIND_METADATA ? EMU_ERR(ENOTTY) : 0;
	case VIDIOC_DQEVENT:
		return EMU_ERR(ENOENT); /* no event pending */
	default:
		/*
		 * Standards, DV timings, crop/selection, tuners, audio, EDID, JPEG
		 * compression, CREATE_BUFS...: uvcvideo has no handler, so ENOTTY.
		 */
		return EMU_ERR(ENOTTY);
	}
}
